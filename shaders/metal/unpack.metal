// unpack: expands MLX's packed codes of width MLXQ_BITS (rows of cols codes,
// LSB-first bitstreams over uint32 words, each row starting on a word) into
// one byte per code, [rows, cols]. The parameter block holds rows in N and
// cols in K.
//
// Geometry: threadgroups of 256 threads; thread i writes codes 4i .. 4i + 3
// of the flattened [rows, cols] output as one 32-bit store (cols is a
// multiple of 4 for every width); grid = (ceil(rows * cols / 1024), 1, 1)
// threadgroups. Buffers: w (0), codes (1), the parameter block (2).

kernel void mlxq_kernel(const device uint* w [[buffer(0)]],
                        device uint* codes [[buffer(1)]],
                        constant mlxq_params& p [[buffer(2)]],
                        uint3 gid [[thread_position_in_grid]]) {
    const ulong i = ulong(gid.x);
    const uint rows = p.N, cols = p.K;
    const ulong total = ulong(rows) * cols / 4;
    if (i >= total) {
        return;
    }
    const ulong e = i * 4;
    const ulong row = e / cols;
    const uint j = uint(e % cols);
    const device uint* wr = w + row * (ulong(cols) * MLXQ_BITS / 32);
    uint out = 0;
    for (uint c = 0; c < 4u; c++) {
        out |= mlxq_packed_code(wr, j + c) << (8u * c);
    }
    codes[i] = out;
}
