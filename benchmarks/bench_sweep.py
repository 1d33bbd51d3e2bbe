"""Time the in-block sweep: compiled C++ kernel vs the PyTorch reference, forward + backward.

Run ``python benchmarks/bench_sweep.py``. For each block size ``b`` it times one forward and one
backward sweep over a batch of ``BATCH`` columns (dense random strictly upper weights, every neuron
relu) with both backends in the same process, and prints the median time per batch column.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ncg.kernels.sweep import (
    ACTIVATION_CODES,
    cpp_available,
    sweep_backward,
    sweep_backward_reference,
    sweep_forward,
    sweep_forward_reference,
)

BLOCK_SIZES = (32, 64, 128)
BATCH = 256
DTYPE = torch.float32
WARMUP = 3
REPEATS = 15


def make_block(b: int, batch: int, dtype: torch.dtype, seed: int = 0):
    """Random inputs of one block: z, dense strictly upper w, all-relu codes, dh."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, batch, generator=gen, dtype=dtype)
    w = (torch.randn(b, b, generator=gen, dtype=dtype) / b**0.5).triu(1)
    codes = torch.full((b,), ACTIVATION_CODES["relu"], dtype=torch.uint8)
    dh = torch.randn(b, batch, generator=gen, dtype=dtype)
    return z, w, codes, dh


def time_sweep(forward, backward, z, w, codes, dh, warmup: int, repeats: int) -> float:
    """Median seconds of forward + backward; the in-place inputs are refreshed outside the clock."""
    samples = []
    for step in range(warmup + repeats):
        z_work, dh_work = z.clone(), dh.clone()
        start = time.perf_counter()
        h = forward(z_work, w, codes)
        backward(h, w, codes, dh_work)
        elapsed = time.perf_counter() - start
        if step >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--float64", action="store_true", help="time float64 instead of float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    args = parser.parse_args()
    dtype = torch.float64 if args.float64 else DTYPE
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if not cpp_available():
        raise SystemExit("the C++ sweep kernel is unavailable (NCG_DISABLE_CPP=1 or build failed)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {dtype}, "
          f"batch {args.batch}, relu, dense strictly upper w; median of {args.repeats}")
    print(f"{'b':>5} {'C++ us/col':>11} {'torch us/col':>13} {'speedup':>8} "
          f"{'C++ us/col/neuron':>18}")
    for b in BLOCK_SIZES:
        z, w, codes, dh = make_block(b, args.batch, dtype)
        cpp = time_sweep(sweep_forward, sweep_backward, z, w, codes, dh, WARMUP, args.repeats)
        ref = time_sweep(sweep_forward_reference, sweep_backward_reference, z, w, codes, dh,
                         WARMUP, args.repeats)
        cpp_us, ref_us = cpp * 1e6 / args.batch, ref * 1e6 / args.batch
        print(f"{b:>5} {cpp_us:>11.3f} {ref_us:>13.2f} {ref / cpp:>7.0f}x {cpp_us / b:>18.4f}")


if __name__ == "__main__":
    main()
