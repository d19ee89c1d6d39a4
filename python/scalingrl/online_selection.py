"""Online prompt selectors from the literature, as pure rules: MoPPS, GRESO and SPEED's screen; and SPEED's
candidate count (``CandidateCount``, the one stateful piece: a running qualified share).

- MoPPS (Qu et al. 2025, "Can Prompt Difficulty be Online Predicted for Accelerating RL Finetuning of
  Reasoning Models?", arXiv:2507.04632): each prompt's pass rate has a Beta posterior updated from its
  rollouts with recency decay towards the prior; each step draws one Thompson sample per prompt and
  trains on the prompts whose sampled pass rate is nearest a target (0.5).
- GRESO (Zheng et al. 2025, "Act Only When It Pays: Efficient RL for LLM Reasoning via Selective
  Rollouts", arXiv:2506.02177): a prompt whose last k visits were all zero-variance (all correct or
  all wrong) is skipped before rollout unless a re-try draw with probability p^k keeps it; p is kept
  separately for easy (all correct) and hard (all wrong) prompts and steered so that the zero-variance
  share of each kind stays near a target.
- SPEED (Zhang et al. 2025, "SPEED-RL: Faster Training of Reasoning Models via Online Curriculum
  Learning", arXiv:2506.09016): a few screening samples per candidate; only candidates whose screening
  rewards vary (pass rate strictly between 0 and 1) are worth a full group.

All are read from the papers, not copied; docs/selection.md lists where our loop differs. The
selector classes that apply these rules live in ``scalingrl.selection``. Left out on purpose: the
papers' over-sampling to refill a batch after filtering (our loop trains on a fixed batch size).
"""

from __future__ import annotations

import math

import numpy as np

from scalingrl.selection_config import GRESOConfig, MoPPSConfig, SPEEDConfig

__all__ = [
    "MoPPSConfig",
    "GRESOConfig",
    "mopps_prior",
    "mopps_update",
    "mopps_pick",
    "greso_keep_probability",
    "greso_next_explore",
    "speed_screen",
    "CandidateCount",
]


def mopps_prior(prior_difficulty: np.ndarray | None, size: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha0, beta0), each (size,) float64: Beta prior with mean 1 - difficulty (0.5 where unknown)."""
    mean = np.full(size, 0.5)
    if prior_difficulty is not None:
        d = np.asarray(prior_difficulty, dtype=np.float64)
        mean = np.where(np.isfinite(d), np.clip(1.0 - d, 0.02, 0.98), 0.5)
    return strength * mean, strength * (1.0 - mean)


def mopps_update(
    alpha: np.ndarray,
    beta: np.ndarray,
    alpha0: np.ndarray,
    beta0: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    decay: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of the visited prompts after one visit, with recency decay towards the prior.

    alpha' = decay * alpha + (1 - decay) * alpha0 + successes; beta' likewise with failures.
    All arguments (B,) float64 (the visited prompts' values); returns new (alpha, beta).
    """
    failures = trials - successes
    return (decay * alpha + (1 - decay) * alpha0 + successes, decay * beta + (1 - decay) * beta0 + failures)


def mopps_pick(sampled_pass: np.ndarray, target: float, batch_size: int) -> np.ndarray:
    """Indices (batch_size,) int64 of the sampled pass rates nearest ``target``, nearest first.

    Ties break by index (stable), so equal draws give equal picks.
    """
    if batch_size > len(sampled_pass):
        raise ValueError(f"batch_size={batch_size} exceeds the {len(sampled_pass)} candidate prompts")
    distance = np.abs(np.asarray(sampled_pass, dtype=np.float64) - target)
    part = np.argpartition(distance, batch_size - 1)[:batch_size]
    return part[np.lexsort((part, distance[part]))].astype(np.int64)


def greso_keep_probability(zero_streak: np.ndarray, last_easy: np.ndarray, p_easy: float, p_hard: float) -> np.ndarray:
    """Probability (B,) float64 that a candidate is rolled out: p_kind ** zero_streak (1 with no streak).

    zero_streak: (B,) int, consecutive most recent zero-variance visits; last_easy: (B,) bool, True when
    the last such visit was all correct (p_easy applies), else all wrong (p_hard).
    """
    base = np.where(np.asarray(last_easy, dtype=bool), p_easy, p_hard)
    return base ** np.asarray(zero_streak, dtype=np.float64)


def greso_next_explore(p: float, zero_share: float, target: float, config: GRESOConfig) -> float:
    """One step of the re-try probability: down by retry_step when the kind's zero-variance share of
    the batch exceeds its target (skip more), up otherwise; clipped to [min_retry, 1]."""
    step = -config.retry_step if zero_share > target else config.retry_step
    return float(min(max(p + step, config.min_retry), 1.0))


def speed_screen(rewards: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """SPEED's screen: which of C screened candidates get a full group.

    Args:
        rewards: (C, n) screening rewards (float64-convertible), rows in candidate order, n >= 2.
        batch_size: B in [1, C].
    Returns:
        positions (B,) int64 ascending: the first B candidates whose rewards are not all equal, then (when
        fewer than B are) the first of the others; varies (C,) bool, which candidates' rewards differ.
    Raises:
        ValueError on another shape or B outside [1, C].
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"screening rewards must be (C, n >= 2), got shape {rewards.shape}")
    if not 1 <= batch_size <= rewards.shape[0]:
        raise ValueError(f"batch_size={batch_size} must be in [1, {rewards.shape[0]}] (the candidates screened)")
    varies = rewards.max(axis=1) > rewards.min(axis=1)
    order = np.concatenate([np.flatnonzero(varies), np.flatnonzero(~varies)])[:batch_size]
    return np.sort(order).astype(np.int64), varies


class CandidateCount:
    """How many candidates a screening round needs: SPEED's candidate count, adapted to the qualified share.

    ``ceil(candidates_factor x B)`` at the first step, then ``ceil(headroom x B / q)`` with q the running
    share of screened candidates whose rewards varied (``q <- (q + newest) / 2``), clipped to
    [B, min(max_candidates_factor x B, limit)]; with q = 0 the cap. Used by the ``speed`` selector and by
    ``des`` with ``selection.des.screen``. The knobs are ``SPEEDConfig``'s.
    """

    def __init__(self, config: SPEEDConfig) -> None:
        self.config = config
        self.qualified_share: float | None = None  # running share of candidates that qualify (None: no step yet)
        self.last_qualified = float("nan")  # share of the newest round's candidates whose rewards vary
        self.last_filled = 0  # unqualified candidates that filled the newest batch

    def candidates(self, batch_size: int, limit: int) -> int:
        """Candidates to screen for a batch of ``batch_size`` out of ``limit`` selectable prompts (int >= B).

        Raises ValueError when ``batch_size`` exceeds ``limit``.
        """
        if batch_size > limit:
            raise ValueError(
                f"batch_size={batch_size} exceeds the {limit} prompts that can be selected: lower batch_size"
            )
        c = self.config
        most = min(math.ceil(round(c.max_candidates_factor * batch_size, 9)), limit)
        if self.qualified_share is None:
            wanted = math.ceil(round(c.candidates_factor * batch_size, 9))  # 1.1 x 100 is 110, not 111
        elif self.qualified_share <= 0:
            wanted = most
        else:
            wanted = math.ceil(round(c.headroom * batch_size / self.qualified_share, 9))
        return max(batch_size, min(wanted, most))

    def observe(self, varies: np.ndarray, batch_size: int) -> None:
        """Record one round: ``varies`` (C,) bool, which candidates' screening rewards differed."""
        varies = np.asarray(varies, dtype=bool)
        self.last_qualified = float(varies.mean())
        self.last_filled = int(max(batch_size - np.count_nonzero(varies), 0))
        previous = self.last_qualified if self.qualified_share is None else self.qualified_share
        self.qualified_share = 0.5 * previous + 0.5 * self.last_qualified

    def metrics(self) -> dict[str, float]:
        """``screen_qualified`` (share of the newest round that varied) and ``screen_filled`` (fillers)."""
        return {"screen_qualified": self.last_qualified, "screen_filled": float(self.last_filled)}

    def state_dict(self) -> dict:
        """``{"qualified_share": float | None}``, what ``candidates`` depends on."""
        return {"qualified_share": self.qualified_share}

    def load_state_dict(self, state: dict) -> None:
        """Raises ValueError for a qualified share outside [0, 1]."""
        share = state.get("qualified_share")
        if share is not None and not 0 <= float(share) <= 1:
            raise ValueError(f"screening state qualified_share={share!r} must be in [0, 1] or None")
        self.qualified_share = None if share is None else float(share)
