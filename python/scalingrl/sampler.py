"""Exact dynamic weighted sampling for DES rankings over 220K+ prompts.

``WeightedSampler`` is the Python face of ``scalingrl._native.DynamicSampler``: O(1) updates, O(1)
expected draws independent of n, and draw probabilities that are exactly those of the float64
weights (no floating-point sums are kept, so nothing drifts; docs/sampler.md has the method and the
proof sketch). Bulk calls take and return numpy arrays and release the GIL.

``StratifiedSampler`` keeps one ``WeightedSampler`` per stratum (e.g. per difficulty label) so that a
caller fixes how many ids each stratum gives; ``apportion`` decides those counts from shares.

Left out on purpose: weights that change inside one ``sample`` call (the DES store updates weights
between steps), and more than 2**32 - 1 items.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from scalingrl import _native

STATE_FORMAT = "scalingrl.WeightedSampler"
STATE_VERSION = 1
STRATIFIED_FORMAT = "scalingrl.StratifiedSampler"


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


def apportion(total: int, shares: Any, capacity: Any, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` draws over strata in proportion to ``shares``, at most ``capacity[s]`` to stratum s.

    Unbiased integer rounding by systematic sampling (Madow 1949): stratum s gets
    ``floor(total * p_s)`` plus one more with probability equal to the fractional part, so
    ``E[counts] = total * p`` exactly while no capacity binds, and every count is within 1 of it.
    Draws a capped stratum cannot take are apportioned again among the strata with room, in
    proportion to their shares (or to their room, once only strata with share 0 have room).

    Args:
        total: int, number of draws, 0 <= total <= capacity.sum().
        shares: (S,) float64, finite and >= 0 (need not sum to 1).
        capacity: (S,) int64 >= 0, e.g. the positive weights left in each stratum.
        rng: the generator of the rounding offset (one uniform per round).
    Returns:
        (S,) int64 counts summing to ``total``.
    Raises:
        TypeError: ``total`` is not an integer, or ``capacity`` does not hold integers.
        ValueError: shapes differ, a share is negative or not finite, a capacity is negative, or
            ``total`` is negative or more than the capacities hold.
    """
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)):
        raise TypeError(f"total must be an integer, got {total!r}")
    shares = np.asarray(shares, dtype=np.float64)
    capacity = np.asarray(capacity)
    if shares.ndim != 1 or capacity.shape != shares.shape:
        raise ValueError(f"shares and capacity must be (S,) of one length, got {shares.shape} and {capacity.shape}")
    if capacity.size and capacity.dtype.kind not in "iu":
        raise TypeError(f"capacity must hold integers, got dtype {capacity.dtype}")
    capacity = capacity.astype(np.int64)
    if not np.all(np.isfinite(shares)) or np.any(shares < 0):
        raise ValueError(f"shares must be finite and >= 0, got {shares.tolist()}")
    if np.any(capacity < 0):
        raise ValueError(f"capacity must be >= 0, got {capacity.tolist()}")
    if not 0 <= total <= int(capacity.sum()):
        raise ValueError(f"cannot apportion {total} draws: the strata hold {int(capacity.sum())}")
    counts = np.zeros(len(shares), dtype=np.int64)
    left = int(total)
    while left > 0:
        room = capacity - counts
        weights = np.where(room > 0, shares, 0.0)
        if weights.max(initial=0.0) <= 0:
            weights = room.astype(np.float64)
        weights = weights / weights.max()  # in [0, 1]: the sum cannot overflow
        ideal = left * weights / weights.sum()
        base = np.floor(ideal)
        remainder = left - int(base.sum())  # an integer: the fractional parts sum to it
        extra = np.zeros(len(shares))
        if remainder > 0:
            cumulative = np.cumsum(ideal - base)
            cumulative *= remainder / cumulative[-1]
            offset = 1.0 - rng.random()  # in (0, 1]: the points offset, offset + 1, ..., offset + remainder - 1
            edges = np.floor(np.concatenate([[0.0], cumulative]) - offset)
            extra = np.diff(edges)
        counts += np.minimum(base.astype(np.int64) + extra.astype(np.int64), room)
        left = int(total) - int(counts.sum())
    return counts


class StratifiedSampler:
    """Exact weighted draws with a caller-chosen number of ids per stratum.

    One ``WeightedSampler`` per stratum over that stratum's members (local ids), so updates stay
    O(1) per item and a draw of k ids from a stratum costs what a ``WeightedSampler`` draw costs.

    Args:
        strata: (n,) int64, the stratum of each id, in [0, S); every stratum 0..S-1 has a member.
        seed: seeds the strata's generators (``numpy.random.SeedSequence(seed)``).

    Attributes:
        stratum_of: (n,) int64, the ``strata`` argument.
        members: S arrays, (n_s,) int64 ids of stratum s in increasing order.
    """

    def __init__(self, strata: Any, seed: int = 0) -> None:
        strata = _as_ids(strata, "strata").reshape(-1)
        if len(strata) == 0:
            raise ValueError("strata is empty: a StratifiedSampler needs at least one item")
        if strata.min() < 0:
            raise ValueError(f"strata must be >= 0, got {int(strata.min())}")
        sizes = np.bincount(strata)
        if np.any(sizes == 0):
            raise ValueError(f"stratum {int(np.flatnonzero(sizes == 0)[0])} has no member: number strata 0..S-1")
        self.stratum_of = strata
        order = np.argsort(strata, kind="stable")
        self.members = np.split(order.astype(np.int64), np.cumsum(sizes)[:-1])
        self.local = np.empty(len(strata), dtype=np.int64)
        for members in self.members:
            self.local[members] = np.arange(len(members))
        seeds = np.random.SeedSequence(seed).generate_state(len(sizes), dtype=np.uint64)
        self.samplers = [WeightedSampler(len(m), seed=int(s)) for m, s in zip(self.members, seeds)]

    def __len__(self) -> int:
        return len(self.stratum_of)

    def __repr__(self) -> str:
        return f"StratifiedSampler(n={len(self)}, strata={len(self.samplers)}, positive={self.positive_count})"

    @property
    def positive_counts(self) -> np.ndarray:
        """(S,) int64: ids with weight > 0 per stratum (the most one ``sample`` can take from each)."""
        return np.array([s.positive_count for s in self.samplers], dtype=np.int64)

    @property
    def positive_count(self) -> int:
        """Number of ids with weight > 0 over all strata."""
        return int(self.positive_counts.sum())

    def _checked_ids(self, ids: Any) -> np.ndarray:
        ids = _as_ids(ids).reshape(-1)
        bad = np.flatnonzero((ids < 0) | (ids >= len(self)))
        if len(bad):
            raise IndexError(f"id {int(ids[bad[0]])} is out of range for {len(self)} items")
        return ids

    def update(self, ids: Any, weights: Any) -> None:
        """Set ``weights[i]`` for ``ids[i]``; O(1) per item. A repeated id ends with its last weight.

        Args:
            ids: (m,) int64 ids in [0, n). weights: (m,) float64, finite and >= 0; 0 removes an id from draws.
        Raises:
            IndexError: an id is out of range. ValueError: the lengths differ, or a weight is NaN, inf or
            negative (names the first). On any error no weight changes.
        """
        ids = self._checked_ids(ids)
        weights = np.ascontiguousarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(weights)} weights")
        bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
        if len(bad):
            raise ValueError(f"weight {weights[bad[0]]} for id {int(ids[bad[0]])} must be finite and >= 0")
        strata = self.stratum_of[ids]
        for stratum in np.unique(strata):
            mask = strata == stratum
            self.samplers[stratum].update(self.local[ids[mask]], weights[mask])

    def sample(self, counts: Any) -> np.ndarray:
        """Draw ``counts[s]`` distinct ids from stratum s (successive sampling within each stratum).

        Returns (counts.sum(),) int64 ids, grouped by stratum in stratum order.
        Raises ValueError: ``counts`` is not (S,) or asks a stratum for more ids than it has positive
        weights; nothing is drawn then.
        """
        counts = _as_ids(counts, "counts").reshape(-1)
        if len(counts) != len(self.samplers):
            raise ValueError(f"counts has {len(counts)} entries, this sampler has {len(self.samplers)} strata")
        short = np.flatnonzero((counts < 0) | (counts > self.positive_counts))
        if len(short):
            s = int(short[0])
            raise ValueError(f"cannot draw {int(counts[s])} ids from stratum {s}: it has {self.positive_counts[s]}")
        drawn = [self.members[s][self.samplers[s].sample(int(k))] for s, k in enumerate(counts) if k > 0]
        return np.concatenate(drawn).astype(np.int64) if drawn else np.zeros(0, dtype=np.int64)

    def weights(self, ids: Any = None) -> np.ndarray:
        """All n weights as an (n,) float64 copy, or the (m,) weights of ``ids`` (IndexError if out of range)."""
        everything = np.zeros(len(self))
        for members, sampler in zip(self.members, self.samplers):
            everything[members] = sampler.weights()
        return everything if ids is None else everything[self._checked_ids(ids)]

    def _strata_crc(self) -> int:
        return zlib.crc32(np.ascontiguousarray(self.stratum_of, dtype="<i8").tobytes())

    def state_dict(self) -> dict[str, Any]:
        """The strata (sizes and a CRC-32 of ``stratum_of``) and each stratum's ``WeightedSampler`` state."""
        return {
            "format": STRATIFIED_FORMAT,
            "version": STATE_VERSION,
            "sizes": np.array([len(m) for m in self.members], dtype=np.int64),
            "strata_crc32": self._strata_crc(),
            "strata": [s.state_dict() for s in self.samplers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the sampler then continues with the identical draws.

        Raises:
            ValueError: not a state of this format and version, or saved with other strata (sizes or
                assignment of ids); a stratum's state is corrupt. Nothing changes then.
        """
        if not isinstance(state, dict) or state.get("format") != STRATIFIED_FORMAT:
            raise ValueError("state is not a StratifiedSampler state_dict")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version is {state.get('version')!r}, this scalingrl reads version {STATE_VERSION}")
        missing = [key for key in ("sizes", "strata_crc32", "strata") if key not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        sizes = np.asarray(state["sizes"], dtype=np.int64)
        mine = np.array([len(m) for m in self.members], dtype=np.int64)
        if not np.array_equal(sizes, mine) or len(state["strata"]) != len(self.samplers):
            raise ValueError(f"state has strata of sizes {sizes.tolist()}, this sampler {mine.tolist()}")
        if int(state["strata_crc32"]) != self._strata_crc():
            raise ValueError("state was saved with another assignment of ids to strata (the labels changed)")
        backup = [s.state_dict() for s in self.samplers]
        try:
            for sampler, sub in zip(self.samplers, state["strata"]):
                sampler.load_state_dict(sub)
        except Exception:
            for sampler, sub in zip(self.samplers, backup):
                sampler.load_state_dict(sub)
            raise


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
