"""Side-by-side comparison of prompt-selection methods on the simulated learner, plus the selection cost.

Runs ``des``, ``uniform``, ``random_subset``, ``dapo`` and ``adarft`` on the same synthetic 220K pool
over several seeds (``scalingrl.sim``), prints a table and writes benchmarks/results/curriculum.json.
The performance section times select + update per step (pool 220K, batch 1024, G = 8) for the DES
selector against the AdaRFT-style full argsort over the pool, in the same run.

    python benchmarks/bench_curriculum.py [--seeds 3] [--steps 150] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from scalingrl.selection import SelectionConfig, make_selector
from scalingrl.sim import LearnerConfig, SimulatedLearner, make_pool, run_method

METHODS = ("des", "uniform", "random_subset", "dapo", "adarft")


def time_selection(method: str, pool_size: int, batch: int, group: int, steps: int, seed: int = 0) -> dict:
    """Median select / update / total ms per step for ``method`` at full scale."""
    lcfg = LearnerConfig(pool_size=pool_size, group_size=group)
    pool = make_pool(lcfg, seed)
    selector = make_selector(pool.pool_info(), SelectionConfig(method=method), seed)
    learner = SimulatedLearner(pool, lcfg, seed)
    select_ms, update_ms = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        selection = selector.select(step, batch)
        t1 = time.perf_counter()
        rewards, correct, stats = learner.rollout(selection.prompt_ids)
        t2 = time.perf_counter()
        selector.update(step, selection.prompt_ids, rewards, correct, stats)
        t3 = time.perf_counter()
        learner.train(selection.prompt_ids, correct)
        select_ms.append((t1 - t0) * 1e3)
        update_ms.append((t3 - t2) * 1e3)
    total = np.add(select_ms, update_ms)
    return {"select_ms_median": float(np.median(select_ms)), "update_ms_median": float(np.median(update_ms)),
            "selection_ms_median": float(np.median(total)), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--pool", type=int, default=220_000)
    parser.add_argument("--perf-steps", type=int, default=40)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "curriculum.json"))
    args = parser.parse_args()

    lcfg = LearnerConfig(pool_size=args.pool)
    results: dict[str, dict] = {}
    for method in METHODS:
        runs = []
        for seed in range(args.seeds):
            runs.append(run_method(method, seed, args.steps, args.batch, lcfg, pool=make_pool(lcfg, seed)))
        acc = np.array([r["final_accuracy"] for r in runs])
        results[method] = {
            "final_accuracy": float(acc.mean()), "final_accuracy_std": float(acc.std(ddof=1) if len(acc) > 1 else 0.0),
            "unique_prompts": float(np.mean([r["unique_prompts"] for r in runs])),
            "rollouts": int(runs[0]["rollouts"]),
            "curve": np.mean([np.array(r["curve"]) for r in runs], axis=0).tolist(),
            "initial_accuracy": float(runs[0]["curve"][0][1]),
        }
    perf = {m: time_selection(m, args.pool, 1024, 8, args.perf_steps) for m in ("des", "adarft")}
    results["des"]["selection_ms_median"] = perf["des"]["selection_ms_median"]
    results["adarft"]["selection_ms_median"] = perf["adarft"]["selection_ms_median"]
    out = {"config": {"seeds": args.seeds, "steps": args.steps, "batch": args.batch, "pool": args.pool,
                      "group_size": lcfg.group_size, "learner": vars(lcfg)},
           "methods": results, "performance": {"pool": args.pool, "batch": 1024, "group_size": 8, **perf},
           **results}
    print(f"{'method':<14}{'final_acc':>10}{'std':>8}{'unique':>10}{'rollouts':>10}")
    for method in METHODS:
        r = results[method]
        print(f"{method:<14}{r['final_accuracy']:>10.4f}{r['final_accuracy_std']:>8.4f}"
              f"{r['unique_prompts']:>10.0f}{r['rollouts']:>10d}")
    print(f"initial accuracy {results['des']['initial_accuracy']:.4f}")
    for method, p in perf.items():
        print(f"perf {method:<8} select {p['select_ms_median']:.3f} ms  update {p['update_ms_median']:.3f} ms  "
              f"total {p['selection_ms_median']:.3f} ms (median, pool {args.pool}, batch 1024, G 8)")
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
