"""Curriculum rules: scale grows only when replayed prompts stop giving signal, the mix follows the
measured signal, batches split correctly. ``next_schedule`` is checked against a scalar restatement."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from references import next_schedule_reference

from scalingrl.curriculum import (
    CurriculumConfig,
    ScheduleState,
    StepSignal,
    informative_ceiling,
    leave_play,
    next_schedule,
    split_batch,
    step_signal,
)

CONFIG = CurriculumConfig(
    rate=0.1, min_pool=10, max_pool=1000, min_explore=0.1, max_explore=0.8, signal_ema=0.5, signal_low=0.5
)
START = ScheduleState(pool_target=100.0, explore_share=0.5)


def run_steps(signals, state=START, config=CONFIG):
    for signal in signals:
        state = next_schedule(state, signal, config, pool_limit=5000)
    return state


def test_spent_pool_grows_scale():
    # Replayed groups: 1 of 10 informative (mastered or hopeless prompts): grow by rate each step.
    state = run_steps([StepSignal(5, 10, 1, 10, 8)] * 3)
    assert state.pool_target == pytest.approx(100 * 1.1**3)


def test_flat_reward_with_informative_replay_holds_scale():
    # The old rule grew the pool whenever the reward trend was flat; now informative replay holds it.
    state = run_steps([StepSignal(5, 10, 8, 10, 8)] * 50)
    assert state.pool_target == 100.0


def test_mix_moves_towards_the_side_with_more_signal():
    new_better = run_steps([StepSignal(9, 10, 3, 10, 8)] * 40)
    replay_better = run_steps([StepSignal(2, 10, 8, 10, 8)] * 40)
    assert new_better.explore_share == pytest.approx(0.75, abs=0.01)  # 0.9 / (0.9 + 0.3)
    assert replay_better.explore_share == pytest.approx(0.2, abs=0.01)  # 0.2 / (0.2 + 0.8)


def test_no_signal_anywhere_holds_the_mix_and_grows():
    state = run_steps([StepSignal(0, 10, 0, 10, 8)] * 5)
    assert state.explore_share == 0.5 and state.pool_target == pytest.approx(100 * 1.1**5)


def test_a_side_without_groups_keeps_its_smoothed_value():
    state = run_steps([StepSignal(4, 10, 6, 10, 8), StepSignal(0, 0, 10, 10, 8)])
    assert state.explore_signal == 0.4 and state.exploit_signal == pytest.approx(0.8)


def test_limits_clip():
    state = run_steps([StepSignal(10, 10, 0, 10, 8)] * 300)
    assert state.pool_target == 1000 and state.explore_share == pytest.approx(0.8)
    state = run_steps([StepSignal(0, 10, 10, 10, 8)] * 300, state=ScheduleState(5.0, 0.5))
    assert state.pool_target == 10 and math.isclose(state.explore_share, 0.1)


def test_next_schedule_matches_scalar_reference_on_random_sequences():
    rng = np.random.default_rng(0)
    for trial in range(20):
        config = CurriculumConfig(
            rate=float(rng.uniform(0.01, 0.5)),
            signal_ema=float(rng.uniform(0.05, 1)),
            signal_low=float(rng.uniform(0, 1)),
            min_pool=16,
            max_pool=int(rng.integers(16, 4000)),
        )
        state = ref = ScheduleState(pool_target=float(rng.integers(16, 500)), explore_share=0.5)
        for _ in range(30):
            n_explore, n_exploit = rng.integers(0, 20, 2)
            signal = StepSignal(
                int(rng.integers(0, n_explore + 1)),
                int(n_explore),
                int(rng.integers(0, n_exploit + 1)),
                int(n_exploit),
                int(rng.integers(1, 11)),
            )
            state = next_schedule(state, signal, config, pool_limit=3000)
            ref = next_schedule_reference(ref, signal, config, pool_limit=3000)
            for field in ("pool_target", "explore_share", "explore_signal", "exploit_signal"):
                a, b = getattr(state, field), getattr(ref, field)
                assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), (trial, field)


def test_step_signal_counts_informative_groups_by_origin():
    rewards = np.array([[0, 0, 0], [0, 1, 0], [1, 1, 1], [1, 0, 1], [0.5, 0.5, 0.5]])
    signal = step_signal(rewards, np.array([True, True, False, False, False]))
    assert signal == StepSignal(
        explore_informative=1, explore_groups=2, exploit_informative=1, exploit_groups=3, group_size=3
    )
    with pytest.raises(ValueError, match="is_explore"):
        step_signal(rewards, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="G >= 1"):
        step_signal(np.zeros((2, 0)), np.ones(2, dtype=bool))


@pytest.mark.parametrize("group_size", [1, 2, 3, 4, 8, 16])
def test_informative_ceiling_is_the_most_any_pass_rate_gives(group_size):
    # Brute force: enumerate all 2^G outcomes of G Bernoulli(p) rewards and add up the not-all-equal ones,
    # for p on a grid; the largest is the ceiling, and it is reached at p = 1/2.
    def informative(p):
        return sum(
            math.prod(p if r else 1 - p for r in outcome)
            for outcome in itertools.product((0, 1), repeat=group_size)
            if 0 < sum(outcome) < group_size
        )

    grid = [informative(p) for p in np.linspace(0, 1, 201)]
    assert informative_ceiling(group_size) == pytest.approx(max(grid), abs=1e-12)
    assert informative_ceiling(group_size) == pytest.approx(informative(0.5), abs=1e-12)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="group_size"):
            informative_ceiling(bad)


def test_small_groups_alone_do_not_grow_the_pool():
    # Pairs (G = 2) from replayed prompts at pass rate 1/2 are informative half the time on average, the most
    # a pair can be: not spent. With sampling noise (4 then 6 pairs in 10) the absolute threshold of 0.5
    # called them spent on every step whose smoothed share dipped below it, and grew the pool.
    at_half = run_steps([StepSignal(5, 10, 4, 10, 2), StepSignal(5, 10, 6, 10, 2)] * 25)
    assert at_half.pool_target == 100.0
    # The same measured share, 4 groups in 10, is most of what pairs can show and under half of what groups
    # of 8 can (signal_low 0.5): it holds the pool at G = 2 and grows it at G = 8.
    assert run_steps([StepSignal(5, 10, 4, 10, 2)] * 3).pool_target == 100.0
    assert run_steps([StepSignal(5, 10, 4, 10, 8)] * 3).pool_target == pytest.approx(100 * 1.1**3)
    # Spent replayed prompts (1 pair in 10 informative) still grow it at G = 2.
    assert run_steps([StepSignal(5, 10, 1, 10, 2)] * 3).pool_target == pytest.approx(100 * 1.1**3)


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
    with pytest.raises(ValueError, match="cannot select 100 distinct prompts") as error:
        split_batch(100, 0.5, 10, 100, 20, 10, CurriculumConfig())
    assert "max_visits" not in str(error.value)  # no cap took prompts out: not named
    with pytest.raises(ValueError, match="; 7 prompts reached curriculum.max_visits=2 and left play for good"):
        split_batch(100, 0.5, 10, 100, 20, 10, CurriculumConfig(max_visits=2), capped=7)


def leave_play_loop(in_play, streak, pass_rate, visits, c):
    """Scalar reference of ``leave_play``, one prompt at a time, from its docstring."""
    out = []
    for here, k, p, n in zip(in_play, streak, pass_rate, visits):
        k = max(k, 0) + 1 if p >= c.mastery_pass else (min(k, 0) - 1 if p <= c.hopeless_pass else 0)
        capped = bool(here and c.max_visits > 0 and n >= c.max_visits)
        out.append(
            (k, here and not capped and k >= c.retire_after, here and not capped and k <= -c.retire_after, capped)
        )
    return out


@pytest.mark.parametrize("max_visits, retire_after", [(0, 2), (3, 2), (2, 2), (1, 1), (5, 1)])
def test_leave_play_matches_a_loop(max_visits, retire_after):
    rng = np.random.default_rng(max_visits * 10 + retire_after)
    c = CurriculumConfig(max_visits=max_visits, retire_after=retire_after)
    n = 500
    in_play = rng.random(n) < 0.8
    streak = rng.integers(-3, 4, n).astype(np.int16)
    pass_rate = rng.choice([0.0, 0.125, 0.5, 0.875, 1.0], n)
    visits = rng.integers(1, 7, n)
    streak_after, retire, park, capped = leave_play(in_play, streak, pass_rate, visits, c)
    expected = leave_play_loop(in_play, streak, pass_rate, visits, c)
    assert streak_after.dtype == np.int16
    assert [(int(a), bool(b), bool(d), bool(e)) for a, b, d, e in zip(streak_after, retire, park, capped)] == expected
    assert not (retire & park).any() and not ((retire | park) & capped).any()
    assert capped.any() == (max_visits > 0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("initial_pool", 0),
        ("signal_low", 1.5),
        ("signal_ema", 0.0),
        ("rate", 1.5),
        ("retest_interval", 0),
        ("initial_explore", 0.99),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"curriculum.{field}"):
        CurriculumConfig(**{field: value})
