#!/usr/bin/env bash
# The CUDA benchmark of docs/perf.md in one run on one GPU: mlxq's kernels
# (bench/cudabench: the benchmark's shapes and formats, M = 1 to 4096, bf16
# and f32 activations, CUDA events, weight copies rotated past the L2) and,
# right after on the same GPU, the peers and the ceiling (bench/cuda_peer.py:
# the streaming-read rate, cuBLAS on the dense weight, torch's int4 kernel).
# Prints one Markdown table of ratios (bench/cuda_table.py); the raw rows
# stay in $OUT (default: a temporary directory).
#
# Usage: bench/cuda.sh [CUDABENCH]   (a cudabench binary built elsewhere;
#                                     default: go run ./bench/cudabench)
# Needs: an NVIDIA GPU with its driver, python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
if [ $# -gt 0 ]; then
	"$1" >"$out/mlxq.jsonl"
else
	go run ./bench/cudabench >"$out/mlxq.jsonl"
fi
python3 bench/cuda_peer.py >"$out/peer.jsonl"
python3 bench/cuda_table.py "$out/mlxq.jsonl" "$out/peer.jsonl"
