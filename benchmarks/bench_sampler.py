"""Dynamic weighted sampling: scalingrl's exact sampler against what a user would reach for instead.

For each pool size n it measures, in one run and on the same weights:
- ns per weight update (bulk call of 100K random ids; numpy/torch: a fancy-index assignment),
- ns per draw with replacement (one bulk call of 1M draws; numpy/torch renormalise first),
- the time of one 1024-id batch without replacement (512 at n = 1000), Python call included (median),
for ``WeightedSampler``, ``numpy.random.Generator.choice(p=..., replace=False)``,
``torch.multinomial`` and a compiled Fenwick (sum-tree) baseline, and reports ratios against ours.

Targets checked here (never in tests): at n = 220K the 1024-batch is >= 20x faster than numpy's and
<= 0.5 ms; per-draw time at n = 1e7 is within 2x of n = 1e3.

    python benchmarks/bench_sampler.py            # full table, writes benchmarks/results/sampler.json
    python benchmarks/bench_sampler.py --quick    # smaller sizes and repeats
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from scalingrl.sampler import FenwickSampler, WeightedSampler

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 1024


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_native(cls, weights, update_ids, update_w, draws, repeats, batch_size):
    n = len(weights)
    sampler = cls(n, seed=0)
    sampler.update(np.arange(n), weights)
    update = median_time(lambda: sampler.update(update_ids, update_w), 3) / len(update_ids)
    draw = median_time(lambda: sampler.sample(draws, replace=True), 3) / draws
    batch = median_time(lambda: sampler.sample(batch_size), repeats)
    return update, draw, batch


def bench_numpy(weights, update_ids, update_w, draws, repeats, batch_size):
    rng = np.random.default_rng(0)
    w = weights.copy()

    def assign():
        w[update_ids] = update_w

    update = median_time(assign, 3) / len(update_ids)
    draw = median_time(lambda: rng.choice(len(w), size=draws, replace=True, p=w / w.sum()), 3) / draws
    batch = median_time(lambda: rng.choice(len(w), size=batch_size, replace=False, p=w / w.sum()), repeats)
    return update, draw, batch


def bench_torch(weights, update_ids, update_w, draws, repeats, batch_size):
    torch.manual_seed(0)
    w = torch.from_numpy(weights.copy())
    ids_t, w_t = torch.from_numpy(update_ids), torch.from_numpy(update_w)

    def assign():
        w[ids_t] = w_t

    update = median_time(assign, 3) / len(update_ids)
    draw = median_time(lambda: torch.multinomial(w, draws, replacement=True), 3) / draws
    batch = median_time(lambda: torch.multinomial(w, batch_size, replacement=False), repeats)
    return update, draw, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e6, fewer repeats")
    parser.add_argument("--out", type=Path, default=RESULTS / "sampler.json")
    args = parser.parse_args()

    sizes = [1_000, 10_000, 220_000, 1_000_000] + ([] if args.quick else [10_000_000])
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        # DES-like scores: positive, spread over a few orders of magnitude.
        weights = rng.lognormal(mean=0.0, sigma=2.0, size=n)
        m = min(100_000, 10 * n)
        update_ids = rng.integers(0, n, size=m)
        update_w = rng.lognormal(0.0, 2.0, size=m)
        draws = 1_000_000
        repeats = 50 if n <= 1_000_000 else 10
        slow_repeats = 20 if n <= 220_000 else 3
        batch_size = min(BATCH, n // 2)  # n = 1000 draws half the pool
        common = (weights, update_ids, update_w, draws)
        results = {
            "scalingrl": bench_native(WeightedSampler, *common, repeats, batch_size),
            "fenwick": bench_native(FenwickSampler, *common, repeats, batch_size),
            "numpy": bench_numpy(*common, slow_repeats, batch_size),
            "torch": bench_torch(*common, slow_repeats, batch_size),
        }
        ours = results["scalingrl"]
        for name, (update, draw, batch) in results.items():
            rows.append(
                {
                    "n": n,
                    "method": name,
                    "batch_size": batch_size,
                    "update_ns": update * 1e9,
                    "draw_ns": draw * 1e9,
                    "batch1024_ms": batch * 1e3,
                    "batch_ratio_vs_scalingrl": batch / ours[2],
                    "draw_ratio_vs_scalingrl": draw / ours[1],
                }
            )

    print(
        f"{'n':>10} {'method':>10} {'update ns':>10} {'draw ns':>9} {'batch':>6} "
        f"{'batch ms':>10} {'batch x':>9} {'draw x':>8}"
    )
    for r in rows:
        print(
            f"{r['n']:>10} {r['method']:>10} {r['update_ns']:>10.1f} {r['draw_ns']:>9.1f} {r['batch_size']:>6} "
            f"{r['batch1024_ms']:>10.4f} {r['batch_ratio_vs_scalingrl']:>9.1f} {r['draw_ratio_vs_scalingrl']:>8.1f}"
        )

    def get(n, method, key):
        return next(r[key] for r in rows if r["n"] == n and r["method"] == method)

    largest = max(sizes)
    targets = {
        "batch_220k_speedup_vs_numpy": get(220_000, "numpy", "batch_ratio_vs_scalingrl"),
        "batch_220k_ms": get(220_000, "scalingrl", "batch1024_ms"),
        f"draw_ns_ratio_{largest}_vs_1000": get(largest, "scalingrl", "draw_ns") / get(1_000, "scalingrl", "draw_ns"),
    }
    checks = {
        "batch_220k_at_least_20x_numpy": targets["batch_220k_speedup_vs_numpy"] >= 20,
        "batch_220k_within_0.5ms": targets["batch_220k_ms"] <= 0.5,
        "draw_time_largest_within_2x_of_1000": targets[f"draw_ns_ratio_{largest}_vs_1000"] <= 2.0,
    }
    print()
    for key, value in targets.items():
        print(f"{key}: {value:.3f}")
    for key, ok in checks.items():
        print(f"{key}: {'PASS' if ok else 'FAIL'}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "sampler",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
        },
        "rows": rows,
        "targets": targets,
        "checks": checks,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
