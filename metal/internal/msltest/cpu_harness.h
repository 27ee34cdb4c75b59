// Runs the translated kernel of the unit included before this file on the
// CPU (see cpu_prelude.h), for kernels whose arguments are buffers followed
// by MLXQ_NINTS ints (matrix products: M, N, K; unpack, embed and the
// gathered products: N, K). Build: g++ -std=c++20 -pthread
// -DMLXQ_NINTS=<n> -include cpu_prelude.h UNIT; -DMLXQ_PAD_WORDS=0 (for
// AddressSanitizer builds) leaves no slack past the buffers. Usage: harness
// IN OUT. IN holds little-endian uint32s: grid x y z, threads x y z,
// threadgroup memory bytes, the ints' count and the ints, the index of the
// output buffer, the buffer count, then each buffer as a uint64 length and
// its bytes (length 0: a null pointer). OUT receives the output buffer
// after the run.
// The unit is done with Metal's address-space words; std:: needs thread.
#undef device
#undef threadgroup
#undef constant
#undef thread

#include <utility>

template <typename F>
struct mlxq_args_of;
template <typename R, typename... A>
struct mlxq_args_of<R(A...)> {
    using type = std::tuple<A...>;
};
using mlxq_args = typename mlxq_args_of<decltype(mlxq_kernel)>::type;
template <size_t I>
using mlxq_arg = std::tuple_element_t<I, mlxq_args>;
constexpr size_t mlxq_nbuf = std::tuple_size_v<mlxq_args> - MLXQ_NINTS;

template <size_t... B, size_t... I>
static void mlxq_call(void** bufs, const int* ints, std::index_sequence<B...>, std::index_sequence<I...>) {
    mlxq_kernel((mlxq_arg<B>)bufs[B]..., ints[I]...);
}

// Slack past each buffer, in 8-byte words: room to read whole blocks past
// the end, as Metal's bounds allow.
#ifndef MLXQ_PAD_WORDS
#define MLXQ_PAD_WORDS 32
#endif

static uint32_t mlxq_u32(FILE* f) {
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4) {
        fprintf(stderr, "short input\n");
        exit(2);
    }
    return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: harness IN OUT\n");
        return 2;
    }
    FILE* in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    uint32_t grid[3], tg[3];
    for (auto& g : grid) g = mlxq_u32(in);
    for (auto& t : tg) t = mlxq_u32(in);
    const uint32_t mem = mlxq_u32(in), nints = mlxq_u32(in);
    if (nints != MLXQ_NINTS) {
        fprintf(stderr, "%u ints for a kernel of %d\n", nints, MLXQ_NINTS);
        return 2;
    }
    int ints[MLXQ_NINTS];
    for (auto& v : ints) v = int(mlxq_u32(in));
    const uint32_t out = mlxq_u32(in), nbuf = mlxq_u32(in);
    if (nbuf != mlxq_nbuf || out >= nbuf) {
        fprintf(stderr, "%u buffers (output %u) for a kernel of %zu\n", nbuf, out, mlxq_nbuf);
        return 2;
    }
    std::vector<std::vector<uint64_t>> store(nbuf);
    std::vector<uint64_t> lens(nbuf);
    std::vector<void*> bufs(nbuf);
    for (uint32_t i = 0; i < nbuf; i++) {
        const uint64_t lo = mlxq_u32(in), hi = mlxq_u32(in);
        lens[i] = lo | hi << 32;
        bufs[i] = nullptr;
        if (lens[i]) {
            store[i].resize((lens[i] + 7) / 8 + MLXQ_PAD_WORDS);
            if (fread(store[i].data(), 1, lens[i], in) != lens[i]) {
                fprintf(stderr, "short buffer %u\n", i);
                return 2;
            }
            bufs[i] = store[i].data();
        }
    }
    fclose(in);
    const uint32_t T = tg[0] * tg[1] * tg[2];
    if (T % 32 != 0) {
        fprintf(stderr, "threadgroups of %u threads, not whole SIMD groups\n", T);
        return 2;
    }
    const uint32_t G = T / 32;
    std::vector<float> memory(mem / 4 + 1);
    std::vector<float> slots(G * 128);
    for (uint32_t gz = 0; gz < grid[2]; gz++)
        for (uint32_t gy = 0; gy < grid[1]; gy++)
            for (uint32_t gx = 0; gx < grid[0]; gx++) {
                for (auto& v : memory) v = NAN;
                std::barrier<> tgb(T);
                std::vector<std::barrier<>*> sgb(G);
                std::vector<float*> sl(G);
                for (uint32_t s = 0; s < G; s++) {
                    sgb[s] = new std::barrier<>(32);
                    sl[s] = slots.data() + 128 * s;
                }
                mlxq_group_ctx ctx{&tgb, sgb.data(), sl.data(), mem ? memory.data() : nullptr};
                std::vector<std::thread> threads;
                threads.reserve(T);
                for (uint32_t flat = 0; flat < T; flat++) {
                    threads.emplace_back([&, flat] {
                        mlxq_t.g = &ctx;
                        mlxq_t.tgid = uint3{gx, gy, gz};
                        mlxq_t.tgsize = uint3{tg[0], tg[1], tg[2]};
                        mlxq_t.tpos = uint3{flat % tg[0], (flat / tg[0]) % tg[1], flat / (tg[0] * tg[1])};
                        mlxq_t.flat = flat;
                        mlxq_call(bufs.data(), ints, std::make_index_sequence<mlxq_nbuf>{},
                                  std::make_index_sequence<MLXQ_NINTS>{});
                        tgb.arrive_and_drop();
                        sgb[flat / 32]->arrive_and_drop();
                    });
                }
                for (auto& t : threads) t.join();
                for (auto* b : sgb) delete b;
            }
    FILE* o = fopen(argv[2], "wb");
    if (!o || fwrite(bufs[out], 1, lens[out], o) != lens[out]) {
        perror(argv[2]);
        return 2;
    }
    fclose(o);
    return 0;
}
