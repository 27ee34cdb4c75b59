// simd4_gs64: simd4 for group 64: y = x * dequant(W)^T (+ bias) from
// unpacked affine codes (one byte per code, [N, K]), on simdgroup matrices
// (float).
//
// Geometry: threadgroups of 128 threads (4 simdgroups, 2 x 2) compute a
// 32 x 32 tile of y; grid = (ceil(N / 32), ceil(M / 32)) threadgroups;
// (32 + 32) x 68 floats of threadgroup memory. Each step stages 64 codes of
// K (one group) as float (see mlxq_tile_mma in common.metal).

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uchar),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgid [[simdgroup_index_in_threadgroup]]) {
    const mlxq_elem_loader<32, 64, mlxq_codes_u8> loader{{w, p.K}, scales, biases, p.N, p.K, p.flags};
    mlxq_tile_mma<2, 2, 64>(loader, x, bias, y, p, smem, tgid, tid, sgid);
}
