"""Selection records: the JSONL log (and its resume rule), the Parquet statistics, the frozen data set."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from scalingrl.data import PoolInfo
from scalingrl.runlog.selection_log import SelectionLog, export_prompt_stats, export_used_prompts, read_selection_log
from scalingrl.selection import SelectionConfig, make_selector


def selector_after(steps):
    selector = make_selector(PoolInfo(500), SelectionConfig(), seed=0)
    selections = []
    for step in range(steps):
        sel = selector.select(step, 16)
        rewards = np.tile([1.0, 0.0], (16, 2))
        selector.update(step, sel.prompt_ids, rewards, rewards > 0)
        selections.append(sel)
    return selector, selections


def test_selection_log_round_trip_and_resume(tmp_path):
    _, selections = selector_after(4)
    path = tmp_path / "log.jsonl"
    with SelectionLog(path) as log:
        for sel in selections:
            log.write(sel)
    records = read_selection_log(path)
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert records[2]["prompt_ids"] == selections[2].prompt_ids.tolist()
    assert records[2]["is_explore"] == selections[2].is_explore.tolist()
    assert records[2]["difficulty"] == pytest.approx(selections[2].factors["difficulty"].tolist())
    with open(path, "a") as f:
        f.write('{"step": 4, "prompt_')  # a run killed mid-write
    assert len(read_selection_log(path)) == 4
    with SelectionLog(path, keep_before_step=2) as log:  # resume from the step-2 checkpoint
        log.write(selections[2])
    assert [r["step"] for r in read_selection_log(path)] == [0, 1, 2]
    SelectionLog(path).close()
    assert read_selection_log(path) == []


def test_prompt_stats_export(tmp_path):
    selector, _ = selector_after(3)
    table = pq.read_table(export_prompt_stats(selector, tmp_path / "stats.parquet")).to_pydict()
    assert sorted(table["prompt_id"]) == selector.used_prompt_ids().tolist()
    assert sum(table["visits"]) == 3 * 16
    assert {"des", "difficulty", "cot_complexity", "adaptability", "pass_last"} <= set(table)


def test_used_prompts_export(tmp_path):
    from datasets import load_dataset

    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(3)]
    out = export_used_prompts(np.array([5, 9, 42]), rows, tmp_path / "used", {"pool_size": 100, "source": "test"})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["pool_size"] == 100
    assert manifest["sha256"] == hashlib.sha256((out / "prompts.jsonl").read_bytes()).hexdigest()
    data = load_dataset("json", data_files=str(out / "prompts.jsonl"), split="train")
    assert data["pool_id"] == [5, 9, 42] and data["answer"] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="2 prompt ids but 3 rows"):
        export_used_prompts(np.array([1, 2]), rows, tmp_path / "bad", {})
