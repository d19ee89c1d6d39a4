"""Data Effectiveness Score: configuration and the per-prompt store's Python face.

The store itself is C++ (``scalingrl._native.PromptStore``, csrc/prompt_store.cpp): one record per
prompt, O(1) work per touched prompt, normalisation by running moments. The tests re-derive
the same numbers with plain Python loops (``tests/references.py``). docs/des.md gives the formulas and reasons.

Left out on purpose: anything that needs a pass over the whole pool per step (exact quantiles,
re-scoring untouched prompts when the normalisation moves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scalingrl import _native
from scalingrl.selection_config import DESConfig

if TYPE_CHECKING:
    from scalingrl.data import PoolInfo

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


class LabelCalibration:
    """Measured pass rate per difficulty label, and the unseen prompts' sampler weights it implies.

    Per label L (the distinct finite values of ``prior_difficulty``): decayed successes s_L and trials
    t_L of every rollout on prompts with that label (``s_L <- calibration_decay * s_L + successes``
    each step), a Beta posterior around the label's nominal pass rate ``m_L = clip(1 - L, 0.02, 0.98)``
    with ``prior_strength`` pseudo-trials, ``q_L = (k m_L + s_L) / (k + t_L)``. An unseen prompt's DES
    uses ``difficulty_factor(q_L)`` in place of its nominal label's; its CoT and adaptability factors are
    unchanged (reference length, 0.5). Prompts without a label keep their prior weight; for the label
    strata they form one more group, measured the same way around ``unseen_pass``.
    """

    def __init__(self, pool: PoolInfo, config: DESConfig, prior_factors: dict[str, np.ndarray]) -> None:
        prior = pool.prior_difficulty
        finite = np.isfinite(prior) if prior is not None else np.zeros(pool.size, dtype=bool)
        option = "des.stratify_labels" if config.stratify_labels else "des.calibrate_labels"
        if not finite.any():
            raise ValueError(
                f"{option}=true needs difficulty labels (PoolInfo.prior_difficulty); "
                f"this pool has none: set {option}=false"
            )
        labels, inverse = np.unique(prior[finite], return_inverse=True)
        if len(labels) > 1024:
            raise ValueError(
                f"{option} groups prompts by label, but the pool has {len(labels)} distinct "
                f"labels (> 1024): bin prior_difficulty first or set {option}=false"
            )
        self.config = config
        self.label_of = np.full(pool.size, -1, dtype=np.int64)
        self.label_of[finite] = inverse
        # Groups: the labels, then one group of the unlabelled prompts (if any). group_of: (P,) int64 group
        # of each prompt; group_sizes: (groups,) float64 prompts per group; n_labels: distinct labels.
        self.group_of = np.where(finite, self.label_of, len(labels))
        self.group_sizes = np.bincount(self.group_of).astype(np.float64)
        self.n_labels = len(labels)
        nominal = np.clip(1.0 - labels, 0.02, 0.98)
        self.nominal = nominal if finite.all() else np.append(nominal, config.unseen_pass)
        self.successes, self.trials = np.zeros(len(self.nominal)), np.zeros(len(self.nominal))
        self.other = (
            config.weight_cot * prior_factors["cot_complexity"]
            + config.weight_adaptability * prior_factors["adaptability"]
        )

    def observe(self, ids: np.ndarray, correct: np.ndarray) -> None:
        group = self.group_of[ids]
        k = len(self.nominal)
        self.successes = self.config.calibration_decay * self.successes + np.bincount(
            group, weights=correct.sum(axis=1), minlength=k
        )
        self.trials = self.config.calibration_decay * self.trials + np.bincount(
            group, weights=np.full(len(group), float(correct.shape[1])), minlength=k
        )

    def group_pass_rates(self) -> np.ndarray:
        """(groups,) float64 posterior mean pass rate per label, then of the unlabelled group if any."""
        k = self.config.prior_strength
        return (k * self.nominal + self.successes) / (k + self.trials)

    def pass_rates(self) -> np.ndarray:
        """(labels,) float64 posterior mean pass rate per label."""
        return self.group_pass_rates()[: self.n_labels]

    def unseen_weights(self, unseen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, sampler weights) for the labelled prompts among ``unseen``."""
        ids = unseen[self.label_of[unseen] >= 0]
        c = self.config
        difficulty = difficulty_factor(self.pass_rates(), c.target_pass)[self.label_of[ids]]
        des = (c.weight_difficulty * difficulty + self.other[ids]) / (
            c.weight_difficulty + c.weight_cot + c.weight_adaptability
        )
        return ids, c.sampler_weight(des)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"successes": self.successes.copy(), "trials": self.trials.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        successes, trials = (np.asarray(state[k], dtype=np.float64) for k in ("successes", "trials"))
        if successes.shape == trials.shape == (self.n_labels,) and len(self.nominal) == self.n_labels + 1:
            # Saved before the unlabelled group was counted: that group starts from its prior.
            successes, trials = np.append(successes, 0.0), np.append(trials, 0.0)
        if successes.shape != self.successes.shape or trials.shape != self.trials.shape:
            raise ValueError(
                f"label calibration state has {successes.shape[0]} groups, this pool {len(self.nominal)} "
                "(its labels changed)"
            )
        self.successes, self.trials = successes.copy(), trials.copy()
