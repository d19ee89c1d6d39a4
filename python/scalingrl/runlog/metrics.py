"""Run records: metrics.jsonl, TensorBoard events and the progress bar.

``MetricsRecorder.log(step, metrics)`` appends one JSON line per step (flushed, so a killed run keeps
every finished step), mirrors scalar values to TensorBoard, and updates a tqdm bar showing step,
reward, pool size and ETA. On resume, ``truncate_after(step)`` drops lines a killed run wrote past its
last checkpoint so the file reads as one uninterrupted run.

Left out on purpose: the selection log and per-prompt exports (``scalingrl.runlog.selection_log``) and
plots (``scalingrl.runlog.report``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scalingrl.fileio import read_jsonl, staged

__all__ = ["MetricsRecorder", "read_metrics"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl ([] when it does not exist yet), by the JSONL rule of
    ``scalingrl.fileio.read_jsonl``: a torn last line is skipped; a damaged line elsewhere raises ValueError."""
    path = Path(path)
    return read_jsonl(path) if path.exists() else []


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


class MetricsRecorder:
    """metrics.jsonl + TensorBoard + progress bar for one run.

    Args:
        out_dir: run folder.
        total_steps: steps of the run (for the bar's ETA).
        start_step: first step this process runs (after a resume).
        tensorboard: write TensorBoard events under ``out_dir/tensorboard``.
        progress_bar: show tqdm.
    """

    def __init__(
        self, out_dir: Path, total_steps: int, start_step: int = 0, tensorboard: bool = True, progress_bar: bool = True
    ) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step or None)
        self.bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="GRPO", unit="step", dynamic_ncols=True)
        self.handle = self.path.open("a")

    def truncate_after(self, step: int) -> None:
        """Keep only lines with ``step <= step`` (records a killed run wrote after its last checkpoint)."""
        self.handle.close()
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= step]
        with staged(self.path) as staging:  # a kill during the rewrite keeps the old file
            staging.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.handle = self.path.open("a")

    def log(self, step: int, metrics: dict[str, Any], advance: bool = True) -> None:
        row = {"step": step, **{key: _clean(value) for key, value in metrics.items()}}
        self.handle.write(json.dumps(row) + "\n")
        self.handle.flush()
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    self.writer.add_scalar(key.replace(".", "/"), value, step)
        if self.bar is not None and advance:
            postfix = {}
            for key, label in (("reward_mean", "reward"), ("pool_size", "pool"), ("eval_accuracy", "eval")):
                value = row.get(key)
                if value is not None:
                    whole = isinstance(value, int) or (
                        isinstance(value, float) and value.is_integer() and key == "pool_size"
                    )
                    postfix[label] = f"{int(value)}" if whole else f"{value:.3f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        self.handle.close()
        if self.writer is not None:
            self.writer.close()
        if self.bar is not None:
            self.bar.close()
