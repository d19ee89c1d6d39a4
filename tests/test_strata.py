"""Label strata: the apportionment rule, the stratified sampler, and DES drawing label by label."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from scalingrl.curriculum import CurriculumConfig
from scalingrl.data import PoolInfo
from scalingrl.des import DESConfig, difficulty_factor, label_shares
from scalingrl.sampler import StratifiedSampler, apportion
from scalingrl.selection import SelectionConfig, make_selector

G = 8


# -- apportion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 7, 64, 100])
def test_apportion_counts_are_within_one_of_the_quota_and_unbiased(total, rng):
    shares = np.array([0.3, 1.0, 0.0, 2.2, 0.5])
    quota = total * shares / shares.sum()
    capacity = np.full(5, 1000)
    draws = np.array([apportion(total, shares, capacity, rng) for _ in range(4000)])
    assert (draws.sum(axis=1) == total).all()
    assert (np.abs(draws - quota) < 1).all()
    assert (draws[:, 2] == 0).all()
    # Mean against the exact quota: each count is floor(quota) + Bernoulli(frac), so its std is known.
    frac = quota - np.floor(quota)
    se = np.sqrt(frac * (1 - frac) / len(draws))
    assert (np.abs(draws.mean(axis=0) - quota) <= 5 * se + 1e-12).all()


def test_apportion_gives_what_a_full_stratum_cannot_take_to_the_others_by_share(rng):
    # Stratum 0 wants 4.5 of 9 but holds 1; the 8 left go 1:2 to strata 1 and 2.
    draws = np.array([apportion(9, [3.0, 1.0, 2.0], [1, 10, 10], rng) for _ in range(3000)])
    assert (draws[:, 0] == 1).all() and (draws.sum(axis=1) == 9).all()
    np.testing.assert_allclose(draws[:, 1:].mean(axis=0), [8 / 3, 16 / 3], atol=0.05)
    # Only zero-share strata have room: they are filled by room, not left short.
    np.testing.assert_array_equal(apportion(5, [1.0, 0.0, 0.0], [2, 3, 0], rng), [2, 3, 0])


def test_apportion_rejects_bad_input(rng):
    with pytest.raises(ValueError, match="strata hold 3"):
        apportion(4, [1.0, 1.0], [1, 2], rng)
    with pytest.raises(ValueError, match="finite and >= 0"):
        apportion(1, [1.0, np.nan], [1, 2], rng)
    with pytest.raises(ValueError, match="finite and >= 0"):
        apportion(1, [1.0, -0.1], [1, 2], rng)
    with pytest.raises(ValueError, match="one length"):
        apportion(1, [1.0, 1.0], [1, 2, 3], rng)
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        apportion(0, [1.0], [-1], rng)
    with pytest.raises(TypeError, match="total must be an integer"):
        apportion(2.5, [1.0, 1.0], [3, 3], rng)
    # Shares near the float64 limit: no overflow in their sum.
    np.testing.assert_array_equal(apportion(4, [1e308, 1e308], [10, 10], rng), [2, 2])


# -- StratifiedSampler ------------------------------------------------------------------------------


def test_stratified_sampler_takes_counts_per_stratum_in_weight_proportion(rng):
    strata = rng.integers(0, 4, 400)
    weights = rng.random(400) ** 3
    sampler = StratifiedSampler(strata, seed=3)
    sampler.update(np.arange(400), weights)
    np.testing.assert_array_equal(sampler.positive_counts, np.bincount(strata))
    drawn = sampler.sample([2, 0, 5, 1])
    assert len(np.unique(drawn)) == 8
    np.testing.assert_array_equal(np.bincount(strata[drawn], minlength=4), [2, 0, 5, 1])
    # One draw from stratum 2, many times: chi-square against the weights (scipy's test, not ours).
    members = np.flatnonzero(strata == 2)
    hits = np.bincount([sampler.sample([0, 0, 1, 0])[0] for _ in range(20000)], minlength=400)[members]
    expected = 20000 * weights[members] / weights[members].sum()
    big = expected > 5
    chi2 = (((hits[big] - expected[big]) ** 2) / expected[big]).sum()
    assert stats.chi2.sf(chi2, big.sum() - 1) > 1e-4


def test_stratified_sampler_state_round_trip_and_errors(rng):
    strata = rng.integers(0, 3, 200)
    a = StratifiedSampler(strata, seed=1)
    a.update(np.arange(200), rng.random(200) + 0.1)
    state = a.state_dict()
    b = StratifiedSampler(strata, seed=99)
    b.load_state_dict(state)
    for _ in range(5):
        np.testing.assert_array_equal(a.sample([3, 1, 2]), b.sample([3, 1, 2]))
    np.testing.assert_array_equal(a.weights(), b.weights())
    before = b.weights()
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        b.update([0, 1], [1.0, np.nan])
    with pytest.raises(IndexError, match="id 200 is out of range"):
        b.update([0, 200], [1.0, 1.0])
    np.testing.assert_array_equal(b.weights(), before)
    with pytest.raises(ValueError, match="cannot draw 999 ids from stratum 1"):
        b.sample([0, 999, 0])
    with pytest.raises(IndexError, match="id -1 is out of range"):
        b.weights([-1])
    with pytest.raises(ValueError, match="strata of sizes"):
        StratifiedSampler(np.zeros(200, dtype=np.int64)).load_state_dict(state)
    with pytest.raises(ValueError, match="another assignment of ids"):
        StratifiedSampler(rng.permutation(strata)).load_state_dict(state)
    with pytest.raises(ValueError, match="strata of sizes"):
        b.load_state_dict({**state, "strata": state["strata"][:2]})
    with pytest.raises(ValueError, match="version"):
        b.load_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="stratum 1 has no member"):
        StratifiedSampler([0, 2, 2])


# -- DES with label strata --------------------------------------------------------------------------

LABELS = np.array([0.0, 0.5, 1.0])
TRUE_PASS = np.array([0.5, 0.0, 1.0])  # label 0.0 learnable, 0.5 hopeless, 1.0 mastered for this learner


def strata_pool(size=6000, unlabelled=0.0, seed=0):
    rng = np.random.default_rng(seed)
    prior = LABELS[rng.integers(0, 3, size)]
    prior[rng.random(size) < unlabelled] = np.nan
    return PoolInfo(size, prior_difficulty=prior)


def stratified(coverage=0.5, stratify=True):
    return SelectionConfig(
        des=DESConfig(stratify_labels=stratify, coverage=coverage),
        curriculum=CurriculumConfig(initial_pool=512, retest_interval=5),
    )


def bandit(selector, pool, steps, batch=48, seed=0, start=0):
    """Rollouts of a learner whose pass rate is set by the label; returns each step's label counts."""
    rng = np.random.default_rng(seed)
    counts = []
    for step in range(start, start + steps):
        sel = selector.select(step, batch)
        label = pool.prior_difficulty[sel.prompt_ids]
        p = np.where(np.isnan(label), 0.5, TRUE_PASS[np.searchsorted(LABELS, np.nan_to_num(label))])
        correct = rng.random((batch, G)) < p[:, None]
        selector.update(step, sel.prompt_ids, correct.astype(float), correct)
        counts.append(np.array([(label == v).sum() for v in LABELS]))
    return np.array(counts)


def test_label_shares_formula_and_the_all_zero_fallback():
    sizes, q = np.array([100.0, 300.0, 50.0]), np.array([0.5, 0.0, 0.9])
    expected = sizes * (0.25 + 4 * q * (1 - q))  # difficulty_factor at target 0.5 is 4 q (1 - q)
    np.testing.assert_allclose(label_shares(sizes, q, 0.25, 0.5), expected / expected.sum(), rtol=1e-12)
    np.testing.assert_allclose(label_shares(sizes, [0.0, 1.0, 0.0], 0.0, 0.5), sizes / sizes.sum())
    with pytest.raises(ValueError, match="positive"):
        label_shares([1.0, 0.0], [0.5, 0.5], 0.5, 0.5)


def test_each_label_gets_its_pool_share_times_coverage_plus_measured_signal(rng):
    pool = strata_pool(seed=int(rng.integers(2**31)))
    selector = make_selector(pool, stratified(coverage=0.5), seed=int(rng.integers(2**31)))
    counts = bandit(selector, pool, 30, seed=int(rng.integers(2**31)))
    # Reference: the formula with the true pass rates (the measured ones converge to them).
    freq = np.bincount(np.searchsorted(LABELS, pool.prior_difficulty), minlength=3) / pool.size
    want = freq * (0.5 + difficulty_factor(TRUE_PASS, 0.5))
    want /= want.sum()
    np.testing.assert_allclose(counts[10:].sum(axis=0) / counts[10:].sum(), want, atol=0.04)
    np.testing.assert_allclose(selector.label_shares(), want, atol=0.02)
    # Plain DES on the same learner explores by the nominal labels: most new prompts come from label 0.5
    # (nominal pass rate 0.5), which is hopeless here.
    plain = make_selector(pool, stratified(stratify=False), seed=int(rng.integers(2**31)))
    share = bandit(plain, pool, 30, seed=int(rng.integers(2**31)))[10:].sum(axis=0)
    assert share[1] / share.sum() > 0.5


def test_coverage_zero_draws_by_signal_and_large_coverage_by_the_pool_mix(rng):
    pool = strata_pool(seed=int(rng.integers(2**31)))
    seed = int(rng.integers(2**31))
    by_signal = bandit(make_selector(pool, stratified(coverage=0.0), seed=seed), pool, 25)[10:].sum(axis=0)
    assert by_signal[0] / by_signal.sum() > 0.9  # the rest: exploit draws a short label cannot fill
    mix = bandit(make_selector(pool, stratified(coverage=1e6), seed=seed), pool, 25)[10:].sum(axis=0)
    freq = np.bincount(np.searchsorted(LABELS, pool.prior_difficulty), minlength=3) / pool.size
    np.testing.assert_allclose(mix / mix.sum(), freq, atol=0.03)


def test_unlabelled_prompts_form_their_own_group():
    pool = strata_pool(unlabelled=0.2)
    selector = make_selector(pool, stratified(), seed=2)
    bandit(selector, pool, 12)
    shares = selector.label_shares()
    assert shares.shape == (4,)
    # The unlabelled group passes half the time here: its signal is near the top, like label 0.0.
    assert shares[3] > shares[1] and shares[3] > shares[2]


def test_a_stratified_batch_is_not_ordered_by_label(rng):
    pool = strata_pool(seed=int(rng.integers(2**31)))
    selector = make_selector(pool, stratified(coverage=1e6), seed=int(rng.integers(2**31)))
    bandit(selector, pool, 5)
    sel = selector.select(5, 48)
    group = np.searchsorted(LABELS, pool.prior_difficulty[sel.prompt_ids])
    # Grouped rows would change label at most 2 times per part; a shuffled batch of ~16 per label changes
    # ~30 times (P(<= 10) is far below 1e-6).
    assert (np.diff(group) != 0).sum() > 10
    assert sel.is_explore.any() and not sel.is_explore[: sel.is_explore.sum()].all()


def test_stratified_selection_round_trips_and_rejects_a_mismatched_state(rng):
    pool = strata_pool()
    seed = int(rng.integers(2**31))
    both = SelectionConfig(
        des=DESConfig(stratify_labels=True, calibrate_labels=True, calibrate_every=2),
        curriculum=CurriculumConfig(initial_pool=512, retest_interval=5),
    )
    for config in (stratified(), both):
        a, b = make_selector(pool, config, seed=seed), make_selector(pool, config, seed=seed)
        bandit(a, pool, 6)
        bandit(b, pool, 6)
        restored = make_selector(pool, config, seed=seed + 1)
        restored.load_state_dict(a.state_dict())
        for x, y in zip(bandit(a, pool, 6, start=6, seed=1), bandit(restored, pool, 6, start=6, seed=1)):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a.in_play.weights(), restored.in_play.weights())
        np.testing.assert_array_equal(a.select(12, 48).prompt_ids, restored.select(12, 48).prompt_ids)
    with pytest.raises(ValueError, match="saved with des.stratify_labels=true"):
        make_selector(pool, stratified(stratify=False), seed=0).load_state_dict(b.state_dict())
    plain = make_selector(pool, stratified(stratify=False), seed=0)
    bandit(plain, pool, 2)
    with pytest.raises(ValueError, match="saved with des.stratify_labels=false"):
        make_selector(pool, stratified(), seed=0).load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match="des.stratify_labels=true needs difficulty labels"):
        make_selector(PoolInfo(100), stratified(), seed=0)
    with pytest.raises(ValueError, match="des.coverage"):
        DESConfig(coverage=-1.0)


def test_a_calibration_state_saved_before_the_unlabelled_group_loads_with_that_group_at_its_prior():
    pool = strata_pool(unlabelled=0.2)
    config = SelectionConfig(des=DESConfig(calibrate_labels=True), curriculum=CurriculumConfig(initial_pool=512))
    selector = make_selector(pool, config, seed=0)
    bandit(selector, pool, 3)
    state = selector.state_dict()
    calibration = state["method_state"]["calibration"]
    old = {key: values[:3] for key, values in calibration.items()}  # the 3 labels only, as before
    state["method_state"]["calibration"] = old
    restored = make_selector(pool, config, seed=0)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.calibration.pass_rates(), selector.calibration.pass_rates())
    assert restored.calibration.group_pass_rates()[3] == 0.5  # unseen_pass: no rollout counted yet
