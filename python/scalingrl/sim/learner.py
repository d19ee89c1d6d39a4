"""Synthetic prompt pool, simulated learner and the loop that drives a ``Selector`` against them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from scalingrl.data import PoolInfo
from scalingrl.selection import SelectionConfig, make_selector, screened_batch


@dataclasses.dataclass
class LearnerConfig:
    """Knobs of the synthetic pool and the simulated learner.

    Attributes:
        pool_size: number of synthetic prompts P.
        group_size: rollouts per prompt G.
        initial_skill: learner skill at step 0 (on the latent difficulty scale, about N(0, 1.5)).
        learning_rate: skill gain per unit of GRPO signal, per prompt in the batch (divided by batch size).
        frontier_width: width of the Gaussian bump that makes prompts near the skill frontier teach most.
        forgetting: fraction of skill above ``initial_skill`` lost per step.
        memorisation: extra pass-rate logit gained by a prompt each time it is trained on (over-fitting a
            small set); it does not transfer to held-out evaluation.
        repeat_discount: diminishing returns of replay: a prompt already trained on ``v`` times teaches
            ``1 / (1 + repeat_discount * v)`` of what a fresh one of the same signal would.
        eval_size: held-out synthetic prompts for the accuracy curve.
        prior_noise: standard deviation of the noise on the metadata prior (MATH-level-like, 5 bins).
    """

    pool_size: int = 220_000
    group_size: int = 8
    initial_skill: float = -0.5
    learning_rate: float = 0.15
    frontier_width: float = 1.0
    forgetting: float = 0.002
    memorisation: float = 0.3
    repeat_discount: float = 0.05
    eval_size: int = 2000
    prior_noise: float = 0.7

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ValueError(f"pool_size={self.pool_size} must be >= 1")
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size} must be >= 2 (GRPO needs a group)")
        if self.learning_rate < 0 or self.frontier_width <= 0:
            raise ValueError("learning_rate must be >= 0 and frontier_width > 0")
        if not 0 <= self.forgetting < 1:
            raise ValueError(f"forgetting={self.forgetting} must be in [0, 1)")
        if self.memorisation < 0 or self.repeat_discount < 0:
            raise ValueError(
                f"memorisation={self.memorisation} and repeat_discount={self.repeat_discount} must be >= 0"
            )
        if self.eval_size < 1:
            raise ValueError(f"eval_size={self.eval_size} must be >= 1")


@dataclasses.dataclass
class SyntheticPool:
    """Latent difficulty (P,) float64, metadata prior in [0, 1] (P,) and reference CoT length (P,)."""

    difficulty: np.ndarray
    prior_difficulty: np.ndarray
    reference_cot_length: np.ndarray

    def pool_info(self) -> PoolInfo:
        return PoolInfo(len(self.difficulty), self.prior_difficulty.copy(), self.reference_cot_length.copy())


def make_pool(config: LearnerConfig, seed: int) -> SyntheticPool:
    """Draw the latent difficulties, a noisy 5-level prior and reference CoT lengths."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.5, config.pool_size)
    noisy = difficulty + rng.normal(0.0, config.prior_noise, config.pool_size)
    level = np.clip(np.round((noisy + 3.0) / 1.5), 0, 4)  # 5 bins like MATH levels
    cot = np.exp(5.0 + 0.25 * difficulty + rng.normal(0.0, 0.3, config.pool_size))
    return SyntheticPool(difficulty, level / 4.0, cot)


def pass_probability(skill: float, difficulty: np.ndarray, bonus: np.ndarray | float = 0.0) -> np.ndarray:
    """Pass probability (n,) float64 of a learner of ``skill`` on prompts of ``difficulty`` (n,)."""
    return 1.0 / (1.0 + np.exp(-(skill - difficulty + bonus)))


class SimulatedLearner:
    """A scalar skill that grows with the GRPO signal of near-frontier prompts and slowly decays."""

    def __init__(self, pool: SyntheticPool, config: LearnerConfig, seed: int) -> None:
        self.pool, self.config = pool, config
        self.skill = config.initial_skill
        self.rng = np.random.default_rng(seed)
        self.visits = np.zeros(len(pool.difficulty), dtype=np.int32)
        eval_rng = np.random.default_rng(seed + 10_007)
        self.eval_difficulty = eval_rng.normal(0.0, 1.5, config.eval_size)

    def rollout(
        self, ids: np.ndarray, group_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Rewards (B, G) float64, correct (B, G) bool and CoT statistics (B, G) for prompts ``ids``
        (G = ``group_size``, default the learner's)."""
        cfg = self.config
        d = self.pool.difficulty[ids]
        p = pass_probability(self.skill, d, cfg.memorisation * np.log1p(self.visits[ids]))
        correct = self.rng.random((len(ids), group_size or cfg.group_size)) < p[:, None]
        # CoT grows with difficulty and with the learner's uncertainty on the prompt (4 p (1 - p) in [0, 1]).
        d, u = d[:, None], (4.0 * p * (1.0 - p))[:, None]
        length = np.exp(5.0 + 0.25 * d + 0.2 * u + self.rng.normal(0.0, 0.3, correct.shape))
        entropy = np.clip(0.6 + 0.1 * d + 0.2 * u + self.rng.normal(0.0, 0.1, correct.shape), 0.01, None)
        high = np.clip(0.1 + 0.03 * d + 0.05 * u + self.rng.normal(0.0, 0.02, correct.shape), 0.0, 1.0)
        stats = {"response_length": length, "entropy_mean": entropy, "high_entropy_fraction": high}
        return correct.astype(np.float64), correct, stats

    def train(self, ids: np.ndarray, correct: np.ndarray, keep: np.ndarray | None = None) -> None:
        """One update on the batch: skill += lr * mean over kept prompts of signal * closeness * replay discount.

        ids: (B,) int64 prompt ids; correct: (B, G) bool outcomes of their rollouts; keep: (B,) bool, the
        groups the selector's ``loss_groups`` hook keeps (None: all).
        """
        cfg = self.config
        rate = correct.mean(axis=1)
        signal = rate * (1.0 - rate)  # GRPO gradient scale: 0 for all-equal groups
        closeness = np.exp(-0.5 * ((self.pool.difficulty[ids] - self.skill) / cfg.frontier_width) ** 2)
        gain = signal * closeness / (1.0 + cfg.repeat_discount * self.visits[ids])
        if keep is not None and not np.all(keep):
            # Dropped groups leave the average (DAPO keeps the batch size by averaging the survivors).
            keep = np.asarray(keep, dtype=bool)
            gain = gain[keep] if keep.any() else np.zeros(1)
        self.skill += cfg.learning_rate * (float(gain.mean()) if gain.size else 0.0)
        self.skill -= cfg.forgetting * (self.skill - cfg.initial_skill)
        np.add.at(self.visits, ids, 1)

    def accuracy(self) -> float:
        """Expected accuracy (float) on the held-out synthetic prompts (no memorisation bonus)."""
        return float(pass_probability(self.skill, self.eval_difficulty).mean())


def run_schedule(
    selection_config: SelectionConfig,
    learner_config: LearnerConfig | None = None,
    seed: int = 0,
    steps: int = 150,
    batch_size: int = 256,
    pool: SyntheticPool | None = None,
    eval_every: int = 10,
) -> dict[str, Any]:
    """Train a simulated learner with the selector of ``selection_config`` for ``steps`` of ``batch_size``
    groups: the same steps for every method, and the same rollouts except for a screening round (``speed``,
    ``des`` with ``des.screen``), whose samples ``rollouts`` counts.

    Returns a dict with ``final_accuracy`` (held-out expected pass@1), ``unique_prompts``, ``rollouts``,
    ``curve`` (list of ``[rollouts, accuracy]``), ``zero_variance_fraction`` (share of groups with all-equal
    rewards, over the run), ``selection_ms`` and ``update_ms`` (per-step lists, from the selector).
    """
    lcfg = learner_config or LearnerConfig()
    pool = pool if pool is not None else make_pool(lcfg, seed)
    selector = make_selector(pool.pool_info(), selection_config, seed)
    learner = SimulatedLearner(pool, lcfg, seed)
    curve, selection_ms, update_ms = [[0, learner.accuracy()]], [], []
    rollouts = zero_variance_groups = 0
    for step in range(steps):
        # The screening hook's protocol, as in train.grpo_step (a no-op for selectors without a plan).
        selection, screened = screened_batch(
            selector, step, batch_size, lambda candidates, n: learner.rollout(candidates.prompt_ids, n)[:2]
        )
        rollouts += screened
        ids = selection.prompt_ids
        rewards, correct, stats = learner.rollout(ids)
        selector.update(step, ids, rewards, correct, stats)
        learner.train(ids, correct, keep=selector.loss_groups(rewards))
        rollouts += ids.size * lcfg.group_size
        zero_variance_groups += int(np.count_nonzero(correct.all(axis=1) | ~correct.any(axis=1)))
        metrics = selector.metrics()
        selection_ms.append(metrics["selection_ms"])
        update_ms.append(metrics["update_ms"])
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.append([rollouts, learner.accuracy()])
    return {
        "final_accuracy": learner.accuracy(),
        "unique_prompts": selector.unique_prompts_used(),
        "rollouts": rollouts,
        "curve": curve,
        "zero_variance_fraction": zero_variance_groups / max(1, steps * batch_size),
        "selection_ms": selection_ms,
        "update_ms": update_ms,
    }


def run_method(
    method: str,
    seed: int,
    steps: int,
    batch_size: int,
    learner_config: LearnerConfig | None = None,
    selection_config: SelectionConfig | None = None,
    pool: SyntheticPool | None = None,
    eval_every: int = 10,
) -> dict[str, Any]:
    """``run_schedule`` with ``selection_config`` (default knobs) switched to ``method``."""
    scfg = dataclasses.replace(selection_config or SelectionConfig(), method=method)
    return run_schedule(scfg, learner_config, seed, steps, batch_size, pool, eval_every)
