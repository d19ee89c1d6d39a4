"""What a selector returns and what it implements: ``Selection``, the ``Selector`` protocol, and the
screening hook's protocol (``ScreeningPlan``, ``screened_batch``) that ``train.grpo_step`` and the simulator
share. The selectors live in ``scalingrl.selection``, which re-exports these names."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

__all__ = ["Selection", "ScreeningPlan", "Selector", "screened_batch"]


@dataclasses.dataclass
class Selection:
    """One step's prompts. Arrays are (B,): ids int64 (distinct), is_explore bool, des float64."""

    step: int
    prompt_ids: np.ndarray
    is_explore: np.ndarray
    des: np.ndarray
    factors: dict[str, np.ndarray]

    def take(self, positions: np.ndarray) -> Selection:
        """The selection restricted to ``positions`` ((K,) int, indices into this selection, in that order).

        Raises ValueError for positions that are not a 1-D integer array, out of range, or repeated.
        """
        positions = np.asarray(positions)
        if positions.size == 0 and positions.ndim == 1:
            positions = positions.astype(np.int64)
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            raise ValueError(f"positions must be a 1-D integer array, got {positions.dtype} of shape {positions.shape}")
        if positions.size and (positions.min() < 0 or positions.max() >= len(self.prompt_ids)):
            raise ValueError(
                f"positions must lie in [0, {len(self.prompt_ids)}), got {positions.min()}..{positions.max()}"
            )
        if len(np.unique(positions)) != len(positions):
            raise ValueError("positions must be distinct (a prompt appears once per step)")
        return Selection(
            step=self.step,
            prompt_ids=self.prompt_ids[positions],
            is_explore=self.is_explore[positions],
            des=self.des[positions],
            factors={name: values[positions] for name, values in self.factors.items()},
        )


@dataclasses.dataclass(frozen=True)
class ScreeningPlan:
    """A screening round before the step's full groups (the ``screening_plan`` hook).

    candidates: prompts to select and screen (>= the batch size); rollouts: samples per candidate.
    """

    candidates: int
    rollouts: int

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.rollouts < 2:
            raise ValueError(f"ScreeningPlan needs candidates >= 1 and rollouts >= 2, got {self}")


def screened_batch(selector: Selector, step: int, batch_size: int, sample) -> tuple[Selection, int]:
    """One step's selection through the screening hook, the protocol ``train.grpo_step`` and the simulator share.

    Without a plan: ``selector.select(step, batch_size)``. With one: select ``plan.candidates``, call
    ``sample(candidates, plan.rollouts) -> ((C, n) rewards, (C, n) bool correct)`` (the caller rolls out
    and scores), and keep the prompts ``screen`` returns; ``batch_size`` is B.
    Returns (the B prompts to train, rollouts spent on screening). Raises ValueError when a selector's
    plan offers fewer than B candidates, ``sample`` does not return a (rewards, correct) pair, or
    ``screen`` does not return B positions.
    """
    plan = selector.screening_plan(batch_size)
    if plan is None:
        return selector.select(step, batch_size), 0
    if plan.candidates < batch_size:
        raise ValueError(f"{selector.name}: screening plan has {plan.candidates} candidates < batch_size={batch_size}")
    candidates = selector.select(step, plan.candidates)
    outcome = sample(candidates, plan.rollouts)
    if not (isinstance(outcome, tuple) and len(outcome) == 2):
        raise ValueError(f"{selector.name}: the screening sampler must return (rewards, correct), got {type(outcome)}")
    rewards, correct = np.asarray(outcome[0], dtype=np.float64), np.asarray(outcome[1])
    positions = np.asarray(selector.screen(candidates, rewards, batch_size, correct))
    if positions.shape != (batch_size,):
        raise ValueError(
            f"{selector.name}.screen returned positions of shape {positions.shape}; the step trains "
            f"batch_size={batch_size} groups"
        )
    return candidates.take(positions), int(rewards.size)


class Selector(Protocol):
    """What the trainer and the simulator call on a selection method (``scalingrl.selection._BaseSelector``
    implements it; docs/selection.md has the contracts). Per step: ``select`` (or, with a
    ``screening_plan``, ``select`` of the candidates and ``screen``), then ``update`` with the trained
    groups' (B, G) rewards and correctness; ``loss_groups`` says which groups enter the loss. ``state_dict``
    and ``load_state_dict`` round-trip everything a resumed run needs."""

    name: str

    def select(self, step: int, batch_size: int) -> Selection: ...
    def update(
        self,
        step: int,
        prompt_ids: np.ndarray,
        rewards: np.ndarray,
        correct: np.ndarray,
        cot_stats: dict[str, np.ndarray] | None = None,
    ) -> None: ...
    def loss_groups(self, rewards: np.ndarray) -> np.ndarray: ...
    def screening_plan(self, batch_size: int) -> ScreeningPlan | None: ...
    def screen(self, selection: Selection, rewards: np.ndarray, batch_size: int, correct: np.ndarray) -> np.ndarray: ...
    def metrics(self) -> dict[str, float]: ...
    def unique_prompts_used(self) -> int: ...
    def used_prompt_ids(self) -> np.ndarray: ...
    def prompt_stats(self) -> dict[str, np.ndarray]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
