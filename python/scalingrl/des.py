"""Data Effectiveness Score: configuration and the per-prompt store's Python face.

The store itself is C++ (``scalingrl._native.PromptStore``, csrc/prompt_store.cpp): one record per
prompt, O(1) work per touched prompt, normalisation by running moments. The tests re-derive
the same numbers with plain Python loops (``tests/references.py``). docs/des.md gives the formulas and reasons.

Left out on purpose: anything that needs a pass over the whole pool per step (exact quantiles,
re-scoring untouched prompts when the normalisation moves).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalingrl import _native
from scalingrl.selection_config import DESConfig

FACTORS = ("difficulty", "cot_complexity", "adaptability")
COT_KEYS = ("response_length", "entropy_mean", "high_entropy_fraction")


def difficulty_factor(pass_rate: np.ndarray, target_pass: float) -> np.ndarray:
    """The DES difficulty factor of a pass rate, (n,) float64 in [0, 1] (same formula as the store).

    ``q^(2t) (1-q)^(2(1-t)) / (t^(2t) (1-t)^(2(1-t)))`` with t = ``target_pass``: 1 at q = t, 0 at 0 and 1.
    """
    q = np.asarray(pass_rate, dtype=np.float64)
    a, b = 2 * target_pass, 2 * (1 - target_pass)
    return q**a * (1 - q) ** b / (target_pass**a * (1 - target_pass) ** b)


def label_shares(group_sizes: np.ndarray, pass_rates: np.ndarray, coverage: float, target_pass: float) -> np.ndarray:
    """Batch share of each label group under DES label strata, (S,) float64 summing to 1.

    ``share_L ∝ size_L * (coverage + difficulty_factor(q_L, target_pass))`` (our design, docs/des.md
    "Label strata"): the pool's label mix, tilted towards labels whose measured pass rate ``q_L`` is
    near the target. If every term is 0 (coverage 0 and every label at pass rate 0 or 1), the pool's mix.

    Args:
        group_sizes: (S,) prompts per group (> 0). pass_rates: (S,) measured pass rates in [0, 1].
        coverage: >= 0. target_pass: in (0, 1).
    Raises ValueError on shapes that differ or sizes that are not positive.
    """
    sizes = np.asarray(group_sizes, dtype=np.float64)
    q = np.asarray(pass_rates, dtype=np.float64)
    if sizes.ndim != 1 or q.shape != sizes.shape:
        raise ValueError(f"group_sizes and pass_rates must be (S,) of one length, got {sizes.shape} and {q.shape}")
    if np.any(sizes <= 0):
        raise ValueError(f"group_sizes must be positive, got {sizes.tolist()}")
    shares = sizes * (coverage + difficulty_factor(q, target_pass))
    total = shares.sum()
    return shares / total if total > 0 else sizes / sizes.sum()


def group_outcomes(rewards: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prompt successes, trials and reward std (population) from (B, G) rewards and correctness."""
    rewards = np.asarray(rewards, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be (B, G), got shape {rewards.shape}")
    if correct.shape != rewards.shape:
        raise ValueError(f"correct has shape {correct.shape} but rewards has {rewards.shape}")
    bad = np.argwhere(~np.isfinite(rewards))
    if len(bad):
        b, g = bad[0]
        raise ValueError(f"rewards[{b}, {g}] = {rewards[b, g]} is not finite: every rollout needs a real reward")
    trials = np.full(rewards.shape[0], float(rewards.shape[1]))
    return correct.sum(axis=1).astype(np.float64), trials, rewards.std(axis=1)


class PromptStore:
    """Per-prompt statistics, factors and DES for a pool of ``size`` prompts (C++ backed)."""

    def __init__(
        self,
        size: int,
        config: DESConfig,
        prior_difficulty: np.ndarray | None = None,
        reference_cot_length: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self._impl = _native.PromptStore(int(size), config.native(), prior_difficulty, reference_cot_length)

    def __len__(self) -> int:
        return len(self._impl)

    def update(
        self,
        step: int,
        prompt_ids: np.ndarray,
        rewards: np.ndarray,
        correct: np.ndarray,
        cot_stats: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Fold one step's groups into the touched prompts' records and re-score them.

        Args:
            prompt_ids: (B,) int64. rewards: (B, G) float64, finite. correct: (B, G) bool.
            cot_stats: optional (B, G) arrays keyed by ``COT_KEYS``; NaN entries are ignored.
        Raises IndexError for ids outside the pool, ValueError for NaN rewards or bad shapes; nothing
        changes on error.
        """
        ids = np.ascontiguousarray(prompt_ids, dtype=np.int64)
        successes, trials, reward_std = group_outcomes(rewards, correct)
        if len(ids) != len(successes):
            raise ValueError(f"prompt_ids has {len(ids)} entries but rewards has {len(successes)} rows")
        means = {}
        for key in COT_KEYS:
            values = None if cot_stats is None else cot_stats.get(key)
            if values is not None:
                values = np.asarray(values, dtype=np.float64)
                if values.shape != np.shape(rewards):
                    raise ValueError(f"cot_stats[{key!r}] has shape {values.shape}, expected {np.shape(rewards)}")
                with np.errstate(invalid="ignore"):
                    counts = np.isfinite(values).sum(axis=1)
                    sums = np.where(np.isfinite(values), values, 0.0).sum(axis=1)
                    values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            means[key] = values
        self._impl.update(
            int(step),
            ids,
            successes,
            trials,
            reward_std,
            means["response_length"],
            means["entropy_mean"],
            means["high_entropy_fraction"],
        )

    def score(self, prompt_ids: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """DES (B,) and the factors {name: (B,)} of ``prompt_ids``."""
        table = self._impl.score(np.ascontiguousarray(prompt_ids, dtype=np.int64))
        return table[:, 3].copy(), {name: table[:, k].copy() for k, name in enumerate(FACTORS)}

    def columns(self) -> dict[str, np.ndarray]:
        """Every per-prompt column (copies, O(pool)): for exports and checkpoints, not per step."""
        return dict(self._impl.columns())

    def state_dict(self) -> dict[str, Any]:
        return {"columns": self.columns(), "moments": np.asarray(self._impl.moments())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._impl.restore(dict(state["columns"]), np.asarray(state["moments"], dtype=np.float64))
