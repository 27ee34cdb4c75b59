// simd4: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, on simdgroup matrices (float).
//
// Geometry: threadgroups of 128 threads (4 simdgroups, 2 x 2) compute a
// 32 x 32 tile of y, each simdgroup 2 x 2 simdgroup_float8x8 blocks;
// grid = (ceil(N / 32), ceil(M / 32)) threadgroups; (32 + 32) x 36 floats
// of threadgroup memory. Each step stages 32 codes of K (one group) as
// float (see mlxq_tile_mma in common.metal).

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uchar),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgid [[simdgroup_index_in_threadgroup]]) {
    const mlxq_elem_loader<32, 32, mlxq_codes_u8> loader{{w, p.K}, scales, biases, p.N, p.K, p.flags};
    mlxq_tile_mma<2, 2, 32>(loader, x, bias, y, p, smem, tgid, tid, sgid);
}
