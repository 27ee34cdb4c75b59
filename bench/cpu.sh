#!/usr/bin/env bash
# Measures the CPU backend against the C peer (bench/cpeer.c) in one run:
# for 4096x4096 and 14336x4096, 4-bit groups 32 and 64, M = 1 and 128, on
# one core and on all cores. Rounds alternate between the Go benchmark and
# the peer, and each figure is the best of the rounds, since shared machines
# are noisy. Prints a Markdown table (the one in docs/perf.md).
#
# Usage: bench/cpu.sh [ROUNDS]   (default 3; needs gcc with OpenMP)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gcc -O3 -march=native -fopenmp -o "$tmp/cpeer" bench/cpeer.c
go test -c -o "$tmp/cpu.test" ./cpu
all=$(nproc)

for round in $(seq "$rounds"); do
	echo "round $round of $rounds" >&2
	for cpus in 1 "$all"; do
		"$tmp/cpu.test" -test.run '^$' -test.bench 'BenchmarkLayer' -test.cpu "$cpus" -test.benchtime 1s |
			awk -v cpus="$cpus" '/^BenchmarkLayer/ {
				split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
				printf "go %s %s %s %s %s %s %s\n", p[2], p[3], p[4], cpus, $3, $5, $7 }' >>"$tmp/rows"
		for shape in 4096x4096 14336x4096; do
			for g in 32 64; do
				"$tmp/cpeer" "${shape%x*}" "${shape#*x}" "$g" "$cpus" |
					awk -v shape="$shape" -v g="$g" -v cpus="$cpus" '{ printf "peer %s g%s M1 %s %s %s %s\n", shape, g, cpus, $5 * 1000, $6, $7 }' >>"$tmp/rows"
			done
		done
	done
done

# rows: who shape group M cpus ns/op GB/s GFLOP/s; keep the fastest of each.
sort -k1,5 -k6,6g "$tmp/rows" | awk '!seen[$1 FS $2 FS $3 FS $4 FS $5]++' >"$tmp/best"
echo "| shape | group | M | threads | mlxq µs | mlxq GB/s | mlxq GFLOP/s | peer µs | peer GB/s | speed vs peer |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk '
	$1 == "peer" { peer[$2 FS $3 FS $5] = $6; pgb[$2 FS $3 FS $5] = $7 }
	$1 == "go" { row[++n] = $0 }
	END {
		for (i = 1; i <= n; i++) {
			split(row[i], f, " ")
			key = f[2] FS f[3] FS f[5]
			pt = peer[key]; label = ""
			if (f[4] == "M128") { pt *= 128; label = " (128 GEMVs)" }
			printf "| %s | %s | %s | %s | %.0f | %.2f | %.1f | %.0f%s | %s | %.2fx |\n",
				f[2], substr(f[3], 2), substr(f[4], 2), f[5], f[6] / 1000, f[7], f[8], pt / 1000, label,
				(f[4] == "M1" ? sprintf("%.2f", pgb[key]) : "-"), pt / f[6]
		}
	}' "$tmp/best"
