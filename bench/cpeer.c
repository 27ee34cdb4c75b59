// cpeer: the C peer of mlxq's CPU benchmarks. It times an MLX-affine 4-bit
// GEMV with fp32 activations and fp32 scales/biases (the algorithm of
// ../shared/docs/perf-anchors-data/cpu_q4_gemv.c: broadcast a word, shift the
// eight nibbles into lanes, convert, FMA; fold the bias as b·Σx per group),
// for a given shape and group size, on one thread or on all of them (OpenMP
// over rows).
//
// Build: gcc -O3 -march=native -fopenmp -o cpeer cpeer.c
// Usage: cpeer N K GROUP THREADS   (THREADS 0 = all)
// Prints: N K GROUP THREADS microseconds GB/s(weights+f32 meta) GFLOP/s
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline float hsum8(__m256 x) {
	__m128 a = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
	a = _mm_add_ps(a, _mm_movehl_ps(a, a));
	a = _mm_add_ss(a, _mm_movehdup_ps(a));
	return _mm_cvtss_f32(a);
}

// y[n] = sum_g ( s*dot(q,x_g) + b*sum(x_g) ) for rows [n0, n1).
__attribute__((target("avx2,fma")))
static void gemv(int n0, int n1, int K, int g, const uint32_t *w, const float *s, const float *b,
                 const float *x, const float *xs, float *y) {
	const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), m = _mm256_set1_epi32(0xF);
	int G = K / g;
	for (int n = n0; n < n1; n++) {
		const uint32_t *wr = w + (size_t)n * (K / 8);
		float tot = 0;
		for (int gi = 0; gi < G; gi++) {
			__m256 acc = _mm256_setzero_ps();
			for (int k = gi * g; k < gi * g + g; k += 8) {
				__m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(wr[k >> 3]), sh), m);
				acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_loadu_ps(x + k), acc);
			}
			tot += s[(size_t)n * G + gi] * hsum8(acc) + b[(size_t)n * G + gi] * xs[gi];
		}
		y[n] = tot;
	}
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: cpeer N K GROUP THREADS\n");
		return 2;
	}
	int N = atoi(argv[1]), K = atoi(argv[2]), g = atoi(argv[3]), threads = atoi(argv[4]);
	if (N <= 0 || K <= 0 || g <= 0 || K % g || g % 8) {
		fprintf(stderr, "cpeer: bad shape\n");
		return 2;
	}
	if (threads <= 0)
		threads = omp_get_max_threads();
	int G = K / g;
	uint32_t *w = aligned_alloc(64, 4 * (size_t)N * K / 8);
	float *s = malloc(4 * (size_t)N * G), *b = malloc(4 * (size_t)N * G);
	float *x = malloc(4 * (size_t)K), *xs = malloc(4 * (size_t)G), *y = malloc(4 * (size_t)N);
	srand(1);
	for (size_t i = 0; i < (size_t)N * K / 8; i++)
		w[i] = rand() ^ (rand() << 16);
	for (size_t i = 0; i < (size_t)N * G; i++) {
		s[i] = 0.01f;
		b[i] = -0.05f;
	}
	for (int i = 0; i < K; i++)
		x[i] = (rand() % 1000) / 1000.f;
	for (int gi = 0; gi < G; gi++) {
		float a = 0;
		for (int k = 0; k < g; k++)
			a += x[gi * g + k];
		xs[gi] = a;
	}
	double bytes = (double)N * K / 2 + (double)N * G * 8;
	int reps = bytes < 2e6 ? 2000 : (bytes < 2e7 ? 100 : 30);
	double best = 1e30;
	for (int round = 0; round < 3; round++) {
		double t0 = now();
		for (int r = 0; r < reps; r++) {
#pragma omp parallel for num_threads(threads) schedule(static)
			for (int c = 0; c < threads; c++) {
				int n0 = (int)((long)N * c / threads), n1 = (int)((long)N * (c + 1) / threads);
				gemv(n0, n1, K, g, w, s, b, x, xs, y);
			}
		}
		double t = (now() - t0) / reps;
		if (t < best)
			best = t;
	}
	printf("%d %d %d %d %.2f %.3f %.3f\n", N, K, g, threads, best * 1e6, bytes / best / 1e9, 2.0 * N * K / best / 1e9);
	return 0;
}
