"""The selectors' bookkeeping around a screening round (``screening_plan``/``screen``, docs/selection.md).

``ScreeningBookkeeping`` is a mixin of ``scalingrl.selection._BaseSelector``: it checks ``screen``'s input,
folds the round's samples into the per-prompt store, and narrows the pending selection to the candidates
that train. It reads and writes the base class's ``pending``, ``pending_explore``, ``pending_fresh``,
``used``, ``used_count``, ``store``, ``screened`` and ``screen_signal`` (DES's schedule signal).

Every screening sample reaches the store (docs/des.md, "Screening DES's candidates"): a candidate that gets
no full group has its n samples as a visit of its own at the screen; a candidate that trains has its n
screening samples and its G group samples as one visit at ``update`` (n + G trials), since two visits in
one step would count the noise between two samples of one policy as learning progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scalingrl.selection_protocol import Selection

__all__ = ["ScreeningBookkeeping"]


class ScreeningBookkeeping:
    """Screening-round bookkeeping for ``_BaseSelector`` (see the module docstring)."""

    def _forget_screening(self) -> None:
        """Drop a screening round's stash and schedule signal: at a new selection, or after a restore (a
        step abandoned after its screen must not reach the next step's store or schedule)."""
        self.screened = None
        self.screen_signal = None

    def _screening_outcomes(
        self, selection: Selection, rewards: np.ndarray, batch_size: int, correct: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``screen``'s input, checked: the selection ``select`` just returned (ids in that order), (C, n >= 2)
        finite rewards, bool correct flags of the same shape, B in [1, C]. Returns (float64 rewards, bool
        correct); raises ValueError naming what is wrong, before anything changes."""
        if self.pending is None or not np.array_equal(self.pending, selection.prompt_ids):
            raise ValueError(
                f"{self.name}.screen needs the candidates that select() has just returned, in their order "
                "(the screening plan's selection, screened once)"
            )
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape[:1] != (len(selection.prompt_ids),):
            raise ValueError(f"screening rewards must have {len(selection.prompt_ids)} rows, got {rewards.shape}")
        if rewards.ndim != 2 or rewards.shape[1] < 2:
            raise ValueError(f"screening rewards must be (C, n >= 2), got shape {rewards.shape}")
        if not 1 <= batch_size <= rewards.shape[0]:
            raise ValueError(f"batch_size={batch_size} must be in [1, {rewards.shape[0]}] (the candidates screened)")
        if not np.isfinite(rewards).all():
            b, k = np.argwhere(~np.isfinite(rewards))[0]
            raise ValueError(f"screening rewards[{b}, {k}] = {rewards[b, k]} is not finite")
        correct = np.asarray(correct)
        if correct.shape != rewards.shape or correct.dtype != bool:
            raise ValueError(
                f"screening correct must be bool of the rewards' shape {rewards.shape}, got {correct.dtype} "
                f"of shape {correct.shape}"
            )
        return rewards, correct

    def _after_screen(self, step: int, positions: np.ndarray, rewards: np.ndarray, correct: np.ndarray) -> np.ndarray:
        """After ``screen`` chose ``positions`` (B,) of the pending candidates, with the round's checked (C, n)
        ``rewards`` and ``correct``:

        - the others get their samples as a store visit now (a prompt screened out at 0 of n is ranked by
          that when it comes back), leave the used set (``used_prompts/`` lists the prompts trained on);
        - the chosen ones keep theirs in ``screened`` for ``update`` (merged with their group);
        - ``pending`` narrows to the chosen ones.

        Returns the dropped positions, (C - B,) int64 ascending.
        """
        dropped = np.setdiff1d(np.arange(len(self.pending)), positions).astype(np.int64)
        if len(dropped):
            self.store.update(step, self.pending[dropped], rewards[dropped], correct[dropped])
        self.screened = (self.pending[positions].copy(), rewards[positions], correct[positions])
        unmark = self.pending[dropped[self.pending_fresh[dropped]]]
        self.used[unmark] = False
        self.used_count -= len(unmark)
        self.pending, self.pending_explore, self.pending_fresh = (
            self.pending[positions],
            self.pending_explore[positions],
            self.pending_fresh[positions],
        )
        return dropped

    def _with_screening(
        self,
        ids: np.ndarray,
        rewards: np.ndarray,
        correct: np.ndarray,
        cot_stats: dict[str, np.ndarray | None] | None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray | None] | None]:
        """The store's input for ``update`` of (B,) ``ids`` with (B, G) ``rewards`` and ``correct`` and optional
        (B, G) ``cot_stats``: unchanged without a screening round; after one, the trained candidates' (B, n)
        screening samples first, then the group's, as (B, n + G) arrays (CoT statistics NaN for the
        screening samples: the screen returns none). Raises ValueError when ``ids`` are not the candidates
        ``screen`` chose, in its order, or a shape is wrong."""
        if self.screened is None:
            return rewards, correct, cot_stats
        screened_ids, screened_rewards, screened_correct = self.screened
        if not np.array_equal(screened_ids, ids):
            raise ValueError(
                f"{self.name}.update after a screening round needs the candidates screen() chose, in its "
                f"order: got {len(ids)} prompt ids that differ from the {len(screened_ids)} screened ones"
            )
        rewards, correct = np.asarray(rewards, dtype=np.float64), np.asarray(correct)
        if rewards.ndim != 2 or rewards.shape[0] != len(ids) or correct.shape != rewards.shape:
            raise ValueError(
                f"rewards and correct must be (B={len(ids)}, G) of one shape, got {rewards.shape} and {correct.shape}"
            )
        if cot_stats is not None:
            padded = {}
            for key, value in cot_stats.items():
                if value is not None:
                    value = np.asarray(value, dtype=np.float64)
                    if value.shape != rewards.shape:
                        raise ValueError(f"cot_stats[{key!r}] has shape {value.shape}, expected {rewards.shape}")
                    value = np.concatenate([np.full(screened_rewards.shape, np.nan), value], axis=1)
                padded[key] = value
            cot_stats = padded
        return (
            np.concatenate([screened_rewards, rewards], axis=1),
            np.concatenate([screened_correct, correct.astype(bool)], axis=1),
            cot_stats,
        )
