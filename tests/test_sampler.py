"""WeightedSampler: exactness (goodness of fit against exact probabilities), dynamics, checkpoints,
and every bad-input path.

Statistical checks run over several seeds and fail only below p = 1e-4 each; the sampler is seeded,
so a run is reproducible, and a biased sampler fails them by orders of magnitude.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from scalingrl.sampler import WeightedSampler

SEEDS = [0, 1, 2]
ALPHA = 1e-4


def assert_fits(counts: np.ndarray, probs: np.ndarray) -> None:
    """Chi-square goodness of fit of observed counts to exact probabilities (cells < 5 pooled)."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = probs / probs.sum() * counts.sum()
    assert counts[expected == 0].sum() == 0, "drew an outcome of probability 0"
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    result = stats.chisquare(obs, exp)
    assert result.pvalue > ALPHA, f"chi-square p={result.pvalue:.2e}: observed {obs[:8]} expected {exp[:8]}"


def filled(weights, seed=0, window=40) -> WeightedSampler:
    sampler = WeightedSampler(len(weights), seed=seed, _window=window)
    sampler.update(np.arange(len(weights)), np.asarray(weights, dtype=np.float64))
    return sampler


# ---------------------------------------------------------------------------------------------
# Exactness with replacement


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("window", [40, 63, 2])
def test_with_replacement_fits_weights(seed, window):
    rng = np.random.default_rng(seed)
    weights = rng.random(40) * 10.0 ** rng.integers(-3, 3, size=40)
    weights[rng.integers(0, 40, size=5)] = 0.0
    sampler = filled(weights, seed=seed, window=window)
    draws = sampler.sample(200_000, replace=True)
    assert_fits(np.bincount(draws, minlength=len(weights)), weights)


@pytest.mark.parametrize(
    "weights",
    [
        [1e-300, 2e-300, 3e-300, 4e-300],
        [1e300, 2e300, 3e300, 4e300],
        [5e-324, 1e-323, 1.5e-323],  # subnormals: 1, 2, 3 times the smallest double
        [1.0, 1.0 + 2.0**-52, 1.0 - 2.0**-53],
        [2.0**-60, 2.0**-60 * 3, 2.0**-61 * 5],  # spread over buckets
    ],
    ids=["tiny", "huge", "subnormal", "ulps", "buckets"],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_extreme_magnitudes(weights, seed):
    sampler = filled(weights, seed=seed)
    draws = sampler.sample(120_000, replace=True)
    probs = np.array(weights) / max(weights)  # ratios are exact enough in float64 at any scale
    assert_fits(np.bincount(draws, minlength=len(weights)), probs)


@pytest.mark.parametrize("seed", SEEDS)
def test_masses_spread_across_the_window_rare_path(seed):
    # With window=1 almost every bucket lies under the window, so draws go through the rare path;
    # the mass is spread over 2^-12 .. 2^12 so that every level matters.
    rng = np.random.default_rng(seed)
    weights = np.concatenate([2.0 ** np.arange(-12, 13), rng.random(20)])
    counts = np.zeros(len(weights))
    for window in (1, 3):
        sampler = filled(weights, seed=seed, window=window)
        counts += np.bincount(sampler.sample(150_000, replace=True), minlength=len(weights))
    assert_fits(counts, weights)


def test_zero_weight_is_never_drawn():
    weights = np.zeros(1000)
    weights[[3, 500, 999]] = [1e-300, 1.0, 1e300]
    sampler = filled(weights)
    assert set(sampler.sample(20_000, replace=True).tolist()) <= {3, 500, 999}
    assert sorted(sampler.sample(3).tolist()) == [3, 500, 999]


# ---------------------------------------------------------------------------------------------
# Exactness without replacement: successive sampling, against enumerated ordered tuples


def successive_probability(weights: np.ndarray, order: tuple[int, ...]) -> float:
    remaining = float(weights.sum())
    p = 1.0
    for i in order:
        p *= weights[i] / remaining
        remaining -= weights[i]
    return p


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3])
def test_without_replacement_fits_successive_sampling(seed, k):
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 1e-3 * 7])
    outcomes = list(itertools.permutations(range(len(weights)), k))
    index = {o: i for i, o in enumerate(outcomes)}
    sampler = filled(weights, seed=seed)
    counts = np.zeros(len(outcomes))
    for _ in range(25_000):
        counts[index[tuple(sampler.sample(k).tolist())]] += 1
    probs = np.array([successive_probability(weights, o) for o in outcomes])
    assert math.isclose(probs.sum(), 1.0)
    assert_fits(counts, probs)


def test_without_replacement_draws_distinct_ids_and_restores_weights():
    rng = np.random.default_rng(5)
    weights = rng.random(3000) ** 4
    sampler = filled(weights)
    for k in (1, 100, 2999, 3000):
        ids = sampler.sample(k)
        assert len(np.unique(ids)) == k
        np.testing.assert_array_equal(sampler.weights(), weights)


def test_whole_pool_first_draw_fits():
    # The first id of a without-replacement batch follows the weights exactly (large batch, many calls).
    weights = np.array([8.0, 4.0, 2.0, 1.0, 1.0])
    sampler = filled(weights, seed=3)
    firsts = np.array([sampler.sample(5)[0] for _ in range(30_000)])
    assert_fits(np.bincount(firsts, minlength=5), weights)


# ---------------------------------------------------------------------------------------------
# Dynamics: interleaved updates and draws, long update streams


@pytest.mark.parametrize("seed", SEEDS)
def test_interleaved_updates_and_draws(seed):
    rng = np.random.default_rng(seed)
    n = 64
    sampler = WeightedSampler(n, seed=seed)
    weights = np.zeros(n)
    for _round in range(30):
        ids = rng.integers(0, n, size=20)
        new = rng.random(20) * 10.0 ** rng.integers(-5, 5, size=20)
        new[rng.random(20) < 0.2] = 0.0
        sampler.update(ids, new)
        for i, w in zip(ids, new):
            weights[i] = w
        sampler.sample(min(5, int((weights > 0).sum())))  # exercises remove/restore between updates
    np.testing.assert_array_equal(sampler.weights(), weights)
    draws = sampler.sample(150_000, replace=True)
    assert_fits(np.bincount(draws, minlength=n), weights)


def test_millions_of_updates_do_not_drift():
    rng = np.random.default_rng(11)
    n = 1000
    sampler = WeightedSampler(n, seed=1)
    ids = rng.integers(0, n, size=2_000_000)
    weights = rng.random(2_000_000) * 10.0 ** rng.integers(-8, 8, size=2_000_000)
    sampler.update(ids, weights)
    final = np.zeros(n)
    final[ids] = weights  # numpy fancy assignment keeps the last write, like the sampler
    np.testing.assert_array_equal(sampler.weights(), final)
    assert sampler.total_weight() == pytest.approx(math.fsum(final), rel=1e-15)
    # Put a known small distribution on 8 ids and zero the rest: any drift would show up here.
    sampler.update(np.arange(n), np.zeros(n))
    sampler.update(np.arange(8), np.arange(1, 9, dtype=np.float64))
    assert sampler.total_weight() == 36.0
    assert_fits(np.bincount(sampler.sample(100_000, replace=True), minlength=8), np.arange(1, 9.0))


# ---------------------------------------------------------------------------------------------
# Property test against a slow pure-Python reference of the bookkeeping

update_ops = st.lists(
    st.tuples(
        st.integers(0, 19),
        st.one_of(st.just(0.0), st.floats(1e-300, 1e300, allow_nan=False, allow_infinity=False)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rounds=st.lists(update_ops, min_size=1, max_size=6), seed=st.integers(0, 2**64 - 1), k=st.integers(0, 25))
def test_matches_reference_bookkeeping(rounds, seed, k):
    sampler = WeightedSampler(20, seed=seed)
    reference = [0.0] * 20
    for ops in rounds:
        sampler.update([i for i, _ in ops], [w for _, w in ops])
        for i, w in ops:
            reference[i] = w
        positive = [i for i, w in enumerate(reference) if w > 0]
        assert sampler.positive_count == len(positive)
        assert sampler.weights().tolist() == reference
        assert sampler.total_weight() == pytest.approx(math.fsum(reference), rel=1e-15)
        if k > len(positive):
            with pytest.raises(ValueError):
                sampler.sample(k)
        else:
            ids = sampler.sample(k).tolist()
            assert len(set(ids)) == k and set(ids) <= set(positive)
        if positive:
            assert set(sampler.sample(k, replace=True).tolist()) <= set(positive)


# ---------------------------------------------------------------------------------------------
# Determinism and checkpoints


def test_same_seed_same_draws_and_different_seed_differs():
    weights = np.random.default_rng(0).random(5000)
    a, b, c = filled(weights, seed=7), filled(weights, seed=7), filled(weights, seed=8)
    for k, replace in [(100, False), (1000, True), (4000, False)]:
        da, db, dc = a.sample(k, replace), b.sample(k, replace), c.sample(k, replace)
        np.testing.assert_array_equal(da, db)
        assert not np.array_equal(da, dc)


def test_state_round_trip_continues_identical_stream():
    rng = np.random.default_rng(2)
    weights = rng.random(2000) * 10.0 ** rng.integers(-20, 20, size=2000)
    original = filled(weights, seed=3)
    original.sample(500)
    original.update(rng.integers(0, 2000, 300), rng.random(300))
    state = original.state_dict()
    restored = WeightedSampler(2000, seed=999)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.weights(), original.weights())
    for k, replace in [(64, False), (1000, True), (1500, False)]:
        np.testing.assert_array_equal(restored.sample(k, replace), original.sample(k, replace))
    assert restored.total_weight() == original.total_weight()


def test_state_survives_serialisation(tmp_path):
    sampler = filled(np.random.default_rng(0).random(100), seed=4)
    state = sampler.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    np.savez(tmp_path / "s.npz", **arrays)
    loaded = dict(np.load(tmp_path / "s.npz"))
    loaded.update({k: v for k, v in state.items() if not isinstance(v, np.ndarray)})
    other = WeightedSampler(100)
    other.load_state_dict(loaded)
    np.testing.assert_array_equal(other.sample(50), sampler.sample(50))


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing changed


def test_bad_weights_name_the_first_bad_index_and_change_nothing():
    sampler = filled([1.0, 2.0, 3.0])
    before = sampler.state_dict()
    for bad, word in [(np.nan, "nan"), (np.inf, "inf"), (-1.0, "-1")]:
        with pytest.raises(ValueError, match=rf"weights\[1\] = {word}.*id 2"):
            sampler.update([0, 2, 1], [5.0, bad, bad])
        np.testing.assert_array_equal(sampler.weights(), [1.0, 2.0, 3.0])
    after = sampler.state_dict()
    for key in ("weights", "rng", "member_order", "level_order"):
        np.testing.assert_array_equal(before[key], after[key])


def test_out_of_range_ids_raise_index_error_and_change_nothing():
    sampler = filled([1.0, 2.0, 3.0])
    for bad in (3, -1, 10**12):
        with pytest.raises(IndexError, match=rf"ids\[1\] = {bad} is out of range.*n=3"):
            sampler.update([0, bad], [9.0, 9.0])
    with pytest.raises(IndexError, match="out of range"):
        sampler.weights([5])
    np.testing.assert_array_equal(sampler.weights(), [1.0, 2.0, 3.0])


def test_shape_and_type_errors():
    sampler = WeightedSampler(4)
    with pytest.raises(ValueError, match="same length"):
        sampler.update([0, 1], [1.0])
    with pytest.raises(TypeError, match="integers"):
        sampler.update([0.5], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        sampler.update([[0, 1]], [[1.0, 1.0]])
    with pytest.raises(ValueError, match="n must be"):
        WeightedSampler(-1)
    with pytest.raises(TypeError, match="k must be an integer"):
        sampler.sample(1.5)


def test_sample_size_errors():
    sampler = WeightedSampler(4)
    with pytest.raises(ValueError, match="every weight is 0"):
        sampler.sample(1, replace=True)
    assert sampler.sample(0).shape == (0,)
    sampler.update([0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="k=3 distinct ids requested but only 2"):
        sampler.sample(3)
    with pytest.raises(ValueError, match="k must be >= 0"):
        sampler.sample(-1)
    assert len(sampler.sample(3, replace=True)) == 3


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda s: s.update(version=2), "version"),
        (lambda s: s.update(format="other"), "format"),
        (lambda s: s.pop("rng"), "missing"),
        (lambda s: s.update(n=5), "n=5"),
        (lambda s: s.update(weights=np.full(10, np.nan)), "finite"),
        (lambda s: s.update(rng=np.zeros(4, dtype=np.uint64)), "all zeros"),
        (lambda s: s.update(rng=np.ones(3, dtype=np.uint64)), "4 words"),
        (lambda s: s.update(member_order=s["member_order"][:-1]), "member_order"),
        (
            lambda s: s.update(member_order=np.concatenate([s["member_order"][:-1], s["member_order"][:1]])),
            "member_order",
        ),
        (lambda s: s.update(level_order=s["level_order"][:-1]), "level_order"),
        (lambda s: s.update(weights=np.arange(10, dtype=np.float64)), "member_order"),
    ],
)
def test_corrupt_state_is_rejected_and_changes_nothing(corrupt, message):
    sampler = filled(np.arange(1, 11, dtype=np.float64), seed=5)
    state = sampler.state_dict()
    corrupt(state)
    target = filled(np.full(10, 2.0), seed=6)
    reference = filled(np.full(10, 2.0), seed=6)
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(state)
    np.testing.assert_array_equal(target.weights(), np.full(10, 2.0))
    np.testing.assert_array_equal(target.sample(10), reference.sample(10))


def test_concurrent_threads_share_a_sampler_safely():
    sampler = filled(np.random.default_rng(0).random(10_000), seed=1)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                sampler.update(rng.integers(0, 10_000, 100), rng.random(100) + 0.01)
                ids = sampler.sample(256)
                assert len(np.unique(ids)) == 256
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sampler.positive_count == 10_000
