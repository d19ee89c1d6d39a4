"""Configuration of prompt selection: the method registry and the knobs of DES, the curriculum and the
baselines, as dataclasses.

This module imports neither the C++ extension nor the selectors, so ``scalingrl.config`` types
``TrainConfig.selection`` and validates a config (``--help`` included) without building either.
The selectors (``scalingrl.selection``) register themselves in ``METHODS`` when imported; the names
of the built-in ones are known here as ``BUILTIN_METHODS`` (``scalingrl.selection`` checks that the
two agree).

Left out on purpose: every rule that acts on these values (``scalingrl.des``, ``scalingrl.curriculum``,
``scalingrl.online_selection``, ``scalingrl.selection``).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import numpy as np

from scalingrl.config_field import config_field

__all__ = [
    "SelectionConfig",
    "DESConfig",
    "CurriculumConfig",
    "AdaRFTConfig",
    "MoPPSConfig",
    "GRESOConfig",
    "SPEEDConfig",
    "METHODS",
    "BUILTIN_METHODS",
    "register_method",
]

#: The methods ``scalingrl.selection`` defines, in registration order.
BUILTIN_METHODS = ("uniform", "dapo", "random_subset", "adarft", "des", "mopps", "greso", "speed")
_REGISTRY: dict[str, type] = {}
#: Read-only view of the registry, name -> selector class (``"des" in METHODS``, ``list(METHODS)``).
METHODS = types.MappingProxyType(_REGISTRY)


def register_method(name: str):
    """Class decorator: register a selector class under ``name`` (sets ``cls.name``).

    Raises ValueError when ``name`` is taken, so two methods never shadow each other.
    """

    def decorate(cls):
        if name in _REGISTRY:
            raise ValueError(f"selection method {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


@dataclasses.dataclass
class DESConfig:
    """Knobs of the Data Effectiveness Score."""

    prior_strength: float = config_field(
        2.0,
        help="pseudo-trials of the Beta prior on a prompt's pass rate (how much a data set's difficulty label "
        "counts against observed rollouts).",
    )
    unseen_pass: float = config_field(0.5, help="prior mean pass rate where the data set has no difficulty label.")
    count_decay: float = config_field(
        0.7,
        help="weight kept by earlier visits' success/trial counts at each new visit (recency: the model changes, "
        "old outcomes go stale).",
    )
    target_pass: float = config_field(
        0.5,
        help="pass rate at which the difficulty factor peaks (0.5: largest GRPO reward variance).",
    )
    stat_ema: float = config_field(0.5, help="weight of the newest visit in the CoT and adaptability averages.")
    norm_decay: float = config_field(
        1e-3,
        help="weight of each new sample in the running normalisation moments (~1/window).",
    )
    weight_difficulty: float = config_field(1.0, help="weight of the difficulty factor in DES; 0 switches it off.")
    weight_cot: float = config_field(0.5, help="weight of the chain-of-thought complexity factor; 0 switches it off.")
    weight_adaptability: float = config_field(0.5, help="weight of the reward adaptability factor; 0 switches it off.")
    sharpness: float = config_field(
        4.0,
        help="sampler weight = weight_floor + DES ** sharpness (higher: greedier selection).",
    )
    weight_floor: float = config_field(
        1e-3,
        help="smallest sampler weight of a prompt in play, so none starves entirely.",
    )
    calibrate_labels: bool = config_field(
        False,
        help="re-rank unseen prompts by the *measured* pass rate of their difficulty label (all rollouts of "
        "prompts sharing the label, Beta posterior around the label's prior) instead of the label's nominal "
        "pass rate; off by default (docs/des_evidence.md says why it exists).",
    )
    calibration_decay: float = config_field(0.9, help="per-step weight kept by a label's earlier success/trial counts.")
    calibrate_every: int = config_field(
        10,
        help="steps between two re-rankings of the unseen prompts (each is O(pool)).",
    )
    stratify_labels: bool = config_field(
        False,
        help="draw each batch label by label: a difficulty label's share of the batch is its pool share times "
        "(coverage + the difficulty factor of its measured pass rate); DES ranks within a label "
        '(docs/des.md, "Label strata").',
    )
    coverage: float = config_field(
        0.5,
        help="with stratify_labels: the part of a label's batch share kept whatever its measured signal "
        "(0: by signal only; large: the pool's label mix, like uniform sampling).",
    )
    screen: bool = config_field(
        False,
        help="screen DES's candidates before the full groups, as the speed baseline screens uniform ones: DES "
        "draws the candidates, those whose screening rewards vary get the full group, and the curriculum's "
        "signal comes from the screening round; the candidate count and samples are selection.speed.* "
        '(docs/des.md, "Screening DES\'s candidates").',
    )

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
            ("coverage", np.isfinite(self.coverage) and self.coverage >= 0, "a finite number >= 0, e.g. 0.5"),
        ]
        for name in ("weight_difficulty", "weight_cot", "weight_adaptability"):
            checks.append((name, getattr(self, name) >= 0, ">= 0 (0 switches the factor off)"))
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"des.{name}={getattr(self, name)!r} is invalid: use {fix}")
        if self.weight_difficulty + self.weight_cot + self.weight_adaptability <= 0:
            raise ValueError("des.weight_* are all 0: switch at least one factor on (e.g. des.weight_difficulty=1)")
        if not isinstance(self.screen, bool):
            raise ValueError(f"des.screen={self.screen!r} must be true or false")
        if self.screen and (self.calibrate_labels or self.stratify_labels):
            # Their label pass rates would only see the groups that passed the screen (biased towards 0.5),
            # and strata would be apportioned before the screen re-mixes the batch.
            raise ValueError(
                "des.screen=true does not combine with des.calibrate_labels or des.stratify_labels: switch one off"
            )

    def native(self) -> Any:
        """The extension's ``DesParams`` with these values (imports ``scalingrl._native``)."""
        from scalingrl import _native

        params = _native.DesParams()
        for field in (
            "prior_strength",
            "unseen_pass",
            "count_decay",
            "target_pass",
            "stat_ema",
            "norm_decay",
            "weight_difficulty",
            "weight_cot",
            "weight_adaptability",
        ):
            setattr(params, field, float(getattr(self, field)))
        return params

    def sampler_weight(self, des: np.ndarray) -> np.ndarray:
        """Sampler weight of prompts in play from their DES, (B,) float64."""
        return self.weight_floor + np.asarray(des, dtype=np.float64) ** self.sharpness


@dataclasses.dataclass
class CurriculumConfig:
    """Knobs of the curriculum scheduler."""

    initial_pool: int = config_field(1024, help='prompts in play the scheduler aims for at the start (the "scale").')
    min_pool: int = config_field(64, help="smallest target pool size.")
    max_pool: int = config_field(0, help="largest target pool size (0 = the whole data set).")
    initial_explore: float = config_field(0.5, help="share of each batch drawn from unseen prompts at the start.")
    min_explore: float = config_field(0.05, help="smallest explore share (a trickle of new prompts never stops).")
    max_explore: float = config_field(0.9, help="largest explore share.")
    signal_ema: float = config_field(
        0.1,
        help="weight of the newest step in the smoothed informative shares (explore, exploit).",
    )
    signal_low: float = config_field(
        0.5,
        help="when the smoothed informative share of replayed groups falls below this share of the most a group "
        "of G 0/1 rewards can show (1 - 2^(1-G), at pass rate 1/2: 0.99 for G=8, 0.5 for G=2), the prompts in "
        "play are spent (mastered or hopeless): the pool target grows by ``rate``. G is rollout.group_size, "
        "or speed.screen_rollouts with des.screen (the signal is then the screening round's).",
    )
    rate: float = config_field(
        0.05,
        help="relative growth of the pool target per step while spent, and the step size of the explore share "
        "towards its measured target.",
    )
    mastery_pass: float = config_field(
        1.0,
        help="a prompt whose group pass rate is >= this on `retire_after` visits in a row retires.",
    )
    hopeless_pass: float = config_field(
        0.0,
        help="a prompt whose group pass rate is <= this on `retire_after` visits in a row is parked.",
    )
    retire_after: int = config_field(2, help="consecutive visits needed to retire or park a prompt.")
    retest_interval: int = config_field(
        50,
        help="steps after which a retired or parked prompt comes back for a re-test.",
    )
    max_visits: int = config_field(
        0,
        help="if > 0, a prompt trained this many times (full groups; screening rounds do not count) leaves play for "
        "good, with no re-test: replay is capped and the batch keeps drawing new prompts; checked before the "
        "retire/park streaks, so at or below retire_after nothing retires or parks (0 = no cap; "
        'docs/curriculum.md, "Visit cap").',
    )
    warm_start_probe: int = config_field(
        0,
        help="if > 0, the first selections draw this many prompts uniformly at random from the pool (a probe that "
        "scores the pool before DES has any rollout to go on).",
    )

    def __post_init__(self) -> None:
        checks = [
            ("initial_pool", self.initial_pool >= 1, "an integer >= 1"),
            ("min_pool", 1 <= self.min_pool, "an integer >= 1"),
            ("max_pool", self.max_pool == 0 or self.max_pool >= self.min_pool, "0 (whole data set) or >= min_pool"),
            ("min_explore", 0 <= self.min_explore <= self.max_explore <= 1, "0 <= min_explore <= max_explore <= 1"),
            (
                "initial_explore",
                self.min_explore <= self.initial_explore <= self.max_explore,
                "between min_explore and max_explore",
            ),
            ("signal_ema", 0 < self.signal_ema <= 1, "in (0, 1], e.g. 0.1"),
            ("signal_low", 0 <= self.signal_low <= 1, "a share of the attainable signal in [0, 1], e.g. 0.5"),
            ("rate", 0 < self.rate < 1, "in (0, 1), e.g. 0.05"),
            ("mastery_pass", 0 < self.mastery_pass <= 1, "in (0, 1]"),
            ("hopeless_pass", 0 <= self.hopeless_pass < self.mastery_pass, "in [0, mastery_pass)"),
            ("retire_after", self.retire_after >= 1, "an integer >= 1"),
            ("retest_interval", self.retest_interval >= 1, "an integer number of steps >= 1"),
            ("max_visits", self.max_visits >= 0, "an integer >= 0 (0 = no cap)"),
            ("warm_start_probe", self.warm_start_probe >= 0, "an integer >= 0"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"curriculum.{name}={getattr(self, name)!r} is invalid: use {fix}")


@dataclasses.dataclass
class AdaRFTConfig:
    """AdaRFT-style target difficulty (Shi et al. 2025, adaptive curriculum RFT)."""

    initial_target: float = config_field(0.3, help="starting target difficulty in [0, 1].")
    step_size: float = config_field(0.05, help="eta in T <- clip(T + eta * tanh(alpha * (reward - target_reward))).")
    sensitivity: float = config_field(2.0, help="alpha in that update.")
    target_reward: float = config_field(0.5, help="beta, the batch mean reward the target steers towards.")

    def __post_init__(self) -> None:
        if not 0 <= self.initial_target <= 1:
            raise ValueError(f"adarft.initial_target={self.initial_target} must be in [0, 1]")
        if self.step_size <= 0 or self.sensitivity <= 0:
            raise ValueError("adarft.step_size and adarft.sensitivity must be > 0")


@dataclasses.dataclass
class MoPPSConfig:
    """Knobs of the MoPPS baseline."""

    prior_strength: float = config_field(
        2.0,
        help="pseudo-trials of the Beta prior; with no difficulty label the prior is Beta(prior_strength/2, "
        "prior_strength/2), i.e. the paper's Beta(1, 1) at the default 2. With a label the prior mean is 1 - "
        "prior_difficulty (the same prior DES gets).",
    )
    decay: float = config_field(
        0.5,
        help="lambda in alpha <- lambda * alpha + (1 - lambda) * alpha0 + successes (and likewise beta): how much "
        "of a prompt's evidence survives each new visit.",
    )
    target_pass: float = config_field(0.5, help="gamma*, the sampled pass rate the selection steers towards.")

    def __post_init__(self) -> None:
        if self.prior_strength <= 0:
            raise ValueError(f"mopps.prior_strength={self.prior_strength!r} must be > 0, e.g. 2.0")
        if not 0 <= self.decay <= 1:
            raise ValueError(f"mopps.decay={self.decay!r} must be in [0, 1]")
        if not 0 < self.target_pass < 1:
            raise ValueError(f"mopps.target_pass={self.target_pass!r} must be strictly between 0 and 1")


@dataclasses.dataclass
class GRESOConfig:
    """Knobs of the GRESO baseline."""

    initial_retry: float = config_field(
        0.5,
        help="starting re-try base probability p (for easy and hard prompts alike).",
    )
    min_retry: float = config_field(0.05, help="floor of p (a skipped prompt always keeps some chance to come back).")
    retry_step: float = config_field(0.01, help="change of p per step (delta p in the paper).")
    target_easy: float = config_field(
        0.0833,
        help="wanted share of all-correct groups per batch; above it p_easy falls.",
    )
    target_hard: float = config_field(0.1667, help="wanted share of all-wrong groups per batch; above it p_hard falls.")
    max_draw_rounds: int = config_field(
        64,
        help="candidate rounds before a batch is filled with the least-skipped candidates.",
    )

    def __post_init__(self) -> None:
        checks = [
            ("min_retry", 0 < self.min_retry <= 1),
            ("initial_retry", self.min_retry <= self.initial_retry <= 1),
            ("retry_step", 0 < self.retry_step < 1),
            ("target_easy", 0 <= self.target_easy <= 1),
            ("target_hard", 0 <= self.target_hard <= 1),
            ("max_draw_rounds", self.max_draw_rounds >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(
                    f"greso.{name}={getattr(self, name)!r} is invalid: need 0 < min_retry <= "
                    "initial_retry <= 1, 0 < retry_step < 1, targets in [0, 1], max_draw_rounds >= 1"
                )


@dataclasses.dataclass
class SPEEDConfig:
    """Knobs of the SPEED-style screening baseline (Zhang et al. 2025, arXiv:2506.09016)."""

    screen_rollouts: int = config_field(
        4,
        help="N_init, samples per candidate in the screening round; a candidate whose screening rewards are all "
        "equal (pass rate 0 or 1 with a 0/1 reward) does not get a full group.",
    )
    candidates_factor: float = config_field(
        2.0,
        help="candidates screened at the first step, as a multiple of batch_size (ceil, at most the pool). Each "
        "candidate costs screen_rollouts rollouts on top of the batch's batch_size x group_size.",
    )
    headroom: float = config_field(
        1.25,
        help="after the first step, ceil(headroom x batch_size / q) candidates are screened, q being the running "
        "share of candidates that qualified (mean of the newest step and the previous estimate), so about "
        "headroom x batch_size qualify: the batch is rarely short of learnable prompts.",
    )
    max_candidates_factor: float = config_field(
        8.0,
        help="cap on the candidates screened per step, as a multiple of batch_size (bounds the screening cost "
        "where almost nothing qualifies); when fewer than batch_size qualify, unqualified candidates fill the batch.",
    )

    def __post_init__(self) -> None:
        if isinstance(self.screen_rollouts, bool) or not isinstance(self.screen_rollouts, int):
            raise ValueError(f"speed.screen_rollouts={self.screen_rollouts!r} must be an integer >= 2")
        if self.screen_rollouts < 2:
            raise ValueError(
                f"speed.screen_rollouts={self.screen_rollouts} must be >= 2: one sample cannot show whether a "
                "prompt's rewards vary"
            )
        for name in ("candidates_factor", "headroom", "max_candidates_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < float("inf"):
                raise ValueError(f"speed.{name}={value!r} must be a finite number >= 1")
        if self.max_candidates_factor < self.candidates_factor:
            raise ValueError(
                f"speed.max_candidates_factor={self.max_candidates_factor} must be >= "
                f"speed.candidates_factor={self.candidates_factor}"
            )


@dataclasses.dataclass
class SelectionConfig:
    """Which prompts each step trains on."""

    method: str = config_field(
        "des",
        help="a registered method (``METHODS``): des, uniform, random_subset, dapo, adarft, mopps, greso, speed.",
    )
    random_subset_size: int = config_field(
        1500,
        help="prompts in the fixed subset of ``random_subset`` (ScalingRL's 1.5K).",
    )
    des: DESConfig = config_field(
        default_factory=DESConfig,
        help="Data Effectiveness Score knobs (also used for the statistics every method records).",
    )
    curriculum: CurriculumConfig = config_field(
        default_factory=CurriculumConfig,
        help="scale/mix/retirement knobs of the ``des`` method.",
    )
    adarft: AdaRFTConfig = config_field(default_factory=AdaRFTConfig, help="knobs of the ``adarft`` baseline.")
    mopps: MoPPSConfig = config_field(default_factory=MoPPSConfig, help="knobs of the ``mopps`` baseline.")
    greso: GRESOConfig = config_field(default_factory=GRESOConfig, help="knobs of the ``greso`` baseline.")
    speed: SPEEDConfig = config_field(
        default_factory=SPEEDConfig, help="knobs of the ``speed`` baseline, and of ``des.screen``'s screening round."
    )

    def __post_init__(self) -> None:
        known = list(dict.fromkeys(BUILTIN_METHODS + tuple(METHODS)))
        if self.method not in known:
            raise ValueError(f"selection.method={self.method!r} is unknown: use one of {', '.join(known)}")
        if self.random_subset_size < 1:
            raise ValueError(f"selection.random_subset_size={self.random_subset_size} must be >= 1")
        if self.des.screen and self.method != "des":
            raise ValueError(
                f"selection.des.screen=true screens DES's candidates, but selection.method={self.method!r}: "
                "use selection.method=des (or selection.method=speed for uniform candidates)"
            )
