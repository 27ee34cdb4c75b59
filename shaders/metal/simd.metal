// simd: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, on simdgroup matrices (float).
//
// Geometry: threadgroups of 128 threads (4 simdgroups, 2 x 2) compute a
// 16 x 16 tile of y, each simdgroup one 8 x 8 simdgroup_float8x8 block;
// grid = (ceil(N / 16), ceil(M / 16)) threadgroups; (16 + 16) x 36 floats
// of threadgroup memory. Each step stages 32 codes of K (one group) as
// float (see mlxq_tile_mma in common.metal).

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uchar),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgid [[simdgroup_index_in_threadgroup]]) {
    const mlxq_elem_loader<16, 32, mlxq_codes_u8> loader{{w, p.K}, scales, biases, p.N, p.K, p.flags};
    mlxq_tile_mma<1, 1, 32>(loader, x, bias, y, p, smem, tgid, tid, sgid);
}
