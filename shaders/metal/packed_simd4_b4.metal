// packed_simd4_b4: simd4 reading MLX's packed 4-bit words directly (affine,
// group 32), with no unpack pass.
//
// Geometry: threadgroups of 128 threads (4 simdgroups, 2 x 2) compute a
// 32 x 32 tile of y; grid = (ceil(N / 32), ceil(M / 32)) threadgroups;
// (32 + 32) x 36 floats of threadgroup memory. The body is simd4's
// (mlxq_tile_mma in common.metal) with codes read from the packed words, so
// the results equal simd4's bit for bit on the same codes.

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uint),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgid [[simdgroup_index_in_threadgroup]]) {
    const mlxq_elem_loader<32, 32, mlxq_codes_packed4> loader{{w, p.K}, scales, biases, p.N, p.K, p.flags};
    mlxq_tile_mma<2, 2, 32>(loader, x, bias, y, p, smem, tgid, tid, sgid);
}
