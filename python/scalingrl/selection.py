"""Prompt selection for the GRPO loop: the DES curriculum and the baselines, behind one interface.

``make_selector(pool, config, seed)`` returns a ``Selector`` for ``config.method``. Methods are
registered with ``@register_method(name)``; ``METHODS`` is the read-only view of that registry
(name -> class, in registration order; both live in ``scalingrl.selection_config`` with the config
dataclasses):

- ``des``: Data Effectiveness Score + adaptive curriculum (``scalingrl.des``, ``scalingrl.curriculum``),
  drawn through two exact O(1) samplers (prompts in play; unseen prompts by their prior DES); with
  ``des.screen`` its candidates go through SPEED's screen (the screening hook below);
- ``uniform``: uniform over the whole pool;
- ``random_subset``: uniform over a fixed random subset of ``random_subset_size`` prompts;
- ``dapo``: uniform, and the trainer drops zero-variance groups from the update (DAPO's dynamic
  sampling filter, without its over-sampling);
- ``adarft``: AdaRFT-style target difficulty: the prompts whose estimated difficulty is closest to a
  target that follows the batch reward (a full argsort over the pool each step);
- ``mopps``: MoPPS, Thompson samples of per-prompt Beta posteriors nearest a target pass rate;
- ``greso``: GRESO, uniform candidates minus predicted zero-variance prompts (with re-tries), and the
  zero-variance groups that still occur are dropped from the loss;
- ``speed``: SPEED-style screening, uniform candidates rolled out a few times first; those whose
  screening rewards vary get the full group.

Besides choosing prompts, a selector acts on the batch through two documented hooks:
``loss_groups(rewards) -> (B,) bool``, which of the step's groups enter the policy loss (all by
default; DAPO and GRESO drop zero-variance groups), and ``screening_plan(batch_size)`` with
``screen(selection, rewards, batch_size, correct)``, a screening rollout round before the full groups (none by
default; SPEED, and DES with ``des.screen``). docs/selection.md describes the contracts.

Every selector keeps the same per-prompt store, so statistics exports and the records look alike.
Everything is deterministic for a seed and round-trips through ``state_dict``/``load_state_dict``.
Left out on purpose: anything that calls the model; the trainer rolls out and calls ``update``.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any

import numpy as np

from scalingrl.curriculum import (
    ScheduleState,
    StepSignal,
    capped_hint,
    leave_play,
    next_schedule,
    split_batch,
    step_signal,
)
from scalingrl.data import PoolInfo
from scalingrl.des import FACTORS, LabelCalibration, PromptStore, label_shares
from scalingrl.online_selection import (
    CandidateCount,
    greso_keep_probability,
    greso_next_explore,
    mopps_pick,
    mopps_prior,
    mopps_update,
    speed_screen,
)
from scalingrl.sampler import STRATIFIED_FORMAT, StratifiedSampler, WeightedSampler, apportion
from scalingrl.selection_config import METHODS, SelectionConfig, register_method
from scalingrl.selection_protocol import ScreeningPlan, Selection, Selector, screened_batch
from scalingrl.selection_screening import ScreeningBookkeeping

__all__ = [
    "METHODS",
    "SelectionConfig",
    "register_method",
    "make_selector",
    "Selection",
    "ScreeningPlan",
    "Selector",
    "screened_batch",
]

STATE_VERSION = 2
UNSEEN, IN_PLAY, RETIRED, PARKED, CAPPED = 0, 1, 2, 3, 4  # CAPPED: trained curriculum.max_visits times, out for good


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


class _BaseSelector(ScreeningBookkeeping):
    """Shared bookkeeping: the per-prompt store, the used set, timings, the generator."""

    name = "base"

    def __init__(self, pool: PoolInfo, config: SelectionConfig, seed: int) -> None:
        self.pool, self.config, self.seed = pool, config, seed
        self.store = PromptStore(pool.size, config.des, pool.prior_difficulty, pool.reference_cot_length)
        self.rng = np.random.default_rng(seed)
        self.used = np.zeros(pool.size, dtype=bool)
        self.used_count = 0
        self.last_select_ms = 0.0
        self.last_update_ms = 0.0
        self.pending: np.ndarray | None = None  # ids of the last selection, awaiting their update
        self.pending_explore: np.ndarray | None = None  # (B,) bool: which of them were new prompts
        self.pending_fresh: np.ndarray | None = None  # (B,) bool: which of them the used set gained
        # After a screening round: the trained candidates' screening (ids, (B, n) rewards, (B, n) correct),
        # folded into the store together with their groups at ``update`` (one visit per prompt and step).
        self.screened: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- the interface -------------------------------------------------------------------------
    def select(self, step: int, batch_size: int) -> Selection:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        start = time.perf_counter()
        ids, explore = self._choose(step, batch_size)
        ids = np.asarray(ids, dtype=np.int64)
        fresh = ~self.used[ids]
        self.used[ids] = True
        self.used_count += int(fresh.sum())
        des, factors = self._scores(ids)
        self.pending, self.pending_explore, self.pending_fresh = ids, np.asarray(explore, dtype=bool), fresh
        self._forget_screening()  # a new selection: no screening round of it yet
        self.last_select_ms = (time.perf_counter() - start) * 1e3
        return Selection(
            step=step, prompt_ids=ids, is_explore=np.asarray(explore, dtype=bool), des=des, factors=factors
        )

    def update(
        self,
        step: int,
        prompt_ids: np.ndarray,
        rewards: np.ndarray,
        correct: np.ndarray,
        cot_stats: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Feed one step's trained groups back: the store, then the method's own state (``_after_update``).

        Args:
            step: the step's index. prompt_ids: (B,) int64, the prompts trained, in selection order; after a
                screening round exactly ``selection.take(positions).prompt_ids`` of that round.
            rewards: (B, G) float64, finite. correct: (B, G) bool. cot_stats: optional (B, G) float64 arrays
                keyed by ``scalingrl.des.COT_KEYS`` (NaN = not measured).
        Raises ValueError (bad shapes, NaN rewards, other prompts than the screened ones) or IndexError (ids
        outside the pool) before anything changes.
        """
        start = time.perf_counter()
        ids = np.asarray(prompt_ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"prompt_ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        ids = ids.astype(np.int64)
        observed = self._with_screening(ids, rewards, correct, cot_stats)
        self.store.update(step, ids, *observed)  # validates everything first
        self._after_update(step, ids, np.asarray(rewards, dtype=np.float64), np.asarray(correct, dtype=bool))
        self.pending = self.pending_explore = None
        self.screened = None
        self.last_update_ms = (time.perf_counter() - start) * 1e3

    def loss_groups(self, rewards: np.ndarray) -> np.ndarray:
        """Batch hook: which of this step's groups enter the policy loss.

        Args:
            rewards: (B, G) float64 rewards of the step's groups, rows in selection order.
        Returns:
            (B,) bool, True for groups the loss keeps. Default: every group. A dropped group's rollouts
            still reach ``update`` (the selector's statistics see every rollout).
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.ndim != 2:
            raise ValueError(f"rewards must be (B, G), got shape {rewards.shape}")
        return np.ones(rewards.shape[0], dtype=bool)

    def screening_plan(self, batch_size: int) -> ScreeningPlan | None:
        """Batch hook: a screening round for this step, or None (the default: no screening).

        With a plan the trainer selects ``plan.candidates`` prompts, rolls out ``plan.rollouts`` samples of
        each, calls :meth:`screen` with their rewards, and rolls out full groups for the prompts it returns.
        """
        return None

    def screen(self, selection: Selection, rewards: np.ndarray, batch_size: int, correct: np.ndarray) -> np.ndarray:
        """Batch hook: which screened candidates get a full group (only called after a screening plan).

        Args:
            selection: the candidates, as :meth:`select` returned them.
            rewards: (C, n) float64 screening rewards, rows in candidate order.
            batch_size: B, how many to return.
            correct: (C, n) bool, which screening samples were correct (the store's pass rates count these).
        Returns:
            (B,) int64 distinct positions into ``selection``. The selectors here fold every screening sample
            into the per-prompt store (``_after_screen``): a candidate that trains gets its screening and
            its group as one visit at ``update``, one that does not gets its screening as a visit now.
        """
        raise NotImplementedError(f"{self.name} has no screening_plan, so the trainer never calls screen")

    def metrics(self) -> dict[str, float]:
        return {
            "unique_prompts_used": float(self.used_count),
            "pool_size": float(self._in_play()),
            "selection_ms": self.last_select_ms,
            "update_ms": self.last_update_ms,
        }

    def unique_prompts_used(self) -> int:
        return self.used_count

    def used_prompt_ids(self) -> np.ndarray:
        return np.flatnonzero(self.used).astype(np.int64)

    def prompt_stats(self) -> dict[str, np.ndarray]:
        """Per-prompt columns of every prompt trained on (O(pool): for the end-of-run export). A screened
        candidate that never trained is not exported, though its screening visit is in the store; ``visits``
        of a trained prompt count its screening-only visits too."""
        ids = self.used_prompt_ids()
        columns = {name: values[ids] for name, values in self.store.columns().items()}
        return {"prompt_id": ids, **columns}

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "method": self.name,
            "pool_size": self.pool.size,
            "store": self.store.state_dict(),
            "rng": _rng_state(self.rng),
            "used": self.used_prompt_ids(),
            "method_state": self._method_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"selection state version {state.get('version') if isinstance(state, dict) else None!r}"
                f" is not {STATE_VERSION}: the checkpoint comes from another scalingrl"
            )
        if state.get("method") != self.name:
            raise ValueError(f"selection state is for method {state.get('method')!r}, this run uses {self.name!r}")
        if state.get("pool_size") != self.pool.size:
            raise ValueError(
                f"selection state is for a pool of {state.get('pool_size')} prompts, this pool has "
                f"{self.pool.size}: the data set changed"
            )
        backup = self.state_dict()
        try:
            self._apply_state(state)
        except Exception:
            self._apply_state(backup)  # a half-applied state never survives an error
            raise
        self._forget_screening()  # a screening round before the restored state is not the restored run's

    def _apply_state(self, state: dict[str, Any]) -> None:
        self.store.load_state_dict(state["store"])
        self.rng.bit_generator.state = state["rng"]
        self.used[:] = False
        self.used[np.asarray(state["used"], dtype=np.int64)] = True
        self.used_count = int(self.used.sum())
        self._load_method_state(state["method_state"])

    # -- for subclasses ------------------------------------------------------------------------
    def _choose(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _scores(self, ids: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        nan = np.full(len(ids), np.nan)
        return nan, {name: nan.copy() for name in FACTORS}

    def _after_update(self, step: int, ids: np.ndarray, rewards: np.ndarray, correct: np.ndarray) -> None:
        pass

    def _in_play(self) -> int:
        return self.pool.size

    def _method_state(self) -> dict[str, Any]:
        return {}

    def _load_method_state(self, state: dict[str, Any]) -> None:
        pass


def _drop_zero_variance(rewards: np.ndarray) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be (B, G), got shape {rewards.shape}")
    return rewards.max(axis=1) > rewards.min(axis=1)


@register_method("uniform")
class UniformSelector(_BaseSelector):
    def _choose(self, step, batch_size):
        if batch_size > self.pool.size:
            raise ValueError(f"batch_size={batch_size} exceeds the pool of {self.pool.size} prompts")
        ids = self.rng.choice(self.pool.size, size=batch_size, replace=False)
        return ids, ~self.used[ids]


@register_method("dapo")
class DAPOSelector(UniformSelector):
    """Uniform prompts; zero-variance groups leave the loss (DAPO's dynamic-sampling filter)."""

    def loss_groups(self, rewards):
        return _drop_zero_variance(rewards)


@register_method("random_subset")
class RandomSubsetSelector(_BaseSelector):
    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        size = min(config.random_subset_size, pool.size)
        self.subset = np.sort(self.rng.choice(pool.size, size=size, replace=False)).astype(np.int64)

    def _choose(self, step, batch_size):
        if batch_size > len(self.subset):
            raise ValueError(
                f"batch_size={batch_size} exceeds random_subset_size={len(self.subset)}: raise "
                "selection.random_subset_size or lower batch_size"
            )
        ids = self.subset[self.rng.choice(len(self.subset), size=batch_size, replace=False)]
        return ids, ~self.used[ids]

    def _in_play(self):
        return len(self.subset)

    def _method_state(self):
        return {"subset": self.subset}

    def _load_method_state(self, state):
        self.subset = np.asarray(state["subset"], dtype=np.int64)


@register_method("adarft")
class AdaRFTSelector(_BaseSelector):
    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        prior = pool.prior_difficulty if pool.prior_difficulty is not None else np.full(pool.size, np.nan)
        # Estimated difficulty: the label until a prompt is seen, then 1 - its observed pass rate.
        self.difficulty = np.where(np.isfinite(prior), prior, 0.5)
        self.jitter = self.rng.random(pool.size) * 1e-6  # fixed tie-breaking among equal difficulties
        self.target = config.adarft.initial_target

    def _choose(self, step, batch_size):
        if batch_size > self.pool.size:
            raise ValueError(f"batch_size={batch_size} exceeds the pool of {self.pool.size} prompts")
        order = np.argsort(np.abs(self.difficulty - self.target) + self.jitter, kind="stable")
        ids = order[:batch_size]
        return ids, ~self.used[ids]

    def _after_update(self, step, ids, rewards, correct):
        c = self.config.adarft
        self.difficulty[ids] = 1.0 - correct.mean(axis=1)
        self.target = float(
            np.clip(self.target + c.step_size * np.tanh(c.sensitivity * (rewards.mean() - c.target_reward)), 0.0, 1.0)
        )

    def metrics(self):
        return {**super().metrics(), "target_difficulty": self.target}

    def _method_state(self):
        return {"difficulty": self.difficulty.copy(), "target": self.target, "jitter": self.jitter.copy()}

    def _load_method_state(self, state):
        self.difficulty = np.asarray(state["difficulty"], dtype=np.float64).copy()
        self.jitter = np.asarray(state["jitter"], dtype=np.float64).copy()
        self.target = float(state["target"])


@register_method("des")
class DESSelector(_BaseSelector):
    """DES ranking + adaptive curriculum.

    Two exact samplers over the pool: ``in_play`` holds DES-derived weights of prompts in play
    (0 elsewhere), ``unseen`` holds prior-DES weights of prompts never selected. Each step draws the
    explore part from ``unseen`` and the exploit part from ``in_play``; feedback re-scores only the
    touched prompts, retires mastered ones, parks hopeless ones, and brings both back for a re-test
    after ``curriculum.retest_interval`` steps. With ``curriculum.max_visits`` > 0 a prompt trained that
    many times leaves play for good (status ``CAPPED``; no re-test).

    With ``des.stratify_labels`` both samplers are ``StratifiedSampler``s over the difficulty labels, and
    each draw is apportioned over labels by ``label_shares()`` before DES ranks within a label.

    With ``des.screen`` each step's candidates go through SPEED's screen (``screening_plan``, ``screen``;
    docs/des.md, "Screening DES's candidates").
    """

    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        c = config.curriculum
        self.status = np.zeros(pool.size, dtype=np.int8)
        self.streak = np.zeros(pool.size, dtype=np.int16)  # +k mastered / -k hopeless visits in a row
        self.visits = np.zeros(pool.size, dtype=np.int32)  # trained visits (full groups), screening rounds not counted
        everything = np.arange(pool.size, dtype=np.int64)
        prior_des, prior_factors = self.store.score(everything)  # O(pool) once, at construction
        d = config.des
        labelled = d.calibrate_labels or d.stratify_labels
        self.calibration = LabelCalibration(pool, d, prior_factors) if labelled else None
        seeds = (int(self.rng.integers(2**63)), int(self.rng.integers(2**63)))
        if d.stratify_labels:
            self.in_play = StratifiedSampler(self.calibration.group_of, seed=seeds[0])
            self.unseen = StratifiedSampler(self.calibration.group_of, seed=seeds[1])
        else:
            self.in_play = WeightedSampler(pool.size, seed=seeds[0])
            self.unseen = WeightedSampler(pool.size, seed=seeds[1])
        self.unseen.update(everything, d.sampler_weight(prior_des))
        self.in_play_count = 0
        self.capped_count = 0
        self.retests: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        limit = pool.size if c.max_pool == 0 else min(c.max_pool, pool.size)
        self.schedule = ScheduleState(pool_target=float(min(c.initial_pool, limit)), explore_share=c.initial_explore)
        self.probe_left = c.warm_start_probe
        self.candidate_count = CandidateCount(config.speed) if d.screen else None  # with des.screen: the round's size
        self.screen_signal: StepSignal | None = None  # this step's screening signal, for the schedule

    def screening_plan(self, batch_size):
        """None unless ``des.screen``; then SPEED's candidate count over the prompts DES can draw now."""
        if self.candidate_count is None:
            return None
        # Re-tests due at this step are back already (``_after_update`` brings them back a step early).
        selectable = self.unseen.positive_count + self.in_play.positive_count
        if batch_size > selectable:
            raise ValueError(
                f"des.screen: batch_size={batch_size} exceeds the {selectable} prompts that can be selected "
                "(the rest are parked or retired until their re-test): lower batch_size or "
                "curriculum.retest_interval, or set selection.des.screen=false"
                f"{capped_hint(self.capped_count, self.config.curriculum)}"
            )
        return ScreeningPlan(self.candidate_count.candidates(batch_size, selectable), self.config.speed.screen_rollouts)

    def screen(self, selection, rewards, batch_size, correct):
        """With ``des.screen``: the first B of DES's candidates, in a random order, whose screening rewards
        vary (SPEED's rule on a shuffled list, so the explore share of the batch is that of the qualified
        candidates). What happens to the others: ``_release``. The schedule's next signal is the round's."""
        if self.candidate_count is None:
            return super().screen(selection, rewards, batch_size, correct)
        # Checked before the generator moves.
        rewards, correct = self._screening_outcomes(selection, rewards, batch_size, correct)
        order = self.rng.permutation(len(rewards))
        chosen, varies_in_order = speed_screen(rewards[order], batch_size)
        positions = np.sort(order[chosen])
        varies = np.empty_like(varies_in_order)
        varies[order] = varies_in_order
        self.screen_signal = step_signal(rewards, selection.is_explore)
        dropped = self._after_screen(selection.step, positions, rewards, correct)
        self._release(selection.step, selection.prompt_ids[dropped], selection.is_explore[dropped], varies[dropped])
        self.candidate_count.observe(varies, batch_size)
        return positions

    def _release(self, step: int, ids: np.ndarray, is_explore: np.ndarray, varied: np.ndarray) -> None:
        """Screened candidates that get no full group (their screening round is already in the store). New
        ones whose rewards varied were only surplus: back among the unseen prompts at the DES weight their
        screening gave them; replayed ones stay in play, re-weighted by their DES with the screening counted.
        Those whose rewards did not vary (mastered or out of reach now) leave play like a parked prompt until
        their re-test after ``retest_interval`` (a never-trained one then returns to the unseen prompts,
        ranked by what its screening measured)."""
        self._return_unseen(ids[is_explore & varied])
        replayed = ids[~is_explore & varied]
        self.in_play.update(replayed, self.config.des.sampler_weight(self.store.score(replayed)[0]))
        out = ids[~varied]
        if len(out):
            self.in_play.update(out, np.zeros(len(out)))
            self.status[out] = PARKED
            self.in_play_count -= len(out)
            self.retests.append((step + self.config.curriculum.retest_interval, out))

    def _choose(self, step, batch_size):
        c = self.config.curriculum
        self._bring_back_retests(step)
        if self.probe_left > 0:
            # Warm start: a uniform random probe of unseen prompts (an O(pool) scan, only while probing).
            unseen_ids = np.flatnonzero(self.status == UNSEEN)
            take = min(batch_size, self.probe_left, len(unseen_ids))
            probe = self.rng.choice(unseen_ids, size=take, replace=False).astype(np.int64)
            self.probe_left -= take
            self.unseen.update(probe, np.zeros(take))
            exploit = min(batch_size - take, self.in_play.positive_count)
            explore_ids = np.concatenate([probe, self._draw(self.unseen, batch_size - take - exploit)])
        else:
            n_explore, exploit = split_batch(
                batch_size,
                self.schedule.explore_share,
                self.in_play_count,
                self.schedule.pool_target,
                self.unseen.positive_count,
                self.in_play.positive_count,
                c,
                capped=self.capped_count,
            )
            explore_ids = self._draw(self.unseen, n_explore)
        exploit_ids = self._draw(self.in_play, exploit)
        # New prompts leave the unseen sampler and join the pool in play (weight set at their update).
        self.unseen.update(explore_ids, np.zeros(len(explore_ids)))
        self.status[explore_ids] = IN_PLAY
        self.in_play_count += len(explore_ids)
        ids = np.concatenate([explore_ids, exploit_ids]).astype(np.int64)
        explore = np.arange(len(ids)) < len(explore_ids)
        if self.config.des.stratify_labels:
            # The draws come grouped by label and the trainer cuts minibatches and rank shards by row
            # order, so the rows are shuffled (only here: the plain path keeps its order and draws).
            order = self.rng.permutation(len(ids))
            ids, explore = ids[order], explore[order]
        return ids, explore

    def _draw(self, sampler: WeightedSampler | StratifiedSampler, k: int) -> np.ndarray:
        """k distinct ids from ``sampler``; with label strata, apportioned over labels by ``label_shares``."""
        if isinstance(sampler, WeightedSampler):
            return sampler.sample(k)
        counts = apportion(k, self.label_shares(), sampler.positive_counts, self.rng)
        return sampler.sample(counts)

    def label_shares(self) -> np.ndarray:
        """(groups,) float64 batch share per label group (labels, then the unlabelled prompts if any):
        ``scalingrl.des.label_shares`` of the measured pass rates. RuntimeError without label strata."""
        if self.calibration is None or not self.config.des.stratify_labels:
            raise RuntimeError("label_shares needs selection.des.stratify_labels=true")
        d = self.config.des
        return label_shares(
            self.calibration.group_sizes, self.calibration.group_pass_rates(), d.coverage, d.target_pass
        )

    def _scores(self, ids):
        return self.store.score(ids)

    def _bring_back_retests(self, step):
        """Retired and parked prompts due by ``step`` come back into play. Those never trained (screened
        out as new prompts, with ``des.screen``) go back among the unseen prompts, at the DES weight of
        their record (prior plus screening samples)."""
        while self.retests and self.retests[0][0] <= step:
            _, ids = self.retests.popleft()
            ids = ids[(self.status[ids] == RETIRED) | (self.status[ids] == PARKED)]
            never = ~self.used[ids]
            self._return_unseen(ids[never])
            back = ids[~never]
            self.status[back] = IN_PLAY
            self.streak[back] = 0
            self.in_play_count += len(back)
            des, _ = self.store.score(back)
            self.in_play.update(back, self.config.des.sampler_weight(des))

    def _return_unseen(self, ids: np.ndarray) -> None:
        """Never-trained prompts back among the unseen, at the DES weight of their record (O(len(ids))): the
        prior, updated by any screening samples they had."""
        self.in_play_count -= int(np.count_nonzero(self.status[ids] == IN_PLAY))
        self.status[ids] = UNSEEN
        self.in_play.update(ids, np.zeros(len(ids)))
        des, _ = self.store.score(ids)
        self.unseen.update(ids, self.config.des.sampler_weight(des))

    def _after_update(self, step, ids, rewards, correct):
        c = self.config.curriculum
        self.visits[ids] += 1
        in_play = self.status[ids] == IN_PLAY
        self.streak[ids], retire, park, capped = leave_play(
            in_play, self.streak[ids], correct.mean(axis=1), self.visits[ids], c
        )
        self.status[ids[retire]] = RETIRED
        self.status[ids[park]] = PARKED
        self.status[ids[capped]] = CAPPED
        self.capped_count += int(capped.sum())
        self.in_play_count -= int((retire | park | capped).sum())
        des, _ = self.store.score(ids)
        weights = np.where(self.status[ids] == IN_PLAY, self.config.des.sampler_weight(des), 0.0)
        self.in_play.update(ids, weights)
        if (retire | park).any():
            self.retests.append((step + c.retest_interval, ids[retire | park]))
        signal = self.screen_signal if self.screen_signal is not None else step_signal(rewards, self._explore_mask(ids))
        self.screen_signal = None
        self.schedule = next_schedule(self.schedule, signal, c, self.pool.size)
        if self.candidate_count is not None:
            self._bring_back_retests(step + 1)  # so that the next screening_plan counts them (no draws)
        if self.calibration is not None:
            self.calibration.observe(ids, correct)
            if self.config.des.calibrate_labels and (step + 1) % self.config.des.calibrate_every == 0:
                unseen = np.flatnonzero(self.status == UNSEEN)  # O(pool), every calibrate_every steps
                ids_w, weights = self.calibration.unseen_weights(unseen)
                self.unseen.update(ids_w, weights)

    def _explore_mask(self, ids):
        """(B,) bool: which of ``ids`` the last selection drew as new prompts (none if not selected here)."""
        if self.pending is None:
            return np.zeros(len(ids), dtype=bool)
        if len(ids) == len(self.pending) and np.array_equal(ids, self.pending):
            return self.pending_explore
        return np.isin(ids, self.pending[self.pending_explore])

    def _in_play(self):
        return self.in_play_count

    def metrics(self):
        return {
            **super().metrics(),
            "active_pool_size": float(self.in_play_count),
            "pool_target": self.schedule.pool_target,
            "explore_share": self.schedule.explore_share,
            "retired": float(self._count(RETIRED)),
            "parked": float(self._count(PARKED)),
            "capped": float(self.capped_count),
            "explore_signal": self.schedule.explore_signal,
            "exploit_signal": self.schedule.exploit_signal,
            **({} if self.candidate_count is None else self.candidate_count.metrics()),
        }

    def _count(self, status):
        # Retired and parked prompts all wait in the re-test queue: count there, not over the pool.
        return sum(int((self.status[ids] == status).sum()) for _, ids in self.retests)

    def _method_state(self):
        return {
            "status": self.status.copy(),
            "streak": self.streak.copy(),
            "visits": self.visits.copy(),
            "max_visits": self.config.curriculum.max_visits,
            "in_play": self.in_play.state_dict(),
            "unseen": self.unseen.state_dict(),
            "in_play_count": self.in_play_count,
            "retest_steps": np.array([s for s, _ in self.retests], dtype=np.int64),
            "retest_ids": [ids.copy() for _, ids in self.retests],
            "schedule": dataclasses.asdict(self.schedule),
            "probe_left": self.probe_left,
            "calibration": None if self.calibration is None else self.calibration.state_dict(),
            "screening": None if self.candidate_count is None else self.candidate_count.state_dict(),
        }

    def _load_method_state(self, state):
        stratified = state["in_play"].get("format") == STRATIFIED_FORMAT
        if stratified != self.config.des.stratify_labels:
            raise ValueError(
                f"selection state was saved with des.stratify_labels={str(stratified).lower()}, this run has "
                f"{str(self.config.des.stratify_labels).lower()}: resume with the same setting"
            )
        self.in_play.load_state_dict(state["in_play"])
        self.unseen.load_state_dict(state["unseen"])
        self.status = np.asarray(state["status"], dtype=np.int8).copy()
        self.streak = np.asarray(state["streak"], dtype=np.int16).copy()
        cap = self.config.curriculum.max_visits
        if "visits" not in state and cap > 0:
            raise ValueError(
                "selection state has no per-prompt visit counts (saved before curriculum.max_visits existed): "
                "resume it with curriculum.max_visits=0"
            )
        if state.get("max_visits", 0) != cap:  # a changed cap would strand or revive capped prompts
            raise ValueError(
                f"selection state was saved with curriculum.max_visits={state.get('max_visits', 0)}, this run has "
                f"{cap}: resume with the same setting"
            )
        self.visits = np.asarray(state.get("visits", np.zeros(self.pool.size)), dtype=np.int32).copy()
        self.capped_count = int(np.count_nonzero(self.status == CAPPED))
        self.in_play_count = int(state["in_play_count"])
        self.retests = collections.deque(
            (int(s), np.asarray(ids, dtype=np.int64)) for s, ids in zip(state["retest_steps"], state["retest_ids"])
        )
        self.schedule = ScheduleState(**state["schedule"])
        self.probe_left = int(state["probe_left"])
        if (self.calibration is None) != (state.get("calibration") is None):
            raise ValueError("selection state and config disagree on des.calibrate_labels")
        if self.calibration is not None:
            self.calibration.load_state_dict(state["calibration"])
        screens = self.candidate_count is not None
        if screens == (state.get("screening") is None):
            raise ValueError(f"selection state and config disagree on des.screen (this run: {str(screens).lower()})")
        if self.candidate_count is not None:
            self.candidate_count.load_state_dict(state["screening"])


@register_method("mopps")
class MoPPSSelector(_BaseSelector):
    """MoPPS: one Thompson sample per prompt from its Beta posterior; the B nearest the target train.

    O(pool) per step (a Beta draw for every prompt and a partial sort), like the paper's selection over
    the whole data set. ``scalingrl.online_selection`` holds the rules and docs/selection.md the reading.
    """

    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        c = config.mopps
        self.alpha0, self.beta0 = mopps_prior(pool.prior_difficulty, pool.size, c.prior_strength)
        self.alpha, self.beta = self.alpha0.copy(), self.beta0.copy()
        self.last_sampled = np.full(0, np.nan)

    def _choose(self, step, batch_size):
        sampled = self.rng.beta(self.alpha, self.beta)
        ids = mopps_pick(sampled, self.config.mopps.target_pass, batch_size)
        self.last_sampled = sampled[ids]
        return ids, ~self.used[ids]

    def _after_update(self, step, ids, rewards, correct):
        trials = np.full(len(ids), float(correct.shape[1]))
        self.alpha[ids], self.beta[ids] = mopps_update(
            self.alpha[ids],
            self.beta[ids],
            self.alpha0[ids],
            self.beta0[ids],
            correct.sum(axis=1).astype(np.float64),
            trials,
            self.config.mopps.decay,
        )

    def metrics(self):
        sampled = self.last_sampled
        return {**super().metrics(), "sampled_pass_mean": float(sampled.mean()) if sampled.size else float("nan")}

    def _method_state(self):
        return {"alpha": self.alpha.copy(), "beta": self.beta.copy()}

    def _load_method_state(self, state):
        alpha, beta = (np.asarray(state[k], dtype=np.float64) for k in ("alpha", "beta"))
        if alpha.shape != (self.pool.size,) or beta.shape != (self.pool.size,):
            raise ValueError(f"mopps state has alpha {alpha.shape} and beta {beta.shape}, expected ({self.pool.size},)")
        self.alpha, self.beta = alpha.copy(), beta.copy()


@register_method("greso")
class GRESOSelector(_BaseSelector):
    """GRESO: uniform candidates; a prompt zero-variance on its last k visits is rolled out only with
    probability p ** k (p per kind: easy = all correct, hard = all wrong), p steered per step towards
    target zero-variance shares; zero-variance groups that still occur leave the loss (its base, DAPO)."""

    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        self.zero_streak = np.zeros(pool.size, dtype=np.int32)
        self.last_easy = np.zeros(pool.size, dtype=bool)
        self.p_easy = self.p_hard = config.greso.initial_retry
        self.skipped = 0

    def _choose(self, step, batch_size):
        if batch_size > self.pool.size:
            raise ValueError(f"batch_size={batch_size} exceeds the pool of {self.pool.size} prompts")
        chosen, taken, skipped = [], np.zeros(0, dtype=np.int64), 0
        for _ in range(self.config.greso.max_draw_rounds):
            need = batch_size - sum(len(c) for c in chosen)
            if need == 0:
                break
            candidates = self.rng.choice(self.pool.size, size=min(2 * need, self.pool.size), replace=False)
            candidates = candidates[~np.isin(candidates, taken)]
            keep_p = greso_keep_probability(
                self.zero_streak[candidates], self.last_easy[candidates], self.p_easy, self.p_hard
            )
            accepted = self.rng.random(len(candidates)) < keep_p
            skipped += int(np.count_nonzero(~accepted))
            kept = candidates[accepted][:need]
            chosen.append(kept)
            taken = np.concatenate([taken, candidates])
        ids = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        if len(ids) < batch_size:  # every round filtered too much: fill with the shortest streaks
            rest = np.setdiff1d(np.arange(self.pool.size), ids)
            order = rest[np.argsort(self.zero_streak[rest], kind="stable")]
            ids = np.concatenate([ids, order[: batch_size - len(ids)]])
        self.skipped = skipped
        return ids.astype(np.int64), ~self.used[ids]

    def loss_groups(self, rewards):
        return _drop_zero_variance(rewards)

    def _after_update(self, step, ids, rewards, correct):
        easy, hard = correct.all(axis=1), ~correct.any(axis=1)
        zero = easy | hard
        self.zero_streak[ids] = np.where(zero, self.zero_streak[ids] + 1, 0)
        self.last_easy[ids] = np.where(zero, easy, self.last_easy[ids])
        c = self.config.greso
        self.p_easy = greso_next_explore(self.p_easy, float(easy.mean()), c.target_easy, c)
        self.p_hard = greso_next_explore(self.p_hard, float(hard.mean()), c.target_hard, c)

    def metrics(self):
        return {
            **super().metrics(),
            "retry_easy": self.p_easy,
            "retry_hard": self.p_hard,
            "skipped_candidates": float(self.skipped),
        }

    def _method_state(self):
        return {
            "zero_streak": self.zero_streak.copy(),
            "last_easy": self.last_easy.copy(),
            "p_easy": self.p_easy,
            "p_hard": self.p_hard,
        }

    def _load_method_state(self, state):
        streak, easy = np.asarray(state["zero_streak"], dtype=np.int32), np.asarray(state["last_easy"], dtype=bool)
        if streak.shape != (self.pool.size,) or easy.shape != (self.pool.size,):
            raise ValueError(
                f"greso state arrays have shapes {streak.shape}, {easy.shape}; expected ({self.pool.size},)"
            )
        self.zero_streak, self.last_easy = streak.copy(), easy.copy()
        self.p_easy, self.p_hard = float(state["p_easy"]), float(state["p_hard"])


@register_method("speed")
class SPEEDSelector(UniformSelector):
    """SPEED-style screening (Zhang et al. 2025, arXiv:2506.09016), our reading (docs/selection.md).

    Each step C uniform candidates get ``screen_rollouts`` samples each and the first B whose screening
    rewards are not all equal get a full group (``online_selection.speed_screen``). C is
    ``ceil(candidates_factor * B)`` at the first step, then ``ceil(headroom * B / q)`` with q the running
    qualified share, within [B, max_candidates_factor * B] and the pool; unqualified candidates fill the
    batch only when fewer than B qualify. Only the B trained prompts count as used.
    """

    def __init__(self, pool, config, seed):
        super().__init__(pool, config, seed)
        self.candidate_count = CandidateCount(config.speed)

    def screening_plan(self, batch_size):
        if batch_size > self.pool.size:
            raise ValueError(f"batch_size={batch_size} exceeds the pool of {self.pool.size} prompts")
        return ScreeningPlan(
            self.candidate_count.candidates(batch_size, self.pool.size), self.config.speed.screen_rollouts
        )

    def screen(self, selection, rewards, batch_size, correct):
        rewards, correct = self._screening_outcomes(selection, rewards, batch_size, correct)
        positions, varies = speed_screen(rewards, batch_size)
        self._after_screen(selection.step, positions, rewards, correct)
        self.candidate_count.observe(varies, batch_size)
        return positions

    def metrics(self):
        return {**super().metrics(), **self.candidate_count.metrics()}

    def _method_state(self):
        return self.candidate_count.state_dict()

    def _load_method_state(self, state):
        self.candidate_count.load_state_dict(state)


def make_selector(pool: PoolInfo, config: SelectionConfig, seed: int) -> Selector:
    """The selector of ``config.method`` for ``pool``, seeded."""
    if config.method not in METHODS:
        raise ValueError(f"selection.method={config.method!r} is unknown: use one of {', '.join(METHODS)}")
    return METHODS[config.method](pool, config, seed)
