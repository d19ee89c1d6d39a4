"""Adaptive curriculum rules: how many prompts are in play (scale) and the explore/exploit mix.

Pure functions of the previous schedule state and one step's measured learning signal, so they are
easy to test and to swap. ``scalingrl.selection.DESSelector`` applies them; docs/curriculum.md
explains them and why the earlier reward-trend rule was dropped (it ran away).

The signal of a group is whether its G rewards differ (GRPO's advantage is zero otherwise). The
rules read that signal separately for the prompts replayed from the pool in play ("exploit") and for
the new prompts ("explore"):

- scale: the pool target grows only while the replayed prompts stop giving signal (mastered or
  hopeless); it never grows because the reward curve is flat;
- mix: the explore share moves towards the share of the measured signal that new prompts bring.

Left out on purpose: anything that needs the model (probing runs through the trainer's rollouts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["CurriculumConfig", "ScheduleState", "StepSignal", "step_signal", "next_schedule", "split_batch"]


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
        signal_ema: weight of the newest step in the smoothed informative shares (explore, exploit).
        signal_low: when the smoothed informative share of replayed groups falls below this, the
            prompts in play are spent (mastered or hopeless): the pool target grows by ``rate``.
        rate: relative growth of the pool target per step while spent, and the step size of the
            explore share towards its measured target.
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
    signal_ema: float = 0.1
    signal_low: float = 0.5
    rate: float = 0.05
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
            ("signal_ema", 0 < self.signal_ema <= 1, "in (0, 1], e.g. 0.1"),
            ("signal_low", 0 <= self.signal_low <= 1, "a share of groups in [0, 1], e.g. 0.5"),
            ("rate", 0 < self.rate < 1, "in (0, 1), e.g. 0.05"),
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
    """What the rules carry from step to step.

    Attributes:
        pool_target: prompts the pool in play may hold (float; compared with the integer count).
        explore_share: share of a batch drawn from unseen prompts while the pool is below target.
        explore_signal: smoothed informative share of new (explore) groups; NaN until measured.
        exploit_signal: smoothed informative share of replayed (exploit) groups; NaN until measured.
    """

    pool_target: float
    explore_share: float
    explore_signal: float = float("nan")
    exploit_signal: float = float("nan")


@dataclasses.dataclass
class StepSignal:
    """One step's measured signal: informative groups and group counts, split by origin."""

    explore_informative: int
    explore_groups: int
    exploit_informative: int
    exploit_groups: int


def step_signal(rewards: np.ndarray, is_explore: np.ndarray) -> StepSignal:
    """Count informative groups (rewards not all equal) among explore and exploit rows.

    Args:
        rewards: (B, G) float64 group rewards. is_explore: (B,) bool, True for new prompts.
    Raises ValueError when the shapes disagree.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    is_explore = np.asarray(is_explore, dtype=bool)
    if rewards.ndim != 2 or is_explore.shape != (rewards.shape[0],):
        raise ValueError(f"rewards must be (B, G) and is_explore (B,), got {rewards.shape} and {is_explore.shape}")
    informative = rewards.max(axis=1) > rewards.min(axis=1)
    return StepSignal(int((informative & is_explore).sum()), int(is_explore.sum()),
                      int((informative & ~is_explore).sum()), int((~is_explore).sum()))


def _smooth(previous: float, informative: int, groups: int, weight: float) -> float:
    if groups == 0:
        return previous
    share = informative / groups
    return share if np.isnan(previous) else (1 - weight) * previous + weight * share


def next_schedule(state: ScheduleState, signal: StepSignal, config: CurriculumConfig, pool_limit: int) -> ScheduleState:
    """One step of the scale and mix rules.

    1. Smooth the informative shares of explore and exploit groups (EMA ``signal_ema``; a side with no
       group this step keeps its value).
    2. Scale: if the replayed prompts' smoothed share is below ``signal_low`` (they are mastered or
       hopeless), ``pool_target *= 1 + rate``; otherwise hold. Clipped to [min_pool, max_pool or pool].
    3. Mix: once both sides are measured, the explore share moves by ``rate`` towards
       ``explore_signal / (explore_signal + exploit_signal)`` (the share of signal new prompts bring),
       clipped to [min_explore, max_explore]; with no signal on either side it holds.
    """
    c = config
    explore_signal = _smooth(state.explore_signal, signal.explore_informative, signal.explore_groups, c.signal_ema)
    exploit_signal = _smooth(state.exploit_signal, signal.exploit_informative, signal.exploit_groups, c.signal_ema)
    upper = pool_limit if c.max_pool == 0 else min(c.max_pool, pool_limit)
    spent = not np.isnan(exploit_signal) and exploit_signal < c.signal_low
    target = state.pool_target * (1 + c.rate) if spent else state.pool_target
    target = float(np.clip(target, min(c.min_pool, upper), upper))
    share = state.explore_share
    if not (np.isnan(explore_signal) or np.isnan(exploit_signal)) and explore_signal + exploit_signal > 0:
        wanted = explore_signal / (explore_signal + exploit_signal)
        share = share + c.rate * (wanted - share)
    share = float(np.clip(share, c.min_explore, c.max_explore))
    return ScheduleState(pool_target=target, explore_share=share, explore_signal=explore_signal,
                         exploit_signal=exploit_signal)


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
