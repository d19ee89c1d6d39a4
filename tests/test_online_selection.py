"""MoPPS and GRESO: their defining rules against plain references, and their selectors' behaviour.

Determinism and checkpoint round trips of both selectors run in tests/test_selection.py (every
registered method). Here: the posterior update against a float64 loop and against Beta-Bernoulli
conjugacy (scipy), the nearest-to-target pick against a full sort, the re-try probability p ** k, a
goodness-of-fit test of GRESO's skip rate, and the effect each method exists for.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from scalingrl.data import PoolInfo
from scalingrl.online_selection import (
    GRESOConfig,
    MoPPSConfig,
    greso_keep_probability,
    greso_next_explore,
    mopps_pick,
    mopps_prior,
    mopps_update,
)
from scalingrl.selection import METHODS, SelectionConfig, make_selector, register_method


def test_registry_lists_every_method_and_rejects_duplicates():
    assert list(METHODS) == ["uniform", "dapo", "random_subset", "adarft", "des", "mopps", "greso", "speed"]
    with pytest.raises(ValueError, match="'des' is already registered"):
        register_method("des")(type("Other", (), {}))
    with pytest.raises(TypeError):
        METHODS["new"] = object  # read-only view


def test_mopps_update_matches_a_float64_loop():
    rng = np.random.default_rng(1)
    n, decay = 50, 0.7
    alpha0, beta0 = mopps_prior(rng.random(n), n, 2.0)
    alpha, beta = alpha0.copy(), beta0.copy()
    ref_a, ref_b = alpha0.tolist(), beta0.tolist()
    for _ in range(6):
        s = rng.integers(0, 9, n).astype(float)
        alpha, beta = mopps_update(alpha, beta, alpha0, beta0, s, np.full(n, 8.0), decay)
        for i in range(n):
            ref_a[i] = decay * ref_a[i] + (1 - decay) * alpha0[i] + s[i]
            ref_b[i] = decay * ref_b[i] + (1 - decay) * beta0[i] + 8 - s[i]
    np.testing.assert_allclose(alpha, ref_a, rtol=1e-13)
    np.testing.assert_allclose(beta, ref_b, rtol=1e-13)


def test_mopps_without_decay_is_the_conjugate_posterior():
    # decay = 1: Beta(1, 1) prior + all counts, the textbook Beta-Bernoulli posterior (scipy's mean).
    alpha0, beta0 = mopps_prior(None, 1, 2.0)
    alpha, beta = alpha0, beta0
    for s in (3.0, 5.0, 8.0):
        alpha, beta = mopps_update(alpha, beta, alpha0, beta0, np.array([s]), np.array([8.0]), 1.0)
    assert stats.beta(alpha[0], beta[0]).mean() == pytest.approx(stats.beta(1 + 16, 1 + 8).mean())


def test_mopps_pick_is_the_nearest_by_full_sort():
    rng = np.random.default_rng(2)
    for _ in range(20):
        sampled = rng.random(int(rng.integers(10, 300)))
        b = int(rng.integers(1, len(sampled) + 1))
        expected = sorted(range(len(sampled)), key=lambda i: (abs(sampled[i] - 0.3), i))[:b]
        np.testing.assert_array_equal(mopps_pick(sampled, 0.3, b), expected)
    with pytest.raises(ValueError, match="batch_size=5 exceeds the 3 candidate"):
        mopps_pick(np.zeros(3), 0.5, 5)


def test_greso_keep_probability_and_explore_step():
    streak = np.array([0, 1, 2, 3, 2])
    easy = np.array([True, True, False, True, True])
    np.testing.assert_allclose(greso_keep_probability(streak, easy, 0.5, 0.2), [1, 0.5, 0.04, 0.125, 0.25])
    c = GRESOConfig(retry_step=0.1, min_retry=0.15)
    assert greso_next_explore(0.5, 0.3, 0.1, c) == pytest.approx(0.4)  # too many zero-variance: skip more
    assert greso_next_explore(0.95, 0.0, 0.1, c) == 1.0
    assert greso_next_explore(0.2, 0.9, 0.1, c) == 0.15


def learner_pass(ids):
    return (np.asarray(ids) % 10) / 9.0  # prompts with i % 10 in {0, 9}: always wrong / always right


def play(selector, steps, b=32, g=8, seed=0):
    rng = np.random.default_rng(seed)
    chosen = []
    for step in range(steps):
        ids = selector.select(step, b).prompt_ids
        correct = rng.random((b, g)) < learner_pass(ids)[:, None]
        selector.update(step, ids, correct.astype(float), correct)
        chosen.append(ids)
    return chosen


def test_greso_skip_rate_fits_p_to_the_k():
    # Every prompt has a zero-variance streak of 2 (easy) except the even ones; p_easy fixed at 0.4.
    pool = PoolInfo(4000)
    selector = make_selector(pool, SelectionConfig(method="greso"), seed=5)
    selector.zero_streak[1::2] = 2
    selector.last_easy[:] = True
    selector.p_easy = 0.4
    picks = np.concatenate([selector._choose(step, 200)[0] for step in range(30)])
    odd = int((picks % 2 == 1).sum())
    # Candidates are uniform, so odd/even kept counts follow 0.16 : 1 -> P(odd) = 0.16 / 1.16.
    assert stats.binomtest(odd, len(picks), 0.16 / 1.16).pvalue > 1e-3


def test_greso_learns_to_skip_zero_variance_prompts():
    pool = PoolInfo(300)  # small pool: prompts come back, so their history matters (as over epochs)
    shares = {}
    for method in ("uniform", "greso"):
        selector = make_selector(pool, SelectionConfig(method=method), seed=0)
        chosen = np.concatenate(play(selector, 60)[30:])
        shares[method] = np.isin(chosen % 10, [0, 9]).mean()
    assert shares["uniform"] == pytest.approx(0.2, abs=0.03)
    assert shares["greso"] < 0.5 * shares["uniform"]


def test_mopps_concentrates_on_prompts_near_the_target():
    pool = PoolInfo(300)
    selector = make_selector(pool, SelectionConfig(method="mopps", mopps=MoPPSConfig(decay=0.9)), seed=0)
    chosen = np.concatenate(play(selector, 60)[30:])
    true = learner_pass(chosen)
    assert np.isin(chosen % 10, [0, 9]).mean() < 0.05  # uniform: 0.2
    assert np.abs(true - 0.5).mean() < 0.2  # uniform: 0.27


def test_mopps_state_shape_is_checked():
    selector = make_selector(PoolInfo(50), SelectionConfig(method="mopps"), seed=0)
    state = selector.state_dict()
    state["method_state"]["alpha"] = np.ones(3)
    with pytest.raises(ValueError, match="expected \\(50,\\)"):
        selector.load_state_dict(state)


@pytest.mark.parametrize("field, value", [("decay", 1.5), ("target_pass", 1.0), ("prior_strength", 0)])
def test_mopps_config_errors(field, value):
    with pytest.raises(ValueError, match=f"mopps.{field}"):
        MoPPSConfig(**{field: value})
