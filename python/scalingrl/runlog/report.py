"""End-of-run report: PNG plots and a markdown summary from a run folder's records.

``write_report(run_dir, summary)`` reads ``metrics.jsonl`` and writes ``report/`` with
``reward_eval.png`` (reward mean and held-out accuracy over steps), ``pool_mix.png`` (pool size and
the explore/exploit mix), ``difficulty.png`` (histogram of the selected prompts' difficulty levels
over time), ``timing.png`` (time split per step) and ``report.md``. ``python -m scalingrl.runlog.report RUN``
rebuilds it for a finished or interrupted run.

Left out on purpose: interactive dashboards (TensorBoard has the same scalars).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from scalingrl.runlog.metrics import read_metrics

__all__ = ["write_report"]


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [
        (row["step"], row[key])
        for row in rows
        if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
    ]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(np.pad(values, (window - 1, 0), mode="edge"), kernel, mode="valid")


def _plots(rows: list[dict[str, Any]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    steps, reward = _series(rows, "reward_mean")
    ax.plot(steps, reward, alpha=0.3, color="C0")
    ax.plot(steps, _smooth(reward), color="C0", label="train reward (smoothed)")
    steps, accuracy = _series(rows, "eval_accuracy")
    ax.plot(steps, accuracy, "o-", color="C1", label="held-out accuracy")
    ax.set_xlabel("step"), ax.set_ylabel("reward / accuracy"), ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout(), fig.savefig(out / "reward_eval.png", dpi=100), plt.close(fig)
    made.append("reward_eval.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    steps, pool = _series(rows, "pool_size")
    ax.plot(steps, pool, color="C2", label="pool size")
    ax.set_xlabel("step"), ax.set_ylabel("pool size")
    twin = ax.twinx()
    steps, explore = _series(rows, "explore_fraction")
    twin.plot(steps, _smooth(explore), color="C3", label="explore fraction (smoothed)")
    steps, zero_var = _series(rows, "zero_variance_fraction")
    twin.plot(steps, _smooth(zero_var), color="C4", label="zero-variance groups (smoothed)")
    twin.set_ylim(0, 1), twin.set_ylabel("fraction")
    fig.legend(loc="upper right"), fig.tight_layout(), fig.savefig(out / "pool_mix.png", dpi=100), plt.close(fig)
    made.append("pool_mix.png")

    level_rows = [
        (row["step"], level) for row in rows for level in (row.get("selected_levels") or []) if level is not None
    ]
    if level_rows:
        steps, levels = np.asarray(level_rows, dtype=float).T
        fig, ax = plt.subplots(figsize=(7, 4))
        step_bins = min(40, max(1, int(steps.max() - steps.min() + 1)))
        level_bins = np.arange(levels.min() - 0.5, levels.max() + 1.5)
        hist, xedges, yedges = np.histogram2d(steps, levels, bins=[step_bins, level_bins])
        hist = hist / np.maximum(hist.sum(1, keepdims=True), 1)
        mesh = ax.pcolormesh(xedges, yedges, hist.T, cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="share of selected prompts")
        ax.set_xlabel("step"), ax.set_ylabel("difficulty level")
        fig.tight_layout(), fig.savefig(out / "difficulty.png", dpi=100), plt.close(fig)
        made.append("difficulty.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    parts = ["time_selection_s", "time_rollout_s", "time_reward_s", "time_update_s"]
    bottom = None
    for part in parts:
        steps, values = _series(rows, part)
        if len(values):
            ax.bar(steps, values, bottom=bottom, width=1.0, label=part.replace("time_", "").replace("_s", ""))
            bottom = values if bottom is None else bottom + values
    ax.set_xlabel("step"), ax.set_ylabel("seconds"), ax.legend()
    fig.tight_layout(), fig.savefig(out / "timing.png", dpi=100), plt.close(fig)
    made.append("timing.png")
    return made


def write_report(run_dir: str | Path, summary: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/report/`` (plots + report.md); returns the markdown path."""
    run_dir = Path(run_dir)
    if summary is None:
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rows = [row for row in read_metrics(run_dir / "metrics.jsonl")]
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    plots = _plots(rows, out) if rows else []
    train_rows = [row for row in rows if "reward_mean" in row]
    means = {}
    for key in ("time_selection_s", "time_rollout_s", "time_reward_s", "time_update_s", "time_step_s", "tokens_per_s"):
        values = [row[key] for row in train_rows if isinstance(row.get(key), (int, float))]
        means[key] = float(np.mean(values)) if values else float("nan")
    lines = [
        f"# scalingrl run report: {run_dir.name}",
        "",
        "| | |",
        "|---|---|",
        f"| held-out accuracy | {summary.get('initial_eval_accuracy', float('nan')):.3f} -> "
        f"{summary.get('final_eval_accuracy', float('nan')):.3f} "
        f"({summary.get('eval_gain_points', float('nan')):+.1f} points) |",
        f"| steps | {summary.get('steps')} |",
        f"| wall clock | {summary.get('wall_clock_s', float('nan')):.0f} s |",
        f"| unique prompts used / pool | {summary.get('unique_prompts_used')} / {summary.get('pool_size')} |",
        f"| selection | {summary.get('selection_method')} |",
        f"| model | {summary.get('model')} |",
        f"| rows without an answer (skipped) | {summary.get('data_rows_missing_answer', 0)} |",
        "",
        "## Time per step (mean)",
        "",
        "| selection | rollout | reward | update | total | tokens/s |",
        "|---|---|---|---|---|---|",
        "| "
        + " | ".join(
            f"{means[k]:.3f}"
            for k in ("time_selection_s", "time_rollout_s", "time_reward_s", "time_update_s", "time_step_s")
        )
        + f" | {means['tokens_per_s']:.0f} |",
        "",
    ]
    final_eval = summary.get("final_eval", {})
    if final_eval.get("accuracy_by_level"):
        initial_levels = summary.get("initial_eval", {}).get("accuracy_by_level", {})
        lines += ["## Held-out accuracy by level", "", "| level | initial | final |", "|---|---|---|"]
        lines += [
            f"| {level} | {initial_levels.get(level, float('nan')):.3f} | {value:.3f} |"
            for level, value in final_eval["accuracy_by_level"].items()
        ]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots]
    lines += [
        "",
        "Records: `metrics.jsonl`, `tensorboard/`, `selection_log.jsonl`, `prompt_stats.parquet`, "
        "`used_prompts/`, `checkpoints/`, `config.yaml`, `summary.json`.",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m scalingrl.runlog.report RUN_DIR")
    print(write_report(sys.argv[1]))
