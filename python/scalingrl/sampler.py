"""Exact dynamic weighted sampling for DES rankings over 220K+ prompts.

``WeightedSampler`` is the Python face of ``scalingrl._native.DynamicSampler``: O(1) updates, O(1)
expected draws independent of n, and draw probabilities that are exactly those of the float64
weights (no floating-point sums are kept, so nothing drifts; docs/sampler.md has the method and the
proof sketch). Bulk calls take and return numpy arrays and release the GIL.

Left out on purpose: weights that change inside one ``sample`` call (the DES store updates weights
between steps), and more than 2**32 - 1 items.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalingrl import _native

STATE_FORMAT = "scalingrl.WeightedSampler"
STATE_VERSION = 1


def _as_ids(ids: Any, name: str = "ids") -> np.ndarray:
    array = np.asarray(ids)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


class WeightedSampler:
    """n items with non-negative float64 weights (all 0 at first); draws ids in proportion to weight.

    Args:
        n: number of items; ids are 0..n-1.
        seed: seed of the sampler's own generator (xoshiro256**); equal seeds and equal calls give
            equal draws.
    """

    def __init__(self, n: int, seed: int = 0, *, _window: int = 40) -> None:
        # _window (1..63, default 40) is for tests only: it routes more draws through the exact rare path.
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        self._impl = _native.DynamicSampler(int(n), int(seed), int(_window))

    def __len__(self) -> int:
        return len(self._impl)

    def __repr__(self) -> str:
        return f"WeightedSampler(n={len(self)}, positive={self.positive_count})"

    @property
    def positive_count(self) -> int:
        """Number of items with weight > 0 (the most distinct ids one call can draw)."""
        return self._impl.positive_count

    def update(self, ids: Any, weights: Any) -> None:
        """Set ``weights[i]`` for ``ids[i]``; O(1) per item. A repeated id ends with its last weight.

        Args:
            ids: (m,) int64 ids in [0, n).
            weights: (m,) float64, finite and >= 0; 0 removes an item from draws.

        Raises:
            IndexError: an id is out of range (names the first one).
            ValueError: a weight is NaN, inf or negative (names the first one), or the lengths differ.
            On any error no weight changes.
        """
        id_array = _as_ids(ids)
        weight_array = np.ascontiguousarray(weights, dtype=np.float64)
        if weight_array.ndim == 0:
            weight_array = weight_array.reshape(1)
        self._impl.update(id_array.reshape(-1) if id_array.ndim == 0 else id_array, weight_array)

    def sample(self, k: int, replace: bool = False) -> np.ndarray:
        """Draw k ids as an (k,) int64 array.

        ``replace=False`` is successive sampling: each next id is drawn with probability proportional
        to its weight among the ids not yet drawn in this call. ``replace=True`` draws k independent ids.

        Raises:
            ValueError: k < 0, k > 0 with every weight 0, or (without replacement) k larger than the
                number of positive weights.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an integer, got {k!r}")
        return self._impl.sample(int(k), bool(replace))

    def weights(self, ids: Any = None) -> np.ndarray:
        """Current weights: all n as a float64 copy, or those of ``ids``."""
        if ids is None:
            return self._impl.weights(None)
        return self._impl.weights(_as_ids(ids).reshape(-1))

    def total_weight(self) -> float:
        """Sum of all weights: exact per-exponent integer sums, rounded once more by a long-double total."""
        return self._impl.total_weight()

    def state_dict(self) -> dict[str, Any]:
        """Weights, generator state and internal slot order, as plain numpy arrays (versioned)."""
        state = self._impl.state()
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "n": len(self), **state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the sampler then continues with the identical draws.

        Raises:
            ValueError: the state is not a WeightedSampler state of this version and size, or is
                corrupt. The sampler is left unchanged.
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict from WeightedSampler.state_dict(), got {type(state).__name__}")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"state format is {state.get('format')!r}, expected {STATE_FORMAT!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version is {state.get('version')!r}, this scalingrl reads version {STATE_VERSION}")
        missing = [key for key in ("n", "weights", "rng", "member_order", "level_order") if key not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        if state["n"] != len(self):
            raise ValueError(f"state is for n={state['n']} items but this sampler has n={len(self)}")
        self._impl.restore(
            np.asarray(state["weights"]),
            np.asarray(state["rng"]),
            np.asarray(state["member_order"]),
            np.asarray(state["level_order"]),
        )


class FenwickSampler:
    """Baseline: a float64 Fenwick-tree sampler (O(log n), inexact under drift); for benchmarks."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self._impl = _native.FenwickSampler(int(n), int(seed))

    def __len__(self) -> int:
        return len(self._impl)

    def update(self, ids: Any, weights: Any) -> None:
        self._impl.update(_as_ids(ids), np.ascontiguousarray(weights, dtype=np.float64))

    def sample(self, k: int, replace: bool = False) -> np.ndarray:
        return self._impl.sample(int(k), bool(replace))

    def total_weight(self) -> float:
        return self._impl.total_weight()
