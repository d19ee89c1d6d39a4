"""Simulated-learner harness: determinism, learning dynamics, statistics and the driver loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from scalingrl.selection import SelectionConfig
from scalingrl.sim import LearnerConfig, SimulatedLearner, make_pool, run_method, run_schedule
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frontier_training_beats_too_easy_training_on_held_out_accuracy(seed):
    # Sampled rollouts end to end: 20 steps on the 64 prompts nearest the skill vs the 64 easiest.
    pool = make_pool(SMALL, seed)
    near = np.argsort(np.abs(pool.difficulty - SMALL.initial_skill))[:64]
    easy = np.argsort(pool.difficulty)[:64]
    accuracy = []
    for ids in (near, easy):
        learner = SimulatedLearner(pool, SMALL, seed)
        start = learner.accuracy()
        for _ in range(20):
            _, correct, _ = learner.rollout(ids)
            learner.train(ids, correct)
        accuracy.append(learner.accuracy() - start)
    assert accuracy[0] > 0.02
    assert accuracy[0] > 5 * max(accuracy[1], 0.0)


def test_replay_has_diminishing_returns():
    pool = make_pool(SMALL, 0)
    cfg = LearnerConfig(pool_size=3000, forgetting=0.0, repeat_discount=0.5)
    ids = np.argsort(np.abs(pool.difficulty - cfg.initial_skill))[:16]
    half = np.tile([True, False], (16, 4))
    learner = SimulatedLearner(pool, cfg, 0)
    learner.train(ids, half)
    first = learner.skill - cfg.initial_skill
    learner.visits[ids] += 9  # ten visits each before the next update
    before = learner.skill
    learner.train(ids, half)
    assert 0 < learner.skill - before < first / 4


def test_cot_statistics_track_uncertainty():
    pool = make_pool(SMALL, 0)
    learner = SimulatedLearner(pool, LearnerConfig(pool_size=3000, group_size=32), 0)
    d = pool.difficulty
    # same difficulty band, learner uncertain (skill at the band) vs certain (skill far above)
    ids = np.flatnonzero(np.abs(d) < 0.2)[:100]
    learner.skill = 0.0
    uncertain = learner.rollout(ids)[2]["entropy_mean"].mean()
    learner.skill = 6.0
    certain = learner.rollout(ids)[2]["entropy_mean"].mean()
    assert uncertain > certain + 0.1


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
    assert 0.0 <= a["zero_variance_fraction"] <= 1.0


def test_random_subset_sized_like_des_stays_inside_its_subset():
    des = run_method("des", 4, 20, 32, SMALL)
    size = max(32, des["unique_prompts"])
    subset = run_schedule(SelectionConfig(method="random_subset", random_subset_size=size), SMALL, 4, 20, 32)
    assert subset["unique_prompts"] <= size
    assert subset["rollouts"] == des["rollouts"]


def test_speed_screening_counts_its_rollouts_and_trains_fewer_zero_variance_groups():
    seed = int(np.random.default_rng().integers(1 << 31))
    speed = run_schedule(SelectionConfig(method="speed"), SMALL, seed, 20, 32)
    uniform = run_schedule(SelectionConfig(method="uniform"), SMALL, seed, 20, 32)
    assert uniform["rollouts"] == 20 * 32 * SMALL.group_size
    screened = speed["rollouts"] - uniform["rollouts"]  # >= 32 candidates x 4 samples per step, <= 8 x 32 x 4
    assert screened % 4 == 0 and 20 * 32 * 4 <= screened <= 20 * 8 * 32 * 4
    assert speed["zero_variance_fraction"] < uniform["zero_variance_fraction"]


def test_bad_config():
    with pytest.raises(ValueError, match="group_size"):
        LearnerConfig(group_size=1)
    with pytest.raises(ValueError, match="forgetting"):
        LearnerConfig(forgetting=1.0)
    with pytest.raises(ValueError, match="pool_size"):
        LearnerConfig(pool_size=0)
