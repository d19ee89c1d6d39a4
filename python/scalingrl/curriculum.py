"""Adaptive curriculum rules: how many prompts are in play (scale) and the explore/exploit mix.

Pure functions of the previous schedule state and one step's training signals, so they are easy to
test and to swap. ``scalingrl.selection.DESSelector`` applies them; docs/curriculum.md explains them.

Left out on purpose: anything that needs the model (probing runs through the trainer's rollouts).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class CurriculumConfig:
    """Knobs of the curriculum scheduler.

    Attributes:
        initial_pool: prompts in play the scheduler aims for at the start (the "scale").
        min_pool: smallest target pool size.
        max_pool: largest target pool size (0 = the whole data set).
        initial_explore: share of each batch drawn from unseen prompts at the start.
        min_explore: smallest explore share (a trickle of new prompts never stops).
        max_explore: largest explore share.
        pass_low: below this batch pass rate the batch is too hard: shrink the pool, replay more.
        pass_high: above this batch pass rate the batch is too easy: grow the pool, explore more.
        zero_variance_high: above this fraction of all-equal-reward groups, explore more.
        rate: relative change of the pool target and absolute change of the explore share per step.
        trend_ema: smoothing of the batch mean reward used for the reward trend.
        plateau: |reward trend| under which training counts as stalled (grow and explore).
        mastery_pass: a prompt whose group pass rate is >= this on `retire_after` visits in a row retires.
        hopeless_pass: a prompt whose group pass rate is <= this on `retire_after` visits in a row is parked.
        retire_after: consecutive visits needed to retire or park a prompt.
        retest_interval: steps after which a retired or parked prompt comes back for a re-test.
        warm_start_probe: if > 0, the first selections draw this many prompts uniformly at random from
            the pool (a probe that scores the pool before DES has any rollout to go on).
    """

    initial_pool: int = 1024
    min_pool: int = 64
    max_pool: int = 0
    initial_explore: float = 0.5
    min_explore: float = 0.05
    max_explore: float = 0.9
    pass_low: float = 0.25
    pass_high: float = 0.75
    zero_variance_high: float = 0.5
    rate: float = 0.05
    trend_ema: float = 0.1
    plateau: float = 0.002
    mastery_pass: float = 1.0
    hopeless_pass: float = 0.0
    retire_after: int = 2
    retest_interval: int = 50
    warm_start_probe: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("initial_pool", self.initial_pool >= 1, "an integer >= 1"),
            ("min_pool", 1 <= self.min_pool, "an integer >= 1"),
            ("max_pool", self.max_pool == 0 or self.max_pool >= self.min_pool, "0 (whole data set) or >= min_pool"),
            ("min_explore", 0 <= self.min_explore <= self.max_explore <= 1, "0 <= min_explore <= max_explore <= 1"),
            ("initial_explore", self.min_explore <= self.initial_explore <= self.max_explore,
             "between min_explore and max_explore"),
            ("pass_low", 0 <= self.pass_low < self.pass_high <= 1, "0 <= pass_low < pass_high <= 1"),
            ("zero_variance_high", 0 < self.zero_variance_high <= 1, "in (0, 1]"),
            ("rate", 0 < self.rate < 1, "in (0, 1), e.g. 0.05"),
            ("trend_ema", 0 < self.trend_ema <= 1, "in (0, 1]"),
            ("mastery_pass", 0 < self.mastery_pass <= 1, "in (0, 1]"),
            ("hopeless_pass", 0 <= self.hopeless_pass < self.mastery_pass, "in [0, mastery_pass)"),
            ("retire_after", self.retire_after >= 1, "an integer >= 1"),
            ("retest_interval", self.retest_interval >= 1, "an integer number of steps >= 1"),
            ("warm_start_probe", self.warm_start_probe >= 0, "an integer >= 0"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"curriculum.{name}={getattr(self, name)!r} is invalid: use {fix}")


@dataclasses.dataclass
class ScheduleState:
    """What the rules carry from step to step."""

    pool_target: float
    explore_share: float
    reward_ema: float = float("nan")
    reward_trend: float = 0.0


def next_schedule(state: ScheduleState, pass_rate: float, zero_variance_fraction: float, reward_mean: float,
                  config: CurriculumConfig, pool_limit: int) -> ScheduleState:
    """One step of the scale and mix rules.

    Too easy (pass rate above the band, or mostly all-correct groups) or stalled (flat reward trend):
    grow the pool target and explore more. Too hard (pass rate under the band): shrink the target and
    replay more of what is in play. Inside the band with variance to learn from: hold.
    """
    c = config
    if np.isnan(state.reward_ema):
        ema, trend = reward_mean, 0.0
    else:
        # Trend: smoothed innovation of the batch reward against its running mean (0 when flat).
        trend = (1 - c.trend_ema) * state.reward_trend + c.trend_ema * (reward_mean - state.reward_ema)
        ema = (1 - c.trend_ema) * state.reward_ema + c.trend_ema * reward_mean
    too_easy = pass_rate > c.pass_high or (zero_variance_fraction > c.zero_variance_high and pass_rate >= 0.5)
    too_hard = pass_rate < c.pass_low or (zero_variance_fraction > c.zero_variance_high and pass_rate < 0.5)
    stalled = not np.isnan(state.reward_ema) and abs(trend) < c.plateau
    direction = 1.0 if (too_easy or (stalled and not too_hard)) else (-1.0 if too_hard else 0.0)
    upper = pool_limit if c.max_pool == 0 else min(c.max_pool, pool_limit)
    target = float(np.clip(state.pool_target * (1 + c.rate * direction), min(c.min_pool, upper), upper))
    explore = float(np.clip(state.explore_share + c.rate * direction, c.min_explore, c.max_explore))
    return ScheduleState(pool_target=target, explore_share=explore, reward_ema=ema, reward_trend=trend)


def split_batch(batch_size: int, explore_share: float, in_play: int, pool_target: float, unseen: int,
                playable: int, config: CurriculumConfig) -> tuple[int, int]:
    """(explore, exploit) counts for one batch.

    New prompts come in at ``explore_share`` while fewer than ``pool_target`` are in play, and only at
    the minimum share once the pool is full (it then shrinks through retirement and parking). The
    counts are clipped to what exists: unseen prompts for exploring, playable (in play, weight > 0)
    for exploiting; a shortfall on one side is filled from the other.
    """
    share = explore_share if in_play < pool_target else config.min_explore
    explore = min(int(round(share * batch_size)), unseen)
    exploit = min(batch_size - explore, playable)
    explore = min(batch_size - exploit, unseen)
    if explore + exploit < batch_size:
        raise ValueError(f"cannot select {batch_size} distinct prompts: only {unseen} unseen and {playable} "
                         "in play remain; lower batch_size or raise curriculum.retest_interval")
    return explore, exploit
