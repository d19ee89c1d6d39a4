"""Test oracles: slow, plain-Python restatements of the fast code, one value at a time.

- ``policy_loss_reference``: ``scalingrl.grpo.policy_loss`` as a float64 loop over tokens.
- ``des_reference``: the DES of the C++ store (csrc/prompt_store.cpp), one prompt at a time.
- ``next_schedule_reference``: ``scalingrl.curriculum.next_schedule`` with scalars and ``math``.

They live with the tests, not the package: nothing at run time calls them.
"""

from __future__ import annotations

import math

import numpy as np

from scalingrl.curriculum import CurriculumConfig, ScheduleState, StepSignal
from scalingrl.des import DESConfig
from scalingrl.grpo import GRPOConfig


def policy_loss_reference(logprobs, old_logprobs, advantages, mask, config: GRPOConfig, ref_logprobs=None) -> float:
    """Slow per-token float64 loop of ``scalingrl.grpo.policy_loss``."""
    n, r = len(logprobs), len(logprobs[0])
    token_terms, sequence_terms, token_count = 0.0, [], 0.0
    for i in range(n):
        seq_sum, seq_count = 0.0, 0.0
        for t in range(r):
            if not mask[i][t]:
                continue
            ratio = math.exp(float(logprobs[i][t]) - float(old_logprobs[i][t]))
            a = float(advantages[i])
            clipped = min(max(ratio, 1 - config.clip_low), 1 + config.clip_high)
            term = -min(ratio * a, clipped * a)
            if config.kl_coef > 0:
                delta = float(ref_logprobs[i][t]) - float(logprobs[i][t])
                term += config.kl_coef * (math.exp(delta) - delta - 1)
            seq_sum += term
            seq_count += 1
        token_terms += seq_sum
        token_count += seq_count
        if seq_count:
            sequence_terms.append(seq_sum / seq_count)
    if config.aggregation == "token_mean":
        return token_terms / max(token_count, 1.0)
    return sum(sequence_terms) / max(len(sequence_terms), 1)


def next_schedule_reference(
    state: ScheduleState, signal: StepSignal, config: CurriculumConfig, pool_limit: int
) -> ScheduleState:
    """Slow scalar restatement of ``scalingrl.curriculum.next_schedule`` with ``math`` only."""
    c = config

    def smooth(prev, k, n):
        if n == 0:
            return prev
        return k / n if math.isnan(prev) else prev + c.signal_ema * (k / n - prev)

    xs = smooth(state.explore_signal, signal.explore_informative, signal.explore_groups)
    es = smooth(state.exploit_signal, signal.exploit_informative, signal.exploit_groups)
    upper = pool_limit if c.max_pool == 0 else min(c.max_pool, pool_limit)
    target = state.pool_target
    # The ceiling in closed form, 1 - 2 x 0.5^G (P(all correct) = P(all wrong) = 0.5^G at pass rate 1/2);
    # test_curriculum checks it against brute-force enumeration.
    half = 0.5**signal.group_size
    if not math.isnan(es) and es < c.signal_low * (1 - half - half):
        target = target + c.rate * target
    target = min(max(target, min(c.min_pool, upper)), upper)
    share = state.explore_share
    if not math.isnan(xs) and not math.isnan(es) and xs + es > 0:
        share = (1 - c.rate) * share + c.rate * xs / (xs + es)
    share = min(max(share, c.min_explore), c.max_explore)
    return ScheduleState(target, share, xs, es)


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
    ref_logs = [
        math.log1p(x)
        for x in (reference_cot_length if reference_cot_length is not None else [])
        if math.isfinite(x) and x >= 0
    ]
    ref_mean = sum(ref_logs) / len(ref_logs) if len(ref_logs) >= 2 else 0.0
    ref_var = max(sum(x * x for x in ref_logs) / len(ref_logs) - ref_mean**2, 0.0) if len(ref_logs) >= 2 else 1.0
    rec = []
    for i in range(size):
        d = nan if prior_difficulty is None else float(prior_difficulty[i])
        m = min(max(1 - d, 0.02), 0.98) if math.isfinite(d) else c.unseen_pass
        ref = nan
        if reference_cot_length is not None and math.isfinite(reference_cot_length[i]) and reference_cot_length[i] >= 0:
            ref = (
                0.0
                if len(ref_logs) < 2
                else (math.log1p(reference_cot_length[i]) - ref_mean) / math.sqrt(ref_var + 1e-12)
            )
        rec.append(
            dict(
                alpha=c.prior_strength * m,
                beta=c.prior_strength * (1 - m),
                s=0.0,
                t=0.0,
                last=nan,
                progress=nan,
                rstd=nan,
                length=nan,
                entropy=nan,
                high=nan,
                ref=ref,
            )
        )
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
            for key, values, transform in (
                ("length", length, lambda x: math.log1p(max(x, 0.0))),
                ("entropy", entropy, float),
                ("high", high, float),
            ):
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
