"""Simulated-learner harness: determinism, learning dynamics, statistics and the driver loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from scalingrl.sim import LearnerConfig, SimulatedLearner, make_pool, run_method
from scalingrl.sim.learner import pass_probability

SMALL = LearnerConfig(pool_size=3000, eval_size=500)


def test_pool_is_deterministic_and_shaped():
    a, b = make_pool(SMALL, 3), make_pool(SMALL, 3)
    np.testing.assert_array_equal(a.difficulty, b.difficulty)
    assert a.prior_difficulty.shape == (3000,)
    assert set(np.unique(a.prior_difficulty)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    # the prior is informative: it correlates with the latent difficulty
    assert stats.spearmanr(a.prior_difficulty, a.difficulty).statistic > 0.7
    assert np.all(a.reference_cot_length > 0)


def test_rollout_pass_rate_matches_probability():
    pool = make_pool(SMALL, 0)
    learner = SimulatedLearner(pool, LearnerConfig(pool_size=3000, group_size=64), 1)
    ids = np.arange(200)
    _, correct, cot = learner.rollout(ids)
    p = pass_probability(learner.skill, pool.difficulty[ids])
    successes = correct.sum()
    expected = 64 * p.sum()
    sd = np.sqrt(64 * (p * (1 - p)).sum())
    assert abs(successes - expected) < 5 * sd
    assert set(cot) == {"response_length", "entropy_mean", "high_entropy_fraction"}
    assert all(v.shape == (200, 64) for v in cot.values())


def test_zero_variance_groups_teach_nothing():
    pool = make_pool(SMALL, 0)
    learner = SimulatedLearner(pool, LearnerConfig(pool_size=3000, forgetting=0.0), 0)
    before = learner.skill
    learner.train(np.arange(8), np.ones((8, 8), dtype=bool))
    learner.train(np.arange(8), np.zeros((8, 8), dtype=bool))
    assert learner.skill == before


def test_frontier_prompts_teach_more_than_far_ones():
    pool = make_pool(SMALL, 0)
    cfg = LearnerConfig(pool_size=3000, forgetting=0.0)
    near = np.argsort(np.abs(pool.difficulty - cfg.initial_skill))[:16]
    far = np.argsort(-np.abs(pool.difficulty - cfg.initial_skill))[:16]
    half = np.tile([True, False], (16, 4))
    gains = []
    for ids in (near, far):
        learner = SimulatedLearner(pool, cfg, 0)
        learner.train(ids, half)
        gains.append(learner.skill - cfg.initial_skill)
    assert gains[0] > 10 * gains[1] > 0


def test_forgetting_pulls_skill_back():
    pool = make_pool(SMALL, 0)
    learner = SimulatedLearner(pool, LearnerConfig(pool_size=3000, forgetting=0.1), 0)
    learner.skill = 2.0
    learner.train(np.zeros(0, dtype=np.int64), np.zeros((0, 8), dtype=bool))
    assert learner.skill == pytest.approx(2.0 - 0.1 * (2.0 + 0.5))


@pytest.mark.parametrize("method", ["des", "uniform", "random_subset", "dapo", "adarft"])
def test_run_method_is_deterministic_and_learns(method):
    a = run_method(method, 7, 30, 32, SMALL)
    b = run_method(method, 7, 30, 32, SMALL)
    assert a["final_accuracy"] == b["final_accuracy"]
    assert a["unique_prompts"] == b["unique_prompts"]
    assert a["rollouts"] == 30 * 32 * SMALL.group_size
    assert a["final_accuracy"] > a["curve"][0][1]
    assert len(a["selection_ms"]) == 30


def test_bad_config():
    with pytest.raises(ValueError, match="group_size"):
        LearnerConfig(group_size=1)
    with pytest.raises(ValueError, match="forgetting"):
        LearnerConfig(forgetting=1.0)
    with pytest.raises(ValueError, match="pool_size"):
        LearnerConfig(pool_size=0)
