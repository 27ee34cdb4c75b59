"""Merges the rows of bench/cudabench and bench/cuda_peer.py into the
Markdown table of docs/perf.md: for each mlxq figure, the effective TB/s
over the bytes that must be read (weights as stored and x) as a share of
the streaming-read rate measured in the same run, TFLOP/s, and the ratios
against cuBLAS on the dense weight and torch's int4 kernel (4-bit) at the
same shape and M.

Usage: python3 bench/cuda_table.py MLXQ.jsonl PEER.jsonl
"""
import json
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def main():
    mine, peer = rows(sys.argv[1]), rows(sys.argv[2])
    read = next((r["tbps"] for r in peer if r["kind"] == "read"), None)
    dev = next((r.get("note") or r.get("name") for r in mine + peer if r["kind"] == "device"), "?")
    cublas = {(r["dtype"], r["n"], r["k"], r["m"]): r["us"] for r in peer if r["kind"] == "cublas"}
    int4 = {(r["n"], r["k"], r["gs"], r["m"]): r["us"] for r in peer if r["kind"] == "int4"}
    print(f"device: {dev}; streaming read {read:.2f} TB/s" if read else f"device: {dev}")
    for r in mine:
        if r["kind"] == "chain":
            print(f"chain: {r['note']}")
    print()
    print("| N×K | format | x | M | kernel | µs | TB/s | of read rate | TFLOP/s | cuBLAS µs | vs cuBLAS | int4 µs | vs int4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in mine:
        if r["kind"] != "mlxq":
            continue
        cb = cublas.get((r["dtype"], r["n"], r["k"], r["m"]))
        i4 = int4.get((r["n"], r["k"], r["gs"], r["m"])) if r["bits"] == 4 and r["dtype"] == "bfloat16" else None
        kernel = r["kernel"] + ("" if r.get("planned") else " (not planned)")
        share = f"{100 * r['tbps'] / read:.0f}%" if read else "-"
        print(f"| {r['n']}×{r['k']} | {r['bits']}-bit g{r['gs']} | {r['dtype']} | {r['m']} | {kernel} | {r['us']:.1f} | "
              f"{r['tbps']:.2f} | {share} | {r['tflops']:.1f} | "
              + (f"{cb:.1f} | {cb / r['us']:.2f}x | " if cb else "- | - | ")
              + (f"{i4:.1f} | {i4 / r['us']:.2f}x |" if i4 else "- | - |"))


if __name__ == "__main__":
    main()
