"""Stage-then-rename writes and the torn-JSONL rule (scalingrl.fileio), and that every record reader follows it."""

import json

import pytest

from scalingrl import fileio
from scalingrl.runlog.metrics import MetricsRecorder, read_metrics
from scalingrl.runlog.selection_log import read_selection_log


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fileio.PARTIAL_SUFFIX))


def test_staged_file_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "sub" / "data.json"
    with fileio.staged(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".data.json.") and not target.exists()
        tmp.write_text("old")
    assert target.read_text() == "old"
    with pytest.raises(RuntimeError, match="disk full"):
        with fileio.staged(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and _leftovers(target.parent) == []


def test_staged_folder_replaces_an_existing_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("x")
    with fileio.staged(target, directory=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "weights.bin").write_text("w")
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"] and _leftovers(tmp_path) == []


def test_replacing_a_folder_never_deletes_the_old_one_first(tmp_path, monkeypatch):
    """A kill between moving the old folder aside and renaming the new one in leaves the old folder's
    files on disk (under a hidden name), not deleted; a clean publish leaves nothing aside."""
    import os

    target = tmp_path / "model"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    staging = fileio.stage(target, directory=True)
    (staging / "weights.bin").write_text("new")
    real_replace, calls = os.replace, []

    def killed_after_first(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        fileio.publish(staging, target)
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".model.") and p.name.endswith(".old")]
    assert len(kept) == 1 and (kept[0] / "weights.bin").read_text() == "old"
    fileio.publish(staging, target)
    assert (target / "weights.bin").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".old") and p != kept[0]]


def test_unique_staging_paths_differ_and_the_fixed_one_is_reused(tmp_path):
    target = tmp_path / "step-000004"
    assert fileio.stage(target) != fileio.stage(target)
    fixed = fileio.stage(target, directory=True, unique=False)
    (fixed / "partial-from-a-killed-run").write_text("x")
    assert fileio.stage(target, directory=True, unique=False) == fixed == tmp_path / ".step-000004.partial"
    assert not any(fixed.iterdir())  # a stale staging folder is emptied, not reused
    with pytest.raises(FileNotFoundError, match="nothing staged"):
        fileio.publish(tmp_path / "missing", target)


RECORDS = [{"step": 0, "x": [1, 2]}, {"step": 1, "x": None}, {"step": 2, "x": "a\nb"}]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines[:-1]) + lines[-1])


@pytest.mark.parametrize("tail", ['{"step": 3, "x": [1', '{"step"', "{", '{"step": 3}\n'])
def test_a_torn_last_line_is_skipped_by_every_reader(tmp_path, tail):
    path = tmp_path / "log.jsonl"
    _write(path, [json.dumps(r) for r in RECORDS] + ["", tail])
    expected = RECORDS + ([{"step": 3}] if tail.endswith("}\n") else [])
    assert fileio.read_jsonl(path) == expected
    assert read_metrics(path) == expected and read_selection_log(path) == expected


def test_a_damaged_line_before_the_end_raises_in_every_reader(tmp_path):
    path = tmp_path / "log.jsonl"
    _write(path, [json.dumps(RECORDS[0]), '{"step": 1, "x"', json.dumps(RECORDS[2])])
    for read in (fileio.read_jsonl, read_metrics, read_selection_log):
        with pytest.raises(ValueError, match=r"log\.jsonl:2 is not valid JSON"):
            read(path)


def test_metrics_rewrite_on_resume_drops_the_torn_line_and_later_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write(path, [json.dumps({"step": s, "reward_mean": s / 10}) for s in range(5)] + ['{"step": 5, "rew'])
    recorder = MetricsRecorder(tmp_path, total_steps=8, start_step=3, tensorboard=False, progress_bar=False)
    recorder.truncate_after(3)
    recorder.log(4, {"reward_mean": 0.9})
    recorder.close()
    assert [(r["step"], r["reward_mean"]) for r in read_metrics(path)] == [
        (0, 0.0),
        (1, 0.1),
        (2, 0.2),
        (3, 0.3),
        (4, 0.9),
    ]
    assert _leftovers(tmp_path) == []
