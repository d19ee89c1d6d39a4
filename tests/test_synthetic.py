"""The synthetic arithmetic generator: deterministic, correct chains of thought, graded levels."""

import numpy as np
import pytest

from scalingrl.synthetic import ALPHABET, SyntheticConfig, SyntheticTask, solve_steps


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
