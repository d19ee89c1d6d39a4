"""Prompt pools: the synthetic generator or rows from JSONL/JSON/Parquet/HF datasets.

A ``PromptPool`` gives the trainer rows by prompt id (``{"id", "prompt", "answer", "level"}``), the
``PoolInfo`` arrays the selector needs (prior difficulty in [0, 1], reference chain-of-thought
length; NaN where unknown) and a held-out split. File rows are mapped through configurable field
names; GSM8K references (``... #### 72``) and MATH answers or ``\\boxed{}`` solutions are reduced
to the final answer. Rows without an answer are counted and skipped, or raise, by config.

``format_prompts`` turns questions into prompt texts (the config's template, then the tokenizer's
chat template).

Left out on purpose: streaming datasets larger than memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from scalingrl.rewards import extract_answer
from scalingrl.synthetic import SyntheticTask

__all__ = ["PromptPool", "PoolInfo", "DataError", "load_rows", "build_pools", "format_prompts"]


class DataError(ValueError):
    """A data set is missing, empty or malformed; the message names the file and the fix."""


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSONL, JSON (array, or {"data": [...]}) or Parquet file, or a saved HF dataset folder."""
    file = Path(path)
    if not file.exists():
        raise DataError(f"data file {str(file)!r} does not exist; set data.path / data.eval_path to an existing file")
    if file.is_dir():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(file))
        except Exception as error:
            raise DataError(f"{str(file)!r} is a folder but not a saved HF dataset ({error})") from error
        if isinstance(loaded, datasets.DatasetDict):
            split = "train" if "train" in loaded else next(iter(loaded))
            loaded = loaded[split]
        return [dict(row) for row in loaded]
    suffix = "".join(file.suffixes[-1:]).lower()
    try:
        if suffix == ".jsonl":
            with file.open() as handle:
                return [json.loads(line) for line in handle if line.strip()]
        if suffix == ".json":
            data = json.loads(file.read_text())
            if isinstance(data, dict):
                data = data.get("data", data.get("rows"))
            if not isinstance(data, list):
                raise DataError(f"{str(file)!r}: expected a JSON array of rows (or {{'data': [...]}})")
            return data
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(file).to_pylist()
    except (json.JSONDecodeError, OSError) as error:
        raise DataError(f"could not read {str(file)!r}: {error}") from error
    raise DataError(
        f"{str(file)!r}: unsupported format {suffix!r}; use .jsonl, .json, .parquet or a saved HF dataset folder"
    )


def _reference(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    if "####" in text or "\\boxed" in text:
        return extract_answer(text)
    return text


def _level(raw: Any) -> float:
    if raw is None:
        return math.nan
    if isinstance(raw, (int, float)):
        return float(raw)
    match = re.search(r"-?\d+(?:\.\d+)?", str(raw))
    return float(match.group()) if match else math.nan


@dataclasses.dataclass
class PoolInfo:
    """What the data set knows about its prompts before any rollout.

    Attributes:
        size: number of prompts P.
        prior_difficulty: (P,) float64 in [0, 1] (e.g. (MATH level - 1) / 4); NaN = unknown.
        reference_cot_length: (P,) float64 length of the reference solution; NaN = unknown.
    """

    size: int
    prior_difficulty: np.ndarray | None = None
    reference_cot_length: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"PoolInfo.size={self.size}: the prompt pool is empty")
        for name in ("prior_difficulty", "reference_cot_length"):
            values = getattr(self, name)
            if values is not None:
                values = np.asarray(values, dtype=np.float64)
                if values.shape != (self.size,):
                    raise ValueError(f"PoolInfo.{name} has shape {values.shape}, expected ({self.size},)")
                setattr(self, name, values)


class PromptPool:
    """Prompts by id with answers, difficulty priors and chain-of-thought lengths.

    Build with ``PromptPool.from_rows`` or ``PromptPool.synthetic``.
    """

    def __init__(
        self, size: int, row_fn, prior_difficulty: np.ndarray, cot_length: np.ndarray, stats: dict[str, Any]
    ) -> None:
        self._size, self._row_fn = size, row_fn
        self.prior_difficulty, self.reference_cot_length, self.stats = prior_difficulty, cot_length, stats

    def __len__(self) -> int:
        return self._size

    def rows(self, ids) -> list[dict[str, Any]]:
        """Rows ``{"id", "prompt", "answer", "level"}`` for (n,) int prompt ids."""
        return [self._row_fn(int(i)) for i in np.asarray(ids).reshape(-1)]

    def pool_info(self):
        """The selector's view of the pool (``PoolInfo``)."""
        return PoolInfo(
            size=len(self), prior_difficulty=self.prior_difficulty, reference_cot_length=self.reference_cot_length
        )

    @classmethod
    def synthetic(cls, task: SyntheticTask, split: str = "train", size: int | None = None) -> PromptPool:
        n = size if size is not None else len(task)
        cache: dict[int, dict[str, Any]] = {}

        def row(index: int) -> dict[str, Any]:
            if index not in cache:
                problem = task.problem(index, split)
                cache[index] = {"id": index, "prompt": problem.prompt, "answer": problem.answer, "level": problem.level}
            return cache[index]

        ids = np.arange(n)
        levels = task.level_of(ids, split)
        prior = levels / max(task.num_levels - 1, 1)
        steps = np.array([operands - 1 for _, operands, _ in task.levels], dtype=np.float64)[levels]
        return cls(
            n, row, prior.astype(np.float64), steps, {"rows_total": n, "rows_missing_answer": 0, "source": "synthetic"}
        )

    @classmethod
    def from_rows(
        cls,
        rows: list[dict[str, Any]],
        prompt_field: str,
        answer_field: str,
        level_field: str = "",
        missing_answers: str = "skip",
        name: str = "data",
        max_rows: int = 0,
    ) -> PromptPool:
        """Map raw rows through the field names; rows without an answer are skipped (counted) or raise."""
        if not rows:
            raise DataError(f"{name} is empty: it has no rows; point data.path/data.eval_path at a non-empty file")
        if prompt_field not in rows[0]:
            raise DataError(
                f"{name}: rows have no field {prompt_field!r} (fields: {sorted(rows[0])}); set data.prompt_field"
            )
        if answer_field not in rows[0] and all(answer_field not in row for row in rows[:100]):
            raise DataError(
                f"{name}: rows have no field {answer_field!r} (fields: {sorted(rows[0])}); set data.answer_field"
            )
        kept, missing = [], 0
        for index, row in enumerate(rows):
            reference = _reference(row.get(answer_field))
            if reference is None or not str(row.get(prompt_field) or "").strip():
                if missing_answers == "error":
                    raise DataError(
                        f"{name}: row {index} has no {answer_field!r} answer (or no prompt); "
                        "fix the row or set data.missing_answers=skip"
                    )
                missing += 1
                continue
            raw_answer = str(row.get(answer_field))
            cot = (
                float(len([line for line in raw_answer.split("####")[0].splitlines() if line.strip()]))
                if "####" in raw_answer
                else math.nan
            )
            level = _level(row.get(level_field)) if level_field else math.nan
            kept.append(
                {"id": len(kept), "prompt": str(row[prompt_field]), "answer": reference, "level": level, "cot": cot}
            )
            if max_rows and len(kept) >= max_rows:
                break
        if not kept:
            raise DataError(f"{name}: none of its {len(rows)} rows has an answer in {answer_field!r}")
        levels = np.array([row["level"] for row in kept], dtype=np.float64)
        prior = np.full(len(kept), np.nan)
        if np.isfinite(levels).any():
            low, high = np.nanmin(levels), np.nanmax(levels)
            prior = (levels - low) / (high - low) if high > low else np.where(np.isfinite(levels), 0.5, np.nan)
        cot = np.array([row["cot"] for row in kept], dtype=np.float64)
        stats = {"rows_total": len(rows), "rows_missing_answer": missing, "source": name}
        return cls(len(kept), lambda i: kept[i], prior, cot, stats)


def build_pools(data_config, eval_size: int, seed: int) -> tuple[PromptPool, PromptPool]:
    """(train pool, held-out pool) for a ``DataConfig``."""
    if data_config.source == "synthetic":
        from scalingrl.synthetic import SyntheticConfig

        synthetic = data_config.synthetic
        heldout = eval_size or synthetic.heldout_size or 1
        task = SyntheticTask(SyntheticConfig(**{**synthetic.__dict__, "heldout_size": heldout}))
        return PromptPool.synthetic(task, "train"), PromptPool.synthetic(task, "heldout", heldout)
    common = dict(
        prompt_field=data_config.prompt_field,
        answer_field=data_config.answer_field,
        level_field=data_config.level_field,
        missing_answers=data_config.missing_answers,
    )
    rows = load_rows(data_config.path)
    if data_config.eval_path:
        train = PromptPool.from_rows(rows, name=data_config.path, max_rows=data_config.max_prompts, **common)
        heldout = PromptPool.from_rows(load_rows(data_config.eval_path), name=data_config.eval_path, **common)
        return train, heldout
    if not rows:
        raise DataError(f"{data_config.path} is empty: it has no rows; point data.path at a non-empty file")
    order = np.random.default_rng(seed).permutation(len(rows))
    split = max(1, min(eval_size or 1, len(rows) // 5))
    if len(rows) < 2:
        raise DataError(f"{data_config.path}: needs at least 2 rows to hold some out, or set data.eval_path")
    heldout = PromptPool.from_rows([rows[i] for i in order[:split]], name=f"{data_config.path} (held out)", **common)
    train = PromptPool.from_rows(
        [rows[i] for i in order[split:]], name=data_config.path, max_rows=data_config.max_prompts, **common
    )
    return train, heldout


def format_prompts(
    tokenizer, questions: list[str], template: str = "{prompt}", use_chat_template: bool = True, system_prompt: str = ""
) -> list[str]:
    """Prompt texts: ``template`` around each question, then the tokenizer's chat template if it has one.

    With a chat template the returned text already holds the special tokens, so the rollout engine
    tokenizes it without adding a BOS (``add_special_tokens`` is left to the tokenizer's own rules).
    """
    texts = [template.format(prompt=question) for question in questions]
    if not (use_chat_template and getattr(tokenizer, "chat_template", None)):
        return texts
    out = []
    for text in texts:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": text}
        ]
        out.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return out
