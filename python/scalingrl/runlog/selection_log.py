"""Records of data selection: the per-step selection log, per-prompt statistics, the frozen data set.

- ``SelectionLog``: one JSON line per step (prompt ids, explore/exploit, DES and each factor at
  selection), appended and flushed as the run goes so a killed run keeps its log.
- ``export_prompt_stats``: the store's per-prompt columns for every prompt trained on (Parquet).
- ``export_used_prompts``: the prompts a run actually trained on, as a JSONL data set with a manifest
  (counts, pool size, source, SHA-256), loadable with ``datasets.load_dataset("json", ...)``.

Left out on purpose: plotting (``scalingrl.runlog.report``) and metrics (``scalingrl.runlog.metrics``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scalingrl.fileio import read_jsonl, staged
from scalingrl.selection import Selection


def _number(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


class SelectionLog:
    """Append-only JSONL log of selections: ``{"step", "prompt_ids", "is_explore", "des", <factor>...}``.

    ``keep_before_step``: on resume from step s, pass s: records of steps < s are kept, later ones
    (written after the checkpoint by the run that died) are dropped; 0 starts a fresh log.
    """

    def __init__(self, path: str | Path, keep_before_step: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_before_step > 0 and self.path.exists():
            kept = [r for r in read_selection_log(self.path) if r["step"] < keep_before_step]
        with staged(self.path) as staging:  # a kill during the rewrite keeps the old log
            staging.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, selection: Selection) -> None:
        record = {
            "step": int(selection.step),
            "prompt_ids": [int(i) for i in selection.prompt_ids],
            "is_explore": [bool(x) for x in selection.is_explore],
            "des": [_number(x) for x in selection.des],
            **{name: [_number(x) for x in values] for name, values in selection.factors.items()},
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SelectionLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_selection_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a selection log, in order, by the JSONL rule of ``scalingrl.fileio.read_jsonl``
    (a torn last line from a killed run is skipped; a damaged line elsewhere raises ValueError)."""
    return read_jsonl(path)


def export_prompt_stats(selector, path: str | Path) -> Path:
    """Write ``selector.prompt_stats()`` (one row per prompt trained on) as Parquet."""
    path = Path(path)
    table = pa.table({name: np.asarray(values) for name, values in selector.prompt_stats().items()})
    with staged(path) as staging:
        pq.write_table(table, staging)
    return path


def export_used_prompts(prompt_ids: np.ndarray, rows: list[dict], out_dir: str | Path, manifest: dict) -> Path:
    """Write the prompts a run trained on as ``out_dir/prompts.jsonl`` plus ``out_dir/manifest.json``.

    Args:
        prompt_ids: (K,) int64 pool indices of the used prompts.
        rows: the K data-set rows (dicts, e.g. prompt and answer) in the same order.
        manifest: extra fields for the manifest (pool size, source, run name ...).
    """
    ids = np.asarray(prompt_ids, dtype=np.int64)
    if len(ids) != len(rows):
        raise ValueError(f"{len(ids)} prompt ids but {len(rows)} rows: they must match one to one")
    out = Path(out_dir)
    lines = [json.dumps({"pool_id": int(i), **row}, default=str) + "\n" for i, row in zip(ids, rows)]
    payload = "".join(lines).encode("utf-8")
    with staged(out / "prompts.jsonl") as staging:
        staging.write_bytes(payload)
    info = {**manifest, "count": len(ids), "file": "prompts.jsonl", "sha256": hashlib.sha256(payload).hexdigest()}
    with staged(out / "manifest.json") as staging:
        staging.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out
