"""Prompt data loading: JSONL, JSON, Parquet and HF datasets with a field mapping; GSM8K and MATH
out of the box; clear errors for missing, empty and answerless data."""

import json
from pathlib import Path

import numpy as np
import pytest

from scalingrl.config import DataConfig
from scalingrl.data import DataError, PromptPool, build_pools, load_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not present")

ROWS = [
    {"q": "1+1?", "sol": "so #### 2", "lvl": "Level 1"},
    {"q": "2+2?", "sol": "\\boxed{4}", "lvl": "Level 3"},
    {"q": "3+3?", "sol": None, "lvl": "Level 2"},
    {"q": "4+4?", "sol": "8", "lvl": "Level 5"},
]


def _write(tmp_path, kind):
    if kind == "jsonl":
        path = tmp_path / "rows.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    elif kind == "json":
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(ROWS))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "rows.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    else:
        import datasets

        path = tmp_path / "hf_dataset"
        datasets.Dataset.from_list(ROWS).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json", "parquet", "hf"])
def test_formats_with_field_mapping(tmp_path, kind):
    rows = load_rows(_write(tmp_path, kind))
    pool = PromptPool.from_rows(rows, prompt_field="q", answer_field="sol", level_field="lvl")
    assert len(pool) == 3 and pool.stats["rows_missing_answer"] == 1
    assert [row["answer"] for row in pool.rows(np.arange(3))] == ["2", "4", "8"]
    np.testing.assert_allclose(pool.prior_difficulty, [0.0, 0.5, 1.0])


def test_missing_answers_error_mode(tmp_path):
    rows = load_rows(_write(tmp_path, "jsonl"))
    with pytest.raises(DataError, match="row 2 has no 'sol' answer.*missing_answers=skip"):
        PromptPool.from_rows(rows, prompt_field="q", answer_field="sol", missing_answers="error")


def test_missing_empty_and_wrong_fields(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_rows(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        PromptPool.from_rows(load_rows(empty), prompt_field="q", answer_field="a", name=str(empty))
    rows = load_rows(_write(tmp_path, "json"))
    with pytest.raises(DataError, match="no field 'question'.*data.prompt_field"):
        PromptPool.from_rows(rows, prompt_field="question", answer_field="sol")
    with pytest.raises(DataError, match="no field 'answer'.*data.answer_field"):
        PromptPool.from_rows(rows, prompt_field="q", answer_field="answer")
    bad = tmp_path / "rows.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported format"):
        load_rows(bad)


@needs_data
def test_gsm8k_and_math_out_of_the_box():
    config = DataConfig(
        source="file", path=str(DATA / "gsm8k" / "train.jsonl"), eval_path=str(DATA / "gsm8k" / "test.jsonl")
    )
    train, heldout = build_pools(config, eval_size=10, seed=0)
    assert len(train) > 7000 and len(heldout) > 1000
    row = heldout.rows([0])[0]
    assert row["answer"] == "18" and "ducks" in row["prompt"]
    assert np.isfinite(train.reference_cot_length).all()
    config = DataConfig(
        source="file", path=str(DATA / "math" / "test500.json"), prompt_field="problem", level_field="difficulty"
    )
    train, heldout = build_pools(config, eval_size=50, seed=0)
    assert len(train) + len(heldout) == 500 and len(heldout) == 50
    assert np.nanmin(train.prior_difficulty) == 0.0 and np.nanmax(train.prior_difficulty) == 1.0


def test_synthetic_pool_is_lazy_and_consistent():
    from scalingrl.synthetic import SyntheticConfig

    train, heldout = build_pools(DataConfig(synthetic=SyntheticConfig(size=220_000)), eval_size=32, seed=0)
    assert len(train) == 220_000 and len(heldout) == 32
    assert train.prior_difficulty.shape == (220_000,) and train.prior_difficulty.max() == 1.0
    assert train.rows([5])[0] == train.rows([5])[0]
    assert {row["prompt"] for row in heldout.rows(range(32))}.isdisjoint(
        {row["prompt"] for row in train.rows(range(0))}
    )


def test_synthetic_pool_priors_follow_level_weights(rng):
    """The selector's view (priors, CoT lengths) of a weighted pool matches its rows; held-out stays equal."""
    from scalingrl.synthetic import SyntheticConfig

    weights = [12] + [1] * 9 + [12, 12]
    train, heldout = build_pools(
        DataConfig(synthetic=SyntheticConfig(size=9_000, level_weights=weights)), eval_size=48, seed=0
    )
    ids = rng.integers(0, 9_000, size=200)
    levels = np.array([row["level"] for row in train.rows(ids)])
    np.testing.assert_allclose(train.prior_difficulty[ids] * 11, levels)
    operands = np.array(
        [row["prompt"].count("+") + row["prompt"].count("-") + row["prompt"].count("*") for row in train.rows(ids)]
    )
    np.testing.assert_array_equal(train.reference_cot_length[ids], operands)
    assert np.bincount(levels, minlength=12)[[0, 10, 11]].sum() > 0.7 * len(ids)
    np.testing.assert_allclose(heldout.prior_difficulty, np.arange(48) % 12 / 11)
    assert [row["level"] for row in heldout.rows(range(48))] == list(np.arange(48) % 12)
