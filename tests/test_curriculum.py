"""Curriculum rules: scale and mix move the documented way, batches split correctly."""

from __future__ import annotations

import math

import pytest

from scalingrl.curriculum import CurriculumConfig, ScheduleState, next_schedule, split_batch

CONFIG = CurriculumConfig(rate=0.1, min_pool=10, max_pool=1000, min_explore=0.1, max_explore=0.8)


def steps(pass_rate, zero_variance, rewards, state=None):
    state = state or ScheduleState(pool_target=100.0, explore_share=0.5)
    for reward in rewards:
        state = next_schedule(state, pass_rate, zero_variance, reward, CONFIG, pool_limit=5000)
    return state


def test_too_easy_grows_pool_and_explores_more():
    state = steps(0.9, 0.2, [0.9, 0.9])
    assert state.pool_target == pytest.approx(100 * 1.1**2)
    assert state.explore_share == pytest.approx(0.7)


def test_mostly_all_correct_groups_count_as_too_easy():
    state = steps(0.6, 0.8, [0.6])
    assert state.pool_target > 100 and state.explore_share > 0.5


def test_too_hard_shrinks_pool_and_replays_more():
    state = steps(0.1, 0.3, [0.1, 0.12, 0.15])
    assert state.pool_target == pytest.approx(100 * 0.9**3)
    assert state.explore_share == pytest.approx(0.2)


def test_learning_inside_band_holds():
    state = steps(0.5, 0.1, [0.3, 0.4, 0.5, 0.6])  # rising reward: trend well above the plateau
    assert state.pool_target == 100.0 and state.explore_share == 0.5
    assert state.reward_trend > CONFIG.plateau


def test_stalled_inside_band_grows():
    state = steps(0.5, 0.1, [0.5] * 4)
    assert state.pool_target > 100 and state.explore_share > 0.5


def test_limits_clip():
    state = steps(0.95, 0.9, [0.95] * 200)
    assert state.pool_target == 1000 and state.explore_share == 0.8
    state = steps(0.0, 0.9, [0.0] * 200)
    assert state.pool_target == 10 and math.isclose(state.explore_share, 0.1)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((100, 0.3, 50, 200, 10_000, 500), (30, 70)),
        ((100, 0.3, 500, 200, 10_000, 500), (10, 90)),  # pool full: only the minimum share explores
        ((100, 0.3, 20, 200, 10_000, 20), (80, 20)),  # too few in play: fill from unseen
        ((100, 0.9, 200, 1000, 5, 200), (5, 95)),  # too few unseen: fill from in play
    ],
)
def test_split_batch(args, expected):
    batch, share, in_play, target, unseen, playable = args
    config = CurriculumConfig(min_explore=0.1)
    explore, exploit = split_batch(batch, share, in_play, target, unseen, playable, config)
    assert (explore, exploit) == expected
    assert explore + exploit == batch


def test_split_batch_impossible():
    with pytest.raises(ValueError, match="cannot select 100 distinct prompts"):
        split_batch(100, 0.5, 10, 100, 20, 10, CurriculumConfig())


@pytest.mark.parametrize(
    "field, value",
    [("initial_pool", 0), ("pass_low", 0.9), ("rate", 1.5), ("retest_interval", 0), ("initial_explore", 0.99)],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"curriculum.{field}"):
        CurriculumConfig(**{field: value})
