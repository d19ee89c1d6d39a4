"""Adaptive curriculum rules: how many prompts are in play (scale) and the explore/exploit mix.

Pure functions of the previous schedule state and one step's measured learning signal, so they are
easy to test and to swap. ``scalingrl.selection.DESSelector`` applies them; docs/curriculum.md
explains them and why the earlier reward-trend rule was dropped (it ran away).

The signal of a group is whether its G rewards differ (GRPO's advantage is zero otherwise). The
rules read that signal separately for the prompts replayed from the pool in play ("exploit") and for
the new prompts ("explore"):

- scale: the pool target grows only while the replayed prompts stop giving signal (mastered or
  hopeless); it never grows because the reward curve is flat. "Stop giving signal" is measured against
  the most a group of G can show (``informative_ceiling``), so a small G alone does not grow the pool;
- mix: the explore share moves towards the share of the measured signal that new prompts bring.

Left out on purpose: anything that needs the model (probing runs through the trainer's rollouts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalingrl.selection_config import CurriculumConfig

__all__ = [
    "CurriculumConfig",
    "ScheduleState",
    "StepSignal",
    "informative_ceiling",
    "step_signal",
    "next_schedule",
    "split_batch",
]


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
    """One step's measured signal (``step_signal`` builds it from a step's rewards).

    Attributes:
        explore_informative, explore_groups: informative groups (rewards not all equal) and groups among
            the new prompts.
        exploit_informative, exploit_groups: the same among the replayed prompts.
        group_size: G >= 1, the samples per group the signal was measured on: the trained groups'
            ``rollout.group_size``, or the screening round's n with ``selection.des.screen``. It sets the
            scale rule's threshold (``informative_ceiling``), and should stay the same within a run: the
            smoothed shares mix steps, the threshold uses the current step's G.
    """

    explore_informative: int
    explore_groups: int
    exploit_informative: int
    exploit_groups: int
    group_size: int


def informative_ceiling(group_size: int) -> float:
    """The largest probability that a group of ``group_size`` (G) 0/1 rewards is informative (not all
    equal), over pass rates p: ``max_p 1 - p**G - (1 - p)**G = 1 - 2**(1 - G)``, reached at p = 1/2 (the
    expression is symmetric in p and 1 - p and concave on [0, 1]). 0.5 for G = 2, 0.875 for G = 4, 0.992
    for G = 8, 0 for G = 1.

    The scale rule compares the replayed groups' informative share with ``signal_low`` times this, so that
    its threshold means the same share of the attainable signal at every G: a pair is all-equal at least
    half the time whatever the prompt, and an absolute threshold of 0.5 would call every prompt at G = 2
    spent and grow the pool every step (measured: 1,024 -> 128,245 in 100 steps, docs/des_evidence.md
    section 12).

    For 0/1 rewards (``reward.format_weight=0``, the default). With a format term a group can vary through
    it alone, so the measured share is not bounded by this; the threshold then reads as a share of it anyway.

    Raises:
        ValueError: ``group_size`` is not an integer >= 1.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}")
    return 1.0 - 2.0 ** (1 - group_size)


def step_signal(rewards: np.ndarray, is_explore: np.ndarray) -> StepSignal:
    """Count informative groups (rewards not all equal) among explore and exploit rows.

    Args:
        rewards: (B, G) float64 group rewards, G >= 1. is_explore: (B,) bool, True for new prompts.
    Returns the ``StepSignal`` with ``group_size = G``.
    Raises ValueError when the shapes disagree or G is 0.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    is_explore = np.asarray(is_explore, dtype=bool)
    if rewards.ndim != 2 or rewards.shape[1] < 1 or is_explore.shape != (rewards.shape[0],):
        raise ValueError(
            f"rewards must be (B, G) with G >= 1 and is_explore (B,), got {rewards.shape} and {is_explore.shape}"
        )
    informative = rewards.max(axis=1) > rewards.min(axis=1)
    return StepSignal(
        int((informative & is_explore).sum()),
        int(is_explore.sum()),
        int((informative & ~is_explore).sum()),
        int((~is_explore).sum()),
        int(rewards.shape[1]),
    )


def _smooth(previous: float, informative: int, groups: int, weight: float) -> float:
    if groups == 0:
        return previous
    share = informative / groups
    return share if np.isnan(previous) else (1 - weight) * previous + weight * share


def next_schedule(state: ScheduleState, signal: StepSignal, config: CurriculumConfig, pool_limit: int) -> ScheduleState:
    """One step of the scale and mix rules.

    1. Smooth the informative shares of explore and exploit groups (EMA ``signal_ema``; a side with no
       group this step keeps its value).
    2. Scale: if the replayed prompts' smoothed share is below ``signal_low * informative_ceiling(G)``
       (they are mastered or hopeless), ``pool_target *= 1 + rate``; otherwise hold. Clipped to
       [min_pool, max_pool or pool].
    3. Mix: once both sides are measured, the explore share moves by ``rate`` towards
       ``explore_signal / (explore_signal + exploit_signal)`` (the share of signal new prompts bring),
       clipped to [min_explore, max_explore]; with no signal on either side it holds.
    """
    c = config
    explore_signal = _smooth(state.explore_signal, signal.explore_informative, signal.explore_groups, c.signal_ema)
    exploit_signal = _smooth(state.exploit_signal, signal.exploit_informative, signal.exploit_groups, c.signal_ema)
    upper = pool_limit if c.max_pool == 0 else min(c.max_pool, pool_limit)
    spent = not np.isnan(exploit_signal) and exploit_signal < c.signal_low * informative_ceiling(signal.group_size)
    target = state.pool_target * (1 + c.rate) if spent else state.pool_target
    target = float(np.clip(target, min(c.min_pool, upper), upper))
    share = state.explore_share
    if not (np.isnan(explore_signal) or np.isnan(exploit_signal)) and explore_signal + exploit_signal > 0:
        wanted = explore_signal / (explore_signal + exploit_signal)
        share = share + c.rate * (wanted - share)
    share = float(np.clip(share, c.min_explore, c.max_explore))
    return ScheduleState(
        pool_target=target, explore_share=share, explore_signal=explore_signal, exploit_signal=exploit_signal
    )


def split_batch(
    batch_size: int,
    explore_share: float,
    in_play: int,
    pool_target: float,
    unseen: int,
    playable: int,
    config: CurriculumConfig,
    capped: int = 0,
) -> tuple[int, int]:
    """(explore, exploit) counts for one batch.

    New prompts come in at ``explore_share`` while fewer than ``pool_target`` are in play, and only at
    the minimum share once the pool is full (it then shrinks through retirement and parking). The
    counts are clipped to what exists: unseen prompts for exploring, playable (in play, weight > 0)
    for exploiting; a shortfall on one side is filled from the other. ``capped``: prompts that left play
    for good at ``config.max_visits`` (named in the error when the batch cannot be filled).
    """
    share = explore_share if in_play < pool_target else config.min_explore
    explore = min(int(round(share * batch_size)), unseen)
    exploit = min(batch_size - explore, playable)
    explore = min(batch_size - exploit, unseen)
    if explore + exploit < batch_size:
        raise ValueError(
            f"cannot select {batch_size} distinct prompts: only {unseen} unseen and {playable} "
            f"in play remain; lower batch_size or curriculum.retest_interval{capped_hint(capped, config)}"
        )
    return explore, exploit


def capped_hint(capped: int, config: CurriculumConfig) -> str:
    """The part of an out-of-prompts error that names the visit cap, when it took prompts out for good."""
    if not capped:
        return ""
    return (
        f"; {capped} prompts reached curriculum.max_visits={config.max_visits} and left play for good: "
        "raise it, or set it to 0"
    )


def leave_play(
    in_play: np.ndarray, streak: np.ndarray, pass_rate: np.ndarray, visits: np.ndarray, config: CurriculumConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The streaks after a step's visits, and which trained prompts leave play.

    Args:
        in_play: (B,) bool, the prompt was in play when trained. streak: (B,) int16, before this visit:
            +k after k mastered visits in a row, -k after k hopeless ones. pass_rate: (B,) float, this
            visit's group pass rate. visits: (B,) int, trained visits including this one.
    Returns:
        (streak, retire, park, capped): the (B,) int16 streaks after this visit (mastered: pass rate >=
        ``mastery_pass``, hopeless: <= ``hopeless_pass``, anything else resets to 0) and three disjoint
        (B,) bool masks. A prompt in play with ``visits >= max_visits`` (when > 0) is capped: it leaves for
        good, before the streak rules (so with ``max_visits <= retire_after`` nothing retires or parks).
        Otherwise ``streak >= retire_after`` retires it and ``streak <= -retire_after`` parks it; both come
        back after ``retest_interval`` steps.
    """
    in_play, streak, pass_rate = np.asarray(in_play, dtype=bool), np.asarray(streak), np.asarray(pass_rate)
    mastered, hopeless = pass_rate >= config.mastery_pass, pass_rate <= config.hopeless_pass
    streak = np.where(mastered, np.maximum(streak, 0) + 1, np.where(hopeless, np.minimum(streak, 0) - 1, 0))
    capped = in_play & (np.asarray(visits) >= config.max_visits) if config.max_visits > 0 else np.zeros_like(in_play)
    retire = in_play & ~capped & (streak >= config.retire_after)
    park = in_play & ~capped & (streak <= -config.retire_after)
    return streak.astype(np.int16), retire, park, capped
