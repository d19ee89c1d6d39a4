"""What the selector (sampler + DES + curriculum state) costs per rank at 220K and 10M prompts.

Every data-parallel rank holds a full, identical copy of the selector (``docs/scaling.md``), so its
memory and per-step time are paid once per rank, and its ``state_dict`` goes into every checkpoint.
For each pool size this measures, for ``selection.method=des``:

- resident memory added by building the selector (RSS delta, MiB) and its bytes per prompt,
- ``select(step, B)`` and ``update(...)`` time per step (median over steps, B prompts x G samples),
- ``state_dict()`` time, its ``torch.save`` size on disk (MiB) and save time,
- ``state_digest`` time (the cross-rank equality check run at every checkpoint),
- the process's peak RSS (MiB; imports included, ~0.4 GiB) after all of the above,

side by side with the smallest thing a user would keep instead: one float64 score per prompt
(8 bytes/prompt; ``numpy.argsort`` of it for a batch, the usual "rank and take the top" baseline).

    python benchmarks/bench_state_cost.py                 # 220K and 10M, writes benchmarks/results/state_cost.json
    python benchmarks/bench_state_cost.py --sizes 220000  # one size
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * 4096 / 2**20


def measure(size: int, batch: int, group: int, steps: int, seed: int) -> dict:
    from scalingrl import distributed, selection
    from scalingrl.data import PoolInfo

    rng = np.random.default_rng(seed)
    prior = rng.random(size)
    info = PoolInfo(size, prior_difficulty=prior, reference_cot_length=rng.integers(20, 400, size).astype(np.float64))
    before = rss_mib()
    started = time.perf_counter()
    selector = selection.make_selector(info, selection.SelectionConfig(method="des"), seed=seed)
    build_s = time.perf_counter() - started
    memory_mib = rss_mib() - before
    select_s, update_s = [], []
    for step in range(steps):
        started = time.perf_counter()
        chosen = selector.select(step, batch)
        select_s.append(time.perf_counter() - started)
        ids = np.asarray(chosen.prompt_ids)
        correct = rng.random((len(ids), group)) < 0.4
        cot = {
            "entropy_mean": rng.random((len(ids), group)),
            "high_entropy_fraction": rng.random((len(ids), group)),
            "response_length": rng.integers(10, 500, (len(ids), group)).astype(np.float64),
        }
        started = time.perf_counter()
        selector.update(step, ids, correct.astype(np.float64), correct, cot)
        update_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    state = selector.state_dict()
    state_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:  # a file, as a checkpoint writes it (a BytesIO would double the peak)
        started = time.perf_counter()
        torch.save(state, Path(folder) / "selection.pt")
        save_s = time.perf_counter() - started
        checkpoint_bytes = (Path(folder) / "selection.pt").stat().st_size
    started = time.perf_counter()
    distributed.state_digest(state)
    digest_s = time.perf_counter() - started
    scores = rng.random(size)
    argsort_s = []
    for _ in range(3):
        started = time.perf_counter()
        np.argsort(-scores)[:batch]
        argsort_s.append(time.perf_counter() - started)
    return {
        "pool_size": size,
        "batch": batch,
        "group": group,
        "steps": steps,
        "build_s": build_s,
        "memory_mib": memory_mib,
        "bytes_per_prompt": memory_mib * 2**20 / size,
        "select_ms": 1e3 * statistics.median(select_s),
        "update_ms": 1e3 * statistics.median(update_s),
        "state_dict_s": state_s,
        "checkpoint_mib": checkpoint_bytes / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_save_s": save_s,
        "digest_s": digest_s,
        "baseline_float64_mib": size * 8 / 2**20,
        "baseline_argsort_ms": 1e3 * statistics.median(argsort_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[220_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=512, help="prompts per step (all ranks together)")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS / "state_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(size, args.batch, args.group, args.steps, args.seed) for size in args.sizes]
    header = (
        "pool",
        "build s",
        "RSS MiB",
        "B/prompt",
        "select ms",
        "update ms",
        "state_dict s",
        "ckpt MiB",
        "save s",
        "digest s",
        "float64 MiB (ratio)",
        "argsort ms (ratio to select)",
    )
    print(" | ".join(header))
    for r in rows:
        print(
            " | ".join(
                [
                    f"{r['pool_size']:,}",
                    f"{r['build_s']:.2f}",
                    f"{r['memory_mib']:.0f}",
                    f"{r['bytes_per_prompt']:.0f}",
                    f"{r['select_ms']:.2f}",
                    f"{r['update_ms']:.2f}",
                    f"{r['state_dict_s']:.2f}",
                    f"{r['checkpoint_mib']:.0f}",
                    f"{r['torch_save_s']:.2f}",
                    f"{r['digest_s']:.2f}",
                    f"{r['baseline_float64_mib']:.1f} ({r['memory_mib'] / r['baseline_float64_mib']:.1f}x)",
                    f"{r['baseline_argsort_ms']:.1f} ({r['baseline_argsort_ms'] / r['select_ms']:.1f}x)",
                ]
            )
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "args": vars(args),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
