// fmapeak: the fp32 FMA ceiling of one core, with 12 independent chains of
// 16-lane (AVX-512) or 8-lane (AVX2) fused multiply-adds.
//
// Build: gcc -O2 -march=native -o fmapeak fmapeak.c (the unroll pragmas keep
// every chain in a register)
// Prints: GFLOP/s for avx512 and avx2.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS 12
#define ITERS 50000000L

__attribute__((target("avx512f"))) static double peak512(void) {
	__m512 a[CHAINS], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < CHAINS; i++)
		a[i] = _mm512_set1_ps((float)i);
	double t = now();
	for (long n = 0; n < ITERS; n++) {
#pragma GCC unroll 12
		for (int i = 0; i < CHAINS; i++)
			a[i] = _mm512_fmadd_ps(a[i], m, c);
	}
	t = now() - t;
	float sink = 0;
	for (int i = 0; i < CHAINS; i++)
		sink += _mm512_reduce_add_ps(a[i]);
	if (sink == 42)
		puts("");
	return 2.0 * 16 * CHAINS * ITERS / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak256(void) {
	__m256 a[CHAINS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < CHAINS; i++)
		a[i] = _mm256_set1_ps((float)i);
	double t = now();
	for (long n = 0; n < ITERS; n++) {
#pragma GCC unroll 12
		for (int i = 0; i < CHAINS; i++)
			a[i] = _mm256_fmadd_ps(a[i], m, c);
	}
	t = now() - t;
	float out[8], sink = 0;
	for (int i = 0; i < CHAINS; i++) {
		_mm256_storeu_ps(out, a[i]);
		sink += out[0];
	}
	if (sink == 42)
		puts("");
	return 2.0 * 8 * CHAINS * ITERS / t / 1e9;
}

int main(void) {
	double best512 = 0, best256 = 0;
	for (int r = 0; r < 3; r++) {
		double a = peak512(), b = peak256();
		if (a > best512)
			best512 = a;
		if (b > best256)
			best256 = b;
	}
	printf("avx512 %.1f GFLOP/s\navx2 %.1f GFLOP/s\n", best512, best256);
	return 0;
}
