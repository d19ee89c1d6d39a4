"""Side-by-side comparison of prompt-selection methods on the simulated learner, plus the selection cost.

A check of the selection machinery, not a predictor of real training: on the real loop the methods
rank differently (docs/simulator.md). Runs every registered method on the same synthetic 220K pool
over several seeds (``scalingrl.sim``), prints a table and writes benchmarks/results/curriculum.json.
The performance section times select + update per step (pool 220K, batch 1024, G = 8) for the DES
selector against the AdaRFT-style full argsort over the pool, in the same run.

    python benchmarks/bench_curriculum.py [--seeds 3] [--steps 200] [--batch 256] [--quick]

``random_subset`` gets, per seed, a fixed subset as large as the number of unique prompts DES used in that
seed's run (DES runs first), so the two differ only in which prompts and in what order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

from scalingrl import selection
from scalingrl.selection import SelectionConfig, make_selector
from scalingrl.sim import LearnerConfig, SimulatedLearner, make_pool, run_schedule

# Every registered method, DES first (random_subset takes its size from DES's run).
METHODS = ("des", *(m for m in selection.METHODS if m != "des"))


def time_selection(
    method: str, pool_size: int, batch: int, group: int, steps: int, seed: int = 0, warmup: int = 5
) -> dict:
    """Median select / update / total ms per step for ``method`` at full scale, after ``warmup`` steps."""
    lcfg = LearnerConfig(pool_size=pool_size, group_size=group)
    pool = make_pool(lcfg, seed)
    selector = make_selector(pool.pool_info(), SelectionConfig(method=method), seed)
    learner = SimulatedLearner(pool, lcfg, seed)
    select_ms, update_ms = [], []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        selection = selector.select(step, batch)
        t1 = time.perf_counter()
        rewards, correct, stats = learner.rollout(selection.prompt_ids)
        t2 = time.perf_counter()
        selector.update(step, selection.prompt_ids, rewards, correct, stats)
        t3 = time.perf_counter()
        learner.train(selection.prompt_ids, correct)
        if step < warmup:
            continue
        select_ms.append((t1 - t0) * 1e3)
        update_ms.append((t3 - t2) * 1e3)
    total = np.add(select_ms, update_ms)
    return {
        "select_ms_median": float(np.median(select_ms)),
        "update_ms_median": float(np.median(update_ms)),
        "selection_ms_median": float(np.median(total)),
        "steps": steps,
    }


def time_argsort(pool_size: int, steps: int, seed: int = 0) -> float:
    """Median ms of one AdaRFT-style full ``np.argsort`` of |difficulty - target| over the pool."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(pool_size)
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        np.argsort(np.abs(difficulty - 0.5 + 0.001 * step), kind="stable")
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def compare_methods(lcfg: LearnerConfig, seeds: int, steps: int, batch: int) -> dict[str, dict]:
    """Every method over ``seeds`` on the same pools and steps (a screening round's rollouts come on top);
    per-method summary dicts."""
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in range(seeds):
        pool = make_pool(lcfg, seed)
        for method in METHODS:
            if method == "random_subset":
                size = max(batch, runs["des"][-1]["unique_prompts"])
                scfg = SelectionConfig(method=method, random_subset_size=size)
            else:
                scfg = SelectionConfig(method=method)
            runs[method].append(run_schedule(scfg, lcfg, seed, steps, batch, pool=pool))
    results = {}
    for method, rs in runs.items():
        acc = np.array([r["final_accuracy"] for r in rs])
        results[method] = {
            "final_accuracy": float(acc.mean()),
            "final_accuracy_std": float(acc.std(ddof=1) if len(acc) > 1 else 0.0),
            "unique_prompts": float(np.mean([r["unique_prompts"] for r in rs])),
            "rollouts": int(rs[0]["rollouts"]),
            "zero_variance_fraction": float(np.mean([r["zero_variance_fraction"] for r in rs])),
            "initial_accuracy": float(rs[0]["curve"][0][1]),
            "curve": np.mean([np.array(r["curve"]) for r in rs], axis=0).tolist(),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--pool", type=int, default=220_000)
    parser.add_argument("--perf-steps", type=int, default=50)
    parser.add_argument(
        "--learner",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a LearnerConfig field, e.g. --learner repeat_discount=0 (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds x 60 steps, 20 perf steps (smoke run)")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "curriculum.json"))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.perf_steps = 2, 60, 20

    overrides = dict(item.split("=", 1) for item in args.learner)
    fields = {f.name: f.type for f in dataclasses.fields(LearnerConfig)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        parser.error(f"--learner {unknown[0]} is not a LearnerConfig field: use one of {', '.join(fields)}")
    typed = {k: (int(v) if fields[k] in ("int", int) else float(v)) for k, v in overrides.items()}
    lcfg = LearnerConfig(**{"pool_size": args.pool, **typed})
    started = time.perf_counter()
    results = compare_methods(lcfg, args.seeds, args.steps, args.batch)
    compare_s = time.perf_counter() - started
    perf = {m: time_selection(m, args.pool, 1024, 8, args.perf_steps) for m in ("des", "adarft")}
    argsort_ms = time_argsort(args.pool, args.perf_steps)
    des_ms = perf["des"]["selection_ms_median"]
    results["des"]["selection_ms_median"] = des_ms
    results["adarft"]["selection_ms_median"] = perf["adarft"]["selection_ms_median"]
    performance = {
        "pool": args.pool,
        "batch": 1024,
        "group_size": 8,
        **perf,
        "argsort_ms_median": argsort_ms,
        "argsort_over_des": argsort_ms / des_ms,
        "adarft_over_des": perf["adarft"]["selection_ms_median"] / des_ms,
        "budget_ms": 5.0,
    }
    out = {
        "config": {
            "seeds": args.seeds,
            "steps": args.steps,
            "batch": args.batch,
            "pool": args.pool,
            "group_size": lcfg.group_size,
            "learner": vars(lcfg),
            "compare_seconds": compare_s,
        },
        "selection_ms_median": des_ms,
        "argsort_ms_median": argsort_ms,
        "methods": results,
        "performance": performance,
        **results,
    }
    print(f"{'method':<14}{'final_acc':>10}{'std':>8}{'unique':>10}{'rollouts':>10}{'zero_var':>10}")
    for method in METHODS:
        r = results[method]
        print(
            f"{method:<14}{r['final_accuracy']:>10.4f}{r['final_accuracy_std']:>8.4f}"
            f"{r['unique_prompts']:>10.0f}{r['rollouts']:>10d}{r['zero_variance_fraction']:>10.3f}"
        )
    print(
        f"initial accuracy {results['des']['initial_accuracy']:.4f}; {args.seeds} seeds x {args.steps} steps x "
        f"{args.batch} prompts x G {lcfg.group_size}, pool {args.pool}, {compare_s:.1f} s"
    )
    for method, p in perf.items():
        print(
            f"perf {method:<8} select {p['select_ms_median']:.3f} ms  update {p['update_ms_median']:.3f} ms  "
            f"total {p['selection_ms_median']:.3f} ms (median, pool {args.pool}, batch 1024, G 8)"
        )
    print(
        f"perf argsort  full np.argsort over the pool {argsort_ms:.3f} ms = {argsort_ms / des_ms:.1f}x DES "
        f"select+update; budget 5 ms"
    )
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
