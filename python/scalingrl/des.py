"""Data Effectiveness Score: configuration, the per-prompt store's Python face, and a slow reference.

The store itself is C++ (``scalingrl._native.PromptStore``, csrc/prompt_store.cpp): one record per
prompt, O(1) work per touched prompt, normalisation by running moments. ``des_reference`` re-derives
the same numbers with plain Python loops for the tests. docs/des.md gives the formulas and reasons.

Left out on purpose: anything that needs a pass over the whole pool per step (exact quantiles,
re-scoring untouched prompts when the normalisation moves).
"""

from __future__ import annotations

import dataclasses
import math
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


# -------------------------------------------------------------------------------------------------
# Slow reference (tests only): the same formulas as csrc/prompt_store.cpp, one prompt at a time.


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class _Moments:
    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0.0

    def add(self, x: float, decay: float) -> None:
        if not math.isfinite(x):
            return
        self.count += 1
        w = max(decay, 1.0 / self.count)
        delta = x - self.mean
        self.mean += w * delta
        self.var = (1 - w) * (self.var + w * delta * delta)

    def z(self, x: float) -> float:
        return 0.0 if self.count < 2 else (x - self.mean) / math.sqrt(self.var + 1e-12)


def des_reference(config: DESConfig, size: int, prior_difficulty, reference_cot_length, updates) -> np.ndarray:
    """(size, 4) difficulty, cot_complexity, adaptability, DES after ``updates``.

    ``updates`` is a list of (step, ids, successes, trials, reward_std, length, entropy, high_fraction)
    with per-prompt 1-D sequences (NaN = not measured).
    """
    c = config
    nan = float("nan")
    ref_logs = [math.log1p(x) for x in (reference_cot_length if reference_cot_length is not None else [])
                if math.isfinite(x) and x >= 0]
    ref_mean = sum(ref_logs) / len(ref_logs) if len(ref_logs) >= 2 else 0.0
    ref_var = max(sum(x * x for x in ref_logs) / len(ref_logs) - ref_mean**2, 0.0) if len(ref_logs) >= 2 else 1.0
    rec = []
    for i in range(size):
        d = nan if prior_difficulty is None else float(prior_difficulty[i])
        m = min(max(1 - d, 0.02), 0.98) if math.isfinite(d) else c.unseen_pass
        ref = nan
        if reference_cot_length is not None and math.isfinite(reference_cot_length[i]) and reference_cot_length[i] >= 0:
            ref = 0.0 if len(ref_logs) < 2 else (math.log1p(reference_cot_length[i]) - ref_mean) / math.sqrt(ref_var + 1e-12)
        rec.append(dict(alpha=c.prior_strength * m, beta=c.prior_strength * (1 - m), s=0.0, t=0.0, last=nan,
                        progress=nan, rstd=nan, length=nan, entropy=nan, high=nan, ref=ref))
    moments = {k: _Moments() for k in ("length", "entropy", "high", "adapt")}

    def blend(old, x):
        return (1 - c.stat_ema) * old + c.stat_ema * x if math.isfinite(old) else x

    for _step, ids, succ, trials, rstd, length, entropy, high in updates:
        for j, i in enumerate(ids):
            r = rec[i]
            p = succ[j] / trials[j]
            if math.isfinite(r["last"]):
                r["progress"] = blend(r["progress"], abs(p - r["last"]))
                moments["adapt"].add(r["progress"] + 0.5 * blend(r["rstd"], rstd[j]), c.norm_decay)
            r["last"] = p
            r["rstd"] = blend(r["rstd"], rstd[j])
            r["s"] = c.count_decay * r["s"] + succ[j]
            r["t"] = c.count_decay * r["t"] + trials[j]
            for key, values, transform in (("length", length, lambda x: math.log1p(max(x, 0.0))),
                                           ("entropy", entropy, float), ("high", high, float)):
                if values is not None and math.isfinite(values[j]):
                    x = transform(values[j])
                    r[key] = blend(r[key], x)
                    moments[key].add(x, c.norm_decay)
    out = np.zeros((size, 4))
    a, b = 2 * c.target_pass, 2 * (1 - c.target_pass)
    peak = c.target_pass**a * (1 - c.target_pass) ** b
    for i, r in enumerate(rec):
        q = (r["alpha"] + r["s"]) / (r["alpha"] + r["beta"] + r["t"])
        diff = q**a * (1 - q) ** b / peak
        zs = [moments[k].z(r[k]) for k in ("length", "entropy", "high") if math.isfinite(r[k])]
        if not zs and math.isfinite(r["ref"]):
            zs = [r["ref"]]
        cot = _sigmoid(sum(zs) / len(zs)) if zs else 0.5
        raw = r["progress"] + 0.5 * (r["rstd"] if math.isfinite(r["rstd"]) else 0.0)
        adapt = _sigmoid(moments["adapt"].z(raw)) if math.isfinite(r["progress"]) else 0.5
        total = c.weight_difficulty + c.weight_cot + c.weight_adaptability
        des = (c.weight_difficulty * diff + c.weight_cot * cot + c.weight_adaptability * adapt) / total
        out[i] = (diff, cot, adapt, des)
    return out
