"""Reward throughput and the batch deadline: ``scalingrl.rewards.math_accuracy`` against calling
math-verify directly (``verify(parse(reference), parse(completion))`` per item, in this process), the
way a user would without this module.

Workloads (real data from ../shared/data):
  gsm8k: GSM8K test solutions as completions, ending "The answer is X." with X the item's own answer
         (positives) or the next item's (negatives), half each.
  math:  MATH-500 answers as ``$\\boxed{X}$`` completions, own answer or the next item's, half each (the
         negatives go through math-verify in the pool).
  deadline: ``--deadline-size`` MATH completions (as above) plus 5 pathological items (deep nesting,
         towers of powers, very long sums), timeout_s = ``--timeout``: wall time as a multiple of
         timeout_s, and how many correct items still score 1, next to the same batch without them.

Prints a table and writes benchmarks/results/rewards.json. Absolute times on a shared CPU are noise;
read the ratios measured in the same run.

    python benchmarks/bench_rewards.py [--workers 2] [--gsm8k 500] [--math 200] [--deadline-size 200] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import platform
import time

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
PATHOLOGICAL = [
    "\\boxed{" + "(" * 5000 + "x" + ")" * 5000 + "}",
    "\\boxed{" + "\\frac{" * 200 + "1" + "}{2}" * 200 + "}",
    "\\boxed{10^{10^{10}}}",
    "\\boxed{2^{10000000}}",
    "\\boxed{" + "1+" * 3000 + "1}",
]


def gsm8k_workload(n: int) -> tuple[list[str], list[str], list[float]]:
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[:n]]
    answers = [row["answer"].rsplit("####", 1)[1].strip() for row in rows]
    completions, expected = [], []
    for i, row in enumerate(rows):
        body = row["answer"].rsplit("####", 1)[0].strip()
        given = answers[i] if i % 2 == 0 else answers[(i + 1) % len(rows)]
        completions.append(f"{body}\nThe answer is {given}.")
        expected.append(float(given.replace(",", "") == answers[i].replace(",", "")))
    return completions, [row["answer"] for row in rows], expected


def math_workload(n: int, offset: int = 0) -> tuple[list[str], list[str], list[float]]:
    rows = json.loads((DATA / "math" / "test500.json").read_text())
    rows = (rows[offset:] + rows[:offset])[:n]
    answers = [row["answer"] for row in rows]
    completions, expected = [], []
    for i, answer in enumerate(answers):
        given = answer if i % 2 == 0 else answers[(i + 1) % len(answers)]
        completions.append(f"Working it out step by step gives the result.\nThe final answer is $\\boxed{{{given}}}$.")
        expected.append(1.0 if given == answer else float("nan"))  # negatives: another answer, almost always wrong
    return completions, answers, expected


def math_verify_direct(completions: list[str], references: list[str]) -> list[float]:
    """What a user writes without this module: math-verify on the raw texts, one by one, in-process."""
    from math_verify import parse, verify

    scores = []
    for completion, reference in zip(completions, references):
        gold = parse(reference if "####" in reference or "$" in reference else f"${reference}$")
        if "####" in reference:
            gold = parse(reference.rsplit("####", 1)[1])
        scores.append(float(bool(gold) and verify(gold, parse(completion))))
    return scores


def timed(function, *args, **kwargs) -> tuple[list[float], float]:
    started = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - started


def throughput(name: str, completions, references, expected, workers: int) -> dict:
    from scalingrl.rewards import math_accuracy, shutdown_pool

    row = {"workload": name, "items": len(completions)}
    for count in (1, workers):
        shutdown_pool()
        _, start_s = timed(math_accuracy, ["\\boxed{\\sqrt{4}}"], ["2"], workers=count)  # pool start
        scores, seconds = timed(math_accuracy, completions, references, workers=count)
        row[f"pool_start_s_{count}"] = start_s
        row[f"items_per_s_{count}"] = len(completions) / seconds
        row[f"accuracy_{count}"] = sum(scores) / len(scores)
        mismatched = [i for i, (s, e) in enumerate(zip(scores, expected)) if e == e and s != e]
        row[f"wrong_on_positives_or_gsm8k_{count}"] = len(mismatched)
    direct, seconds = timed(math_verify_direct, completions, references)
    row["math_verify_items_per_s"] = len(completions) / seconds
    row["math_verify_accuracy"] = sum(direct) / len(direct)
    row["math_verify_wrong_on_positives_or_gsm8k"] = sum(1 for s, e in zip(direct, expected) if e == e and s != e)
    return row


def deadline(size: int, timeout_s: float, workers: int) -> list[dict]:
    from scalingrl.rewards import math_accuracy, shutdown_pool

    completions, references, expected = math_workload(size, offset=250)
    rows = []
    for count in sorted({1, workers}):
        shutdown_pool()
        math_accuracy(["\\boxed{\\sqrt{4}}"], ["2"], workers=count)
        clean, clean_s = timed(math_accuracy, completions, references, timeout_s=timeout_s, workers=count)
        # pathological items first: the worst case for the items queued behind them
        mixed, mixed_s = timed(
            math_accuracy,
            PATHOLOGICAL + completions,
            ["3"] * len(PATHOLOGICAL) + references,
            timeout_s=timeout_s,
            workers=count,
        )
        kept = sum(1 for a, b in zip(clean, mixed[len(PATHOLOGICAL) :]) if a == 1.0 and b == 1.0)
        rows.append(
            {
                "workers": count,
                "timeout_s": timeout_s,
                "items": len(completions) + len(PATHOLOGICAL),
                "clean_wall_s": clean_s,
                "wall_s": mixed_s,
                "wall_over_timeout": mixed_s / timeout_s,
                "extra_over_timeout": (mixed_s - clean_s) / timeout_s,
                "correct_scored_1": kept,
                "correct_in_clean_batch": int(sum(clean)),
                "pathological_scored_0": sum(1 for s in mixed[: len(PATHOLOGICAL)] if s == 0.0),
            }
        )
    direct, direct_s = timed(math_verify_direct, PATHOLOGICAL, ["3"] * len(PATHOLOGICAL))
    rows.append(
        {
            "workers": "math-verify direct (pathological items only)",
            "timeout_s": 5,
            "items": len(PATHOLOGICAL),
            "wall_s": direct_s,
            "wall_over_timeout": direct_s / timeout_s,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gsm8k", type=int, default=500)
    parser.add_argument("--math", type=int, default=200)
    parser.add_argument("--deadline-size", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "rewards.json"))
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"needs the data sets at {DATA} (../shared/data beside the checkout)")
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # timeouts on pathological items are expected

    rows = [
        throughput("gsm8k", *gsm8k_workload(args.gsm8k), workers=args.workers),
        throughput("math", *math_workload(args.math), workers=args.workers),
    ]
    w = args.workers
    print(
        f"\n| workload | items | math_accuracy 1 worker items/s | {w} workers items/s | math-verify direct items/s "
        f"| 1 worker / direct | {w} workers / direct | wrong (ours 1w / {w}w / direct) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['items']} | {row['items_per_s_1']:.0f} | {row[f'items_per_s_{w}']:.0f} "
            f"| {row['math_verify_items_per_s']:.1f} | {row['items_per_s_1'] / row['math_verify_items_per_s']:.1f}x "
            f"| {row[f'items_per_s_{w}'] / row['math_verify_items_per_s']:.1f}x "
            f"| {row['wrong_on_positives_or_gsm8k_1']} / {row[f'wrong_on_positives_or_gsm8k_{w}']} / "
            f"{row['math_verify_wrong_on_positives_or_gsm8k']} |"
        )

    deadline_rows = deadline(args.deadline_size, args.timeout, args.workers)
    print(
        f"\n| batch deadline, timeout_s = {args.timeout:g} | items | wall s | wall / timeout_s | clean batch s "
        f"| correct still 1 | pathological 0 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in deadline_rows:
        if isinstance(row["workers"], int):
            print(
                f"| math_accuracy, {row['workers']} worker(s), 5 pathological first | {row['items']} "
                f"| {row['wall_s']:.1f} "
                f"| {row['wall_over_timeout']:.2f} | {row['clean_wall_s']:.1f} "
                f"| {row['correct_scored_1']}/{row['correct_in_clean_batch']} "
                f"| {row['pathological_scored_0']}/{len(PATHOLOGICAL)} |"
            )
        else:
            print(f"| {row['workers']} | {row['items']} | {row['wall_s']:.1f} | {row['wall_over_timeout']:.2f} | | | |")

    out = {
        "config": {**vars(args), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "throughput": rows,
        "deadline": deadline_rows,
    }
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
