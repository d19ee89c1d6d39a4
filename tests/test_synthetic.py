"""The synthetic arithmetic generator: deterministic, correct chains of thought, graded levels."""

import numpy as np
import pytest

from scalingrl.synthetic import ALPHABET, SyntheticConfig, SyntheticTask, smooth_round_robin, solve_steps


def test_deterministic_and_correct(rng):
    task = SyntheticTask(SyntheticConfig(size=220_000, max_operands=4, max_digits=3))
    again = SyntheticTask(SyntheticConfig(size=220_000, max_operands=4, max_digits=3))
    for index in rng.integers(0, 220_000, size=200):
        problem = task.problem(int(index))
        assert problem == again.problem(int(index))
        assert eval(problem.prompt.rstrip("=")) == int(problem.answer)  # products before sums
        assert problem.solution.endswith("####" + problem.answer)
        assert set(problem.prompt + problem.solution) <= set(ALPHABET)
        assert problem.level == index % task.num_levels


def test_steps_follow_precedence():
    steps, value = solve_steps([3, 4, 2, 5], ["+", "*", "-"])
    assert steps == ["4*2=8", "3+8=11", "11-5=6"] and value == 6


def test_levels_get_harder_and_priors_span_unit_interval():
    task = SyntheticTask(SyntheticConfig(size=1000))
    prior = task.prior_difficulty()
    assert prior.min() == 0.0 and prior.max() == 1.0 and prior.shape == (1000,)
    cot = task.reference_cot_length()
    assert cot.min() >= 1 and np.all(np.diff([task.levels[level][1] for level in range(task.num_levels)]) >= 0)


def test_heldout_differs_from_train():
    task = SyntheticTask(SyntheticConfig(size=5000, heldout_size=100))
    train = {task.problem(i).prompt for i in range(5000)}
    heldout = [row["prompt"] for row in task.heldout_rows()]
    assert len(heldout) == 100
    assert sum(p in train for p in heldout) < 50  # easy levels repeat by chance, the rest is new


@pytest.mark.parametrize("bad", [dict(size=0), dict(min_operands=1), dict(max_digits=9), dict(operators="/")])
def test_bad_config(bad):
    with pytest.raises(ValueError, match="synthetic"):
        SyntheticConfig(**bad)


def test_level_weights_set_the_pool_mix_in_every_prefix(rng):
    weights = [int(w) for w in rng.integers(0, 9, size=12)]
    weights[int(rng.integers(12))] += 1  # at least one positive
    task = SyntheticTask(SyntheticConfig(size=50_000, level_weights=weights))
    levels = task.level_of(np.arange(50_000))
    total = sum(weights)
    # Every prefix holds each level within one prompt of its exact share (smooth weighted round-robin).
    counts = np.cumsum(np.eye(12, dtype=np.int64)[levels], axis=0)
    exact = np.arange(1, 50_001)[:, None] * np.array(weights) / total
    assert np.abs(counts - exact).max() < 1.0
    assert np.all(counts[-1][np.array(weights) == 0] == 0)
    # Rows, priors and reference CoT lengths follow the weighted levels.
    ids = rng.integers(0, 50_000, size=50)
    assert [task.problem(int(i)).level for i in ids] == list(levels[ids])
    np.testing.assert_array_equal(task.prior_difficulty(), levels / 11)
    operands = np.array([task.levels[level][1] for level in levels[ids]])
    operators = [sum(task.problem(int(i)).prompt.count(op) for op in "+-*") for i in ids]
    assert operators == list(operands - 1)


def test_smooth_round_robin_matches_nginx_and_rejects_bad_weights():
    # nginx's own example (the commit that introduced it): weights { 5, 1, 1 } give "a a b a c a a".
    assert smooth_round_robin([5, 1, 1]).tolist() == [0, 0, 1, 0, 2, 0, 0]
    assert smooth_round_robin([0, 3]).tolist() == [1, 1, 1]
    for bad in ([1.5, 2.7], [-1, 3], [[1, 2]], [0, 0], []):
        with pytest.raises(ValueError, match="weights must be"):
            smooth_round_robin(bad)


def test_task_rechecks_an_edited_config_and_split_names():
    config = SyntheticConfig(size=100)
    config.level_weights = (1, 2)  # edited after validation
    with pytest.raises(ValueError, match="has 2 entries but this task has 12 levels"):
        SyntheticTask(config)
    with pytest.raises(ValueError, match='split must be "train" or "heldout"'):
        SyntheticTask(SyntheticConfig(size=100)).problem(3, split="Train")


def test_level_weights_leave_the_heldout_split_alone():
    plain = SyntheticTask(SyntheticConfig(size=1000, heldout_size=60))
    skewed = SyntheticTask(SyntheticConfig(size=1000, heldout_size=60, level_weights=[12] + [1] * 9 + [12, 12]))
    assert skewed.heldout_rows() == plain.heldout_rows()
    np.testing.assert_array_equal(skewed.level_of(np.arange(60), "heldout"), np.arange(60) % 12)
    assert [p.level for p in map(skewed.problem, range(45))].count(0) == 12  # the pool's first 45 follow the weights


@pytest.mark.parametrize(
    "weights, message",
    [
        ([1, 2], "has 2 entries but this task has 12 levels"),
        ([1.5] * 12, "YAML integers >= 0"),
        ([-1] + [1] * 11, "YAML integers >= 0"),
        ([True] * 12, "YAML integers >= 0"),
        ([0] * 12, "sum to 1..10000"),
        ([10_000] * 12, "sum to 1..10000"),
        ("1,1", "list of integers"),
    ],
)
def test_bad_level_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(level_weights=weights)


def test_warm_start_ignores_the_pool_mix(model_cache, tmp_path):
    """The quickstart model is the same (same weights, one cache entry) whatever the pool's level mix."""
    import torch
    from safetensors.torch import load_file

    from scalingrl.quickstart import TinyModelConfig, build_quickstart_model

    torch.manual_seed(0)  # build_quickstart_model seeds its own warm-start draws, not the initial weights
    tiny = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, warmstart_steps=3)
    skewed_task = SyntheticTask(SyntheticConfig(size=100, level_weights=[12] + [1] * 9 + [12, 12]))
    skewed = load_file(build_quickstart_model(tiny, skewed_task, out_dir=tmp_path / "skewed") / "model.safetensors")
    torch.manual_seed(0)
    built = []
    plain_path = build_quickstart_model(tiny, SyntheticTask(SyntheticConfig(size=100)), log=built.append)
    plain = load_file(plain_path / "model.safetensors")
    assert skewed.keys() == plain.keys() and all(torch.equal(skewed[k], plain[k]) for k in plain)
    assert build_quickstart_model(tiny, skewed_task, log=built.append) == plain_path
    assert sum("building" in line for line in built) == 1
