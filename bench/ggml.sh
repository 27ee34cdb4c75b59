#!/usr/bin/env bash
# Measures the CPU backend's 16-bit-activation path (BenchmarkLayerBF16 in
# cpu/bench16_test.go: qmv and qmm on the integer kernels, bf16 activations
# quantized inside the kernel) against ggml's CPU matrix-vector and matrix
# products, its test-backend-ops MUL_MAT perf, at the same shapes: N×K =
# 4096×4096 and 14336×4096, M = 1 and 128 (ggml's f32 activations, quantized
# to q8 inside its kernel), q4_0, q4_K and q8_0 weights. One thread (both
# pinned to CPU 0 by taskset) and all threads. Rounds alternate between the
# two, and each figure is the best of the rounds. Prints a Markdown table:
# each mlxq row against ggml's fastest 4-bit kernel of the same shape, M and
# threads ("vs best 4-bit" > 1 means mlxq is faster).
#
# Usage: GGML_DIR=path/to/ggml bench/ggml.sh [ROUNDS]   (default 3)
# GGML_DIR is a checkout of ggml (or of llama.cpp, or llama.cpp's ggml/);
# test-backend-ops is built once with cmake into GGML_BUILD (default
# /tmp/ggml-build-mlxq), outside both trees.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
src=${GGML_DIR:?set GGML_DIR to a ggml or llama.cpp checkout}
if [ ! -f "$src/tests/test-backend-ops.cpp" ] && [ -f "$src/../tests/test-backend-ops.cpp" ]; then
	src="$src/.." # llama.cpp's ggml/
fi
build=${GGML_BUILD:-/tmp/ggml-build-mlxq}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$build/bin/test-backend-ops" ]; then
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
		-DGGML_BUILD_TESTS=ON -DLLAMA_BUILD_TESTS=ON -DGGML_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF >"$tmp/cmake.log" ||
		{ cat "$tmp/cmake.log" >&2; exit 1; }
	cmake --build "$build" --target test-backend-ops -j "$(nproc)" >"$tmp/build.log" ||
		{ tail -n 30 "$tmp/build.log" >&2; exit 1; }
fi
go test -c -o "$tmp/cpu.test" ./cpu

# test-backend-ops --test-file lines: op (GGML_OP_MUL_MAT = 29), result type
# (f32), result ne, no op params, two sources: type ne nb (nb 0: contiguous).
# Types: q4_0 = 2, q8_0 = 8, q4_K = 12, f32 = 0.
for n in 4096 14336; do
	for m in 1 128; do
		for t in 2 12 8; do
			echo "29 0 $n $m 1 1 0 2 $t 4096 $n 1 1 0 0 0 0 0 4096 $m 1 1 0 0 0 0 -"
		done
	done
done >"$tmp/cases"

all=$(nproc)
for round in $(seq "$rounds"); do
	echo "round $round of $rounds" >&2
	for cpus in 1 "$all"; do
		pin=()
		[ "$cpus" = 1 ] && pin=(taskset -c 0)
		"${pin[@]}" "$tmp/cpu.test" -test.run '^$' -test.bench 'BenchmarkLayerBF16' -test.cpu "$cpus" -test.benchtime 1s |
			awk -v cpus="$cpus" '/^BenchmarkLayerBF16/ {
				split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
				printf "mlxq %s %s %s %s %s\n", p[2], p[3], substr(p[4], 2), cpus, $3 / 1000 }' >>"$tmp/rows"
		"${pin[@]}" "$build/bin/test-backend-ops" perf -b CPU -o MUL_MAT --test-file "$tmp/cases" |
			sed 's/\x1b\[[0-9;]*m//g' |
			awk -v cpus="$cpus" '/MUL_MAT\(/ {
				match($0, /ne=\[[0-9]+,[0-9]+/); split(substr($0, RSTART + 4, RLENGTH - 4), ne, ",")
				match($0, /sources=[a-z0-9_A-Z]+/); type = substr($0, RSTART + 8, RLENGTH - 8)
				for (i = 1; i <= NF; i++) if ($i == "us/run") us = $(i - 1)
				printf "ggml %sx4096 %s %s %s %s\n", ne[1], type, ne[2], cpus, us }' >>"$tmp/rows"
	done
done

# rows: who shape format M threads µs; keep the fastest of each.
sort -k1,5 -k6,6g "$tmp/rows" | awk '!seen[$1 FS $2 FS $3 FS $4 FS $5]++' >"$tmp/best"
echo "| shape (N×K) | mlxq format | M | threads | mlxq µs | ggml q4_0 µs | ggml q4_K µs | ggml q8_0 µs | vs best 4-bit | vs q8_0 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk '
	$1 == "ggml" { g[$2 FS $3 FS $4 FS $5] = $6 }
	$1 == "mlxq" { row[++n] = $0 }
	END {
		for (i = 1; i <= n; i++) {
			split(row[i], f, " ")
			key = f[2] FS "%s" FS f[4] FS f[5]
			q40 = g[sprintf(key, "q4_0")]; q4k = g[sprintf(key, "q4_K")]; q80 = g[sprintf(key, "q8_0")]
			best = q40 < q4k ? q40 : q4k
			printf "| %s | %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.2fx | %.2fx |\n",
				f[2], f[3], f[4], f[5], f[6], q40, q4k, q80, best / f[6], q80 / f[6]
		}
	}' "$tmp/best"
