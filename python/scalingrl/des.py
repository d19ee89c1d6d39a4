"""Data Effectiveness Score: configuration and the per-prompt store's Python face.

The store itself is C++ (``scalingrl._native.PromptStore``, csrc/prompt_store.cpp): one record per
prompt, O(1) work per touched prompt, normalisation by running moments. The tests re-derive
the same numbers with plain Python loops (``tests/references.py``). docs/des.md gives the formulas and reasons.

Left out on purpose: anything that needs a pass over the whole pool per step (exact quantiles,
re-scoring untouched prompts when the normalisation moves).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from scalingrl import _native

FACTORS = ("difficulty", "cot_complexity", "adaptability")
COT_KEYS = ("response_length", "entropy_mean", "high_entropy_fraction")


@dataclasses.dataclass
class DESConfig:
    """Knobs of the Data Effectiveness Score.

    Attributes:
        prior_strength: pseudo-trials of the Beta prior on a prompt's pass rate (how much a data set's
            difficulty label counts against observed rollouts).
        unseen_pass: prior mean pass rate where the data set has no difficulty label.
        count_decay: weight kept by earlier visits' success/trial counts at each new visit (recency:
            the model changes, old outcomes go stale).
        target_pass: pass rate at which the difficulty factor peaks (0.5: largest GRPO reward variance).
        stat_ema: weight of the newest visit in the CoT and adaptability averages.
        norm_decay: weight of each new sample in the running normalisation moments (~1/window).
        weight_difficulty: weight of the difficulty factor in DES; 0 switches it off.
        weight_cot: weight of the chain-of-thought complexity factor; 0 switches it off.
        weight_adaptability: weight of the reward adaptability factor; 0 switches it off.
        sharpness: sampler weight = weight_floor + DES ** sharpness (higher: greedier selection).
        weight_floor: smallest sampler weight of a prompt in play, so none starves entirely.
        calibrate_labels: re-rank unseen prompts by the *measured* pass rate of their difficulty label
            (all rollouts of prompts sharing the label, Beta posterior around the label's prior) instead
            of the label's nominal pass rate; off by default (docs/des_evidence.md says why it exists).
        calibration_decay: per-step weight kept by a label's earlier success/trial counts.
        calibrate_every: steps between two re-rankings of the unseen prompts (each is O(pool)).
    """

    prior_strength: float = 2.0
    unseen_pass: float = 0.5
    count_decay: float = 0.7
    target_pass: float = 0.5
    stat_ema: float = 0.5
    norm_decay: float = 1e-3
    weight_difficulty: float = 1.0
    weight_cot: float = 0.5
    weight_adaptability: float = 0.5
    sharpness: float = 4.0
    weight_floor: float = 1e-3
    calibrate_labels: bool = False
    calibration_decay: float = 0.9
    calibrate_every: int = 10

    def __post_init__(self) -> None:
        checks = [
            ("prior_strength", self.prior_strength > 0, "a positive number of pseudo-trials, e.g. 2.0"),
            ("unseen_pass", 0 < self.unseen_pass < 1, "a pass rate strictly between 0 and 1, e.g. 0.5"),
            ("count_decay", 0 <= self.count_decay <= 1, "in [0, 1]; 1 keeps all history, 0 only the last visit"),
            ("target_pass", 0 < self.target_pass < 1, "strictly between 0 and 1, e.g. 0.5"),
            ("stat_ema", 0 < self.stat_ema <= 1, "in (0, 1]"),
            ("norm_decay", 0 < self.norm_decay <= 1, "in (0, 1], e.g. 1e-3"),
            ("sharpness", self.sharpness > 0, "positive, e.g. 4.0"),
            ("weight_floor", self.weight_floor >= 0, ">= 0"),
            ("calibration_decay", 0 <= self.calibration_decay <= 1, "in [0, 1], e.g. 0.9"),
            ("calibrate_every", self.calibrate_every >= 1, "an integer number of steps >= 1"),
        ]
        for name in ("weight_difficulty", "weight_cot", "weight_adaptability"):
            checks.append((name, getattr(self, name) >= 0, ">= 0 (0 switches the factor off)"))
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"des.{name}={getattr(self, name)!r} is invalid: use {fix}")
        if self.weight_difficulty + self.weight_cot + self.weight_adaptability <= 0:
            raise ValueError("des.weight_* are all 0: switch at least one factor on (e.g. des.weight_difficulty=1)")

    def native(self) -> Any:
        params = _native.DesParams()
        for field in ("prior_strength", "unseen_pass", "count_decay", "target_pass", "stat_ema", "norm_decay",
                      "weight_difficulty", "weight_cot", "weight_adaptability"):
            setattr(params, field, float(getattr(self, field)))
        return params

    def sampler_weight(self, des: np.ndarray) -> np.ndarray:
        """Sampler weight of prompts in play from their DES, (B,) float64."""
        return self.weight_floor + np.asarray(des, dtype=np.float64) ** self.sharpness


def difficulty_factor(pass_rate: np.ndarray, target_pass: float) -> np.ndarray:
    """The DES difficulty factor of a pass rate, (n,) float64 in [0, 1] (same formula as the store).

    ``q^(2t) (1-q)^(2(1-t)) / (t^(2t) (1-t)^(2(1-t)))`` with t = ``target_pass``: 1 at q = t, 0 at 0 and 1.
    """
    q = np.asarray(pass_rate, dtype=np.float64)
    a, b = 2 * target_pass, 2 * (1 - target_pass)
    return q**a * (1 - q) ** b / (target_pass**a * (1 - target_pass) ** b)


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

    def __init__(self, size: int, config: DESConfig, prior_difficulty: np.ndarray | None = None,
                 reference_cot_length: np.ndarray | None = None) -> None:
        self.config = config
        self._impl = _native.PromptStore(int(size), config.native(), prior_difficulty, reference_cot_length)

    def __len__(self) -> int:
        return len(self._impl)

    def update(self, step: int, prompt_ids: np.ndarray, rewards: np.ndarray, correct: np.ndarray,
               cot_stats: dict[str, np.ndarray] | None = None) -> None:
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
        self._impl.update(int(step), ids, successes, trials, reward_std, means["response_length"],
                          means["entropy_mean"], means["high_entropy_fraction"])

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
