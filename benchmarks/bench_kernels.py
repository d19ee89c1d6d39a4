"""Benchmark of token_logprobs_entropy: the fused kernel (CUDA) or the chunked twin (CPU) against naive torch.

CUDA (N = 16384, V = 151936 bf16): time and peak extra memory of the Triton kernel, torch eager
(log_softmax + gather + entropy) and torch.compile of the same, and the kernel's achieved bandwidth as a
fraction of the device's measured copy bandwidth (floor: one read of the logits).
CPU (N = 4096, V = 151936 bf16): the twin against naive torch eager, each variant in a fresh subprocess so
its peak extra resident memory (Linux VmHWM after resetting it through /proc/self/clear_refs, minus the
RSS with the logits already resident) is its own. Ratios are printed side by side; JSON goes to
benchmarks/results/kernels_{cpu,cuda}.json.

    python benchmarks/bench_kernels.py [--device cpu|cuda] [--rows N] [--vocab V] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
TEMPERATURE = 0.9


def naive(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = TEMPERATURE):
    """What a trainer writes without a fused op: a float32 log_softmax, a gather and an entropy."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logprobs = logp.gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logprobs, entropy


def fused(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = TEMPERATURE):
    from scalingrl import ops

    return ops.token_logprobs_entropy(logits, token_ids, temperature=temperature)


# ---------------------------------------------------------------------------------------------- CPU


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_child(variant: str, rows: int, vocab: int, repeats: int) -> dict:
    """Runs in a fresh process: one variant, its best time and its peak extra RSS."""
    torch.manual_seed(0)
    logits = torch.randn(rows, vocab, dtype=torch.bfloat16) * 3
    token_ids = torch.randint(0, vocab, (rows,))
    fn = {"naive": naive, "twin": fused}[variant]
    with torch.no_grad():
        fn(logits[:8], token_ids[:8])  # load libraries and kernels before measuring
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _rss_kib("VmRSS")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            logprobs, entropy = fn(logits, token_ids)
            times.append(time.perf_counter() - start)
            del logprobs, entropy
        peak = _rss_kib("VmHWM")
    return {"variant": variant, "seconds": min(times), "peak_extra_bytes": (peak - base) * 1024}


def bench_cpu(rows: int, vocab: int, repeats: int) -> dict:
    results = {}
    for variant in ("naive", "twin"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                variant,
                "--rows",
                str(rows),
                "--vocab",
                str(vocab),
                "--repeats",
                str(repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    logits_bytes = rows * vocab * 2
    report = {
        "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rows": rows,
        "vocab": vocab,
        "dtype": "bfloat16",
        "temperature": TEMPERATURE,
        "repeats": repeats,
        "logits_bytes": logits_bytes,
        "variants": results,
        "twin_over_naive_time": results["twin"]["seconds"] / results["naive"]["seconds"],
        "twin_over_naive_peak_extra": results["twin"]["peak_extra_bytes"]
        / max(results["naive"]["peak_extra_bytes"], 1),
        "torch": torch.__version__,
    }
    print(f"CPU  N={rows} V={vocab} bf16, logits {logits_bytes / 2**30:.2f} GiB, best of {repeats}")
    print(f"{'variant':8} {'seconds':>9} {'peak extra GiB':>15}")
    for name, r in results.items():
        print(f"{name:8} {r['seconds']:9.3f} {r['peak_extra_bytes'] / 2**30:15.3f}")
    print(
        f"twin / naive: time {report['twin_over_naive_time']:.2f}x (goal <= 1.5), "
        f"peak extra {report['twin_over_naive_peak_extra']:.3f} (goal <= 0.125)"
    )
    return report


# --------------------------------------------------------------------------------------------- CUDA


def _cuda_time(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


def _cuda_peak_extra(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak


def bench_cuda(rows: int, vocab: int, repeats: int) -> dict:
    torch.manual_seed(0)
    logits = torch.randn(rows, vocab, dtype=torch.bfloat16, device="cuda") * 3
    token_ids = torch.randint(0, vocab, (rows,), device="cuda")
    logits_bytes = logits.numel() * logits.element_size()
    copy_dst = torch.empty_like(logits)
    copy_s = _cuda_time(lambda: copy_dst.copy_(logits), repeats)
    copy_bandwidth = 2 * logits_bytes / copy_s  # a copy reads and writes every byte
    copy_dst = None  # free the buffer before the variants run
    compiled = torch.compile(naive)
    variants = {
        "triton": lambda: fused(logits, token_ids),
        "eager": lambda: naive(logits, token_ids),
        "compile": lambda: compiled(logits, token_ids),
    }
    results = {}
    with torch.no_grad():
        for name, fn in variants.items():
            seconds = _cuda_time(fn, repeats)
            results[name] = {
                "seconds": seconds,
                "peak_extra_bytes": _cuda_peak_extra(fn),
                "bandwidth_bytes_per_s": logits_bytes / seconds,
                "fraction_of_copy_bandwidth": logits_bytes / seconds / copy_bandwidth,
            }
    x = logits.clone().requires_grad_()

    def fwd_bwd():
        logprobs, entropy = fused(x, token_ids)
        return torch.autograd.grad((logprobs + 0.1 * entropy).sum(), x)[0]

    fb = _cuda_time(fwd_bwd, repeats)
    # Forward + backward floor: read logits twice, write the gradient once.
    results["triton_fwd_bwd"] = {"seconds": fb, "fraction_of_copy_bandwidth": 3 * logits_bytes / fb / copy_bandwidth}
    report = {
        "device": torch.cuda.get_device_name(),
        "rows": rows,
        "vocab": vocab,
        "dtype": "bfloat16",
        "temperature": TEMPERATURE,
        "repeats": repeats,
        "logits_bytes": logits_bytes,
        "copy_bandwidth_bytes_per_s": copy_bandwidth,
        "variants": results,
        "torch": torch.__version__,
    }
    print(f"CUDA {report['device']} N={rows} V={vocab} bf16, copy bandwidth {copy_bandwidth / 1e9:.0f} GB/s")
    print(f"{'variant':15} {'ms':>9} {'peak extra GiB':>15} {'of copy bw':>11} {'vs triton':>10}")
    for name, r in results.items():
        print(
            f"{name:15} {r['seconds'] * 1e3:9.2f} {r.get('peak_extra_bytes', float('nan')) / 2**30:15.3f} "
            f"{r['fraction_of_copy_bandwidth']:11.2%} {r['seconds'] / results['triton']['seconds']:9.2f}x"
        )
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--child", choices=("naive", "twin"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(cpu_child(args.child, args.rows, args.vocab, args.repeats)))
        return
    if args.device == "cuda":
        report = bench_cuda(args.rows or 16384, args.vocab, args.repeats or 10)
    else:
        report = bench_cpu(args.rows or 4096, args.vocab, args.repeats or 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"kernels_{args.device}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
