"""The CUDA benchmark's peers, measured on the same GPU in the same call as
mlxq's own figures (bench/cuda.sh): the streaming-read rate (the ceiling of
a weight-bound kernel), cuBLAS (torch.matmul) on the dense dequantized
weight in bfloat16 and float32, and torch's int4 kernel
(torch._weight_int4pack_mm, affine 4-bit with bfloat16 scales and zeros).

Each figure is a CUDA-event time per call after warm-up, the calls rotating
through enough weight copies to exceed the L2 cache several times, captured
in a CUDA graph (so launch gaps are not counted), best of 3 replays.
Writes one JSON object per line on stdout.

Usage: python3 bench/cuda_peer.py
"""
import json
import math

import torch

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
FOOT = 360e6  # bytes of weight copies rotated through: six times the H200's 60 MB L2

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (16384, 16384), (28672, 8192)]
MS = [1, 4, 16, 64, 512, 4096]
F32_MS = [1, 4096]


def emit(**row):
    print(json.dumps(row), flush=True)


def copies(nbytes):
    return max(1, min(32, math.ceil(FOOT / nbytes)))


def time_call(call, n, reps=20, replays=10):
    """Seconds per call of call(i), i rotating over n weight copies."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(3):
            call(i % n)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call(0)
    end.record()
    torch.cuda.synchronize()
    t0 = max(start.elapsed_time(end) * 1e-3, 1e-6)
    reps = int(min(reps, max(n, 2e-3 / t0)))
    replays = int(min(replays, max(1, 0.03 / (t0 * reps))))
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(reps):
            call(i % n)
    g.replay()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        start.record()
        for _ in range(replays):
            g.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 1e-3 / (replays * reps))
    del g
    return best


def streaming_read():
    x = torch.empty(1 << 30, dtype=torch.float16, device=dev).uniform_(-1, 1)
    acc = torch.empty((), dtype=torch.float32, device=dev)
    t = time_call(lambda i: torch.sum(x, dim=0, dtype=torch.float32, out=acc), 1, reps=5, replays=5)
    emit(kind="read", bytes=x.numel() * 2, us=t * 1e6, tbps=x.numel() * 2 / t / 1e12)
    del x
    torch.cuda.empty_cache()


def cublas(n, k):
    for dt, ms in ((torch.bfloat16, MS), (torch.float32, F32_MS)):
        nbytes = n * k * (2 if dt == torch.bfloat16 else 4)
        nc = copies(nbytes)
        w = [torch.randn(n, k, dtype=dt, device=dev) * 0.02 for _ in range(nc)]
        for m in ms:
            x = torch.randn(m, k, dtype=dt, device=dev)
            y = torch.empty(m, n, dtype=dt, device=dev)
            t = time_call(lambda i: torch.matmul(x, w[i].t(), out=y), nc)
            emit(kind="cublas", dtype=str(dt).split(".")[-1], n=n, k=k, m=m, us=t * 1e6,
                 tflops=2 * m * n * k / t / 1e12, tbps=nbytes / t / 1e12)
        del w
        torch.cuda.empty_cache()


def int4(n, k, gs):
    nbytes = n * k // 2 + (k // gs) * n * 4
    nc = copies(nbytes)
    packs = []
    for i in range(nc):
        gen = torch.Generator(device=dev).manual_seed(i)
        q = torch.randint(0, 16, (n, k), dtype=torch.int32, device=dev, generator=gen)
        q8 = ((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8)
        wp = torch._convert_weight_to_int4pack(q8, 8)
        sz = torch.empty(k // gs, n, 2, dtype=torch.bfloat16, device=dev)
        sz[..., 0].uniform_(0.001, 0.02)
        sz[..., 1].uniform_(-0.05, 0.05)
        packs.append((wp, sz))
        del q, q8
    for m in MS:
        x = torch.randn(m, k, dtype=torch.bfloat16, device=dev)
        t = time_call(lambda i: torch._weight_int4pack_mm(x, packs[i][0], gs, packs[i][1]), nc)
        emit(kind="int4", n=n, k=k, gs=gs, m=m, us=t * 1e6, tflops=2 * m * n * k / t / 1e12, tbps=nbytes / t / 1e12)
    del packs
    torch.cuda.empty_cache()


def main():
    p = torch.cuda.get_device_properties(0)
    emit(kind="device", name=p.name, sms=p.multi_processor_count, torch=torch.__version__, cuda=torch.version.cuda)
    streaming_read()
    for n, k in SHAPES:
        cublas(n, k)
        for gs in (32, 64, 128):
            int4(n, k, gs)


if __name__ == "__main__":
    main()
