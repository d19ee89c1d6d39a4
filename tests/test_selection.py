"""Selectors: the interface contract for every method, determinism, checkpoints, DES behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from references import des_reference

from scalingrl.curriculum import CurriculumConfig, StepSignal, next_schedule
from scalingrl.data import PoolInfo
from scalingrl.selection import (
    CAPPED,
    IN_PLAY,
    METHODS,
    PARKED,
    RETIRED,
    UNSEEN,
    ScreeningPlan,
    SelectionConfig,
    make_selector,
    screened_batch,
)
from scalingrl.selection_config import DESConfig, SPEEDConfig

POOL = 3000
B, G = 64, 8


def pool_info(seed=0):
    rng = np.random.default_rng(seed)
    prior = rng.integers(0, 5, POOL) / 4
    prior[rng.random(POOL) < 0.1] = np.nan
    return PoolInfo(POOL, prior_difficulty=prior, reference_cot_length=rng.integers(20, 400, POOL).astype(float))


def true_pass(ids):
    # A fixed synthetic learner: prompt i passes with probability (i % 10) / 9.
    return (np.asarray(ids) % 10) / 9.0


def screen_rewards(rng, ids, n):
    """(len(ids), n) float64 0/1 screening rewards from the fixed learner."""
    return (rng.random((len(ids), n)) < true_pass(ids)[:, None]).astype(float)


def screen_outcomes(rng, ids, n):
    """The screening sampler's (rewards, correct) pair from the fixed learner (a reward is 1 iff correct)."""
    rewards = screen_rewards(rng, ids, n)
    return rewards, rewards > 0


def run(selector, steps, start=0, seed=0):
    rng = np.random.default_rng(seed + start)
    chosen = []
    for step in range(start, start + steps):
        sel, _ = screened_batch(selector, step, B, lambda c, n: screen_outcomes(rng, c.prompt_ids, n))
        correct = rng.random((B, G)) < true_pass(sel.prompt_ids)[:, None]
        cot = {"response_length": rng.integers(5, 300, (B, G)).astype(float), "entropy_mean": rng.random((B, G))}
        selector.update(step, sel.prompt_ids, correct.astype(float), correct, cot)
        chosen.append(sel.prompt_ids.copy())
    return chosen


def config(method, **curriculum):
    """The test config of ``method``; ``des_screened`` is ``des`` with ``des.screen`` on."""
    return SelectionConfig(
        method="des" if method == "des_screened" else method,
        random_subset_size=500,
        curriculum=CurriculumConfig(initial_pool=256, retest_interval=5, **curriculum),
        des=DESConfig(screen=method == "des_screened"),
    )


VARIANTS = [*METHODS, "des_screened"]


@pytest.mark.parametrize("method", VARIANTS)
def test_contract(method):
    selector = make_selector(pool_info(), config(method), seed=1)
    mixed = np.zeros((4, G))
    mixed[1, 0] = mixed[3] = 1.0  # groups 0 and 2 all wrong, 3 all right: zero-variance; 1 informative
    expected = [False, True, False, False] if method in ("dapo", "greso") else [True] * 4
    np.testing.assert_array_equal(selector.loss_groups(mixed), expected)
    rng, trained, screened = np.random.default_rng(0), [], []

    def sample(candidates, n):
        screened.append((len(candidates.prompt_ids), n))
        return screen_outcomes(rng, candidates.prompt_ids, n)

    for step in range(3):
        sel, _ = screened_batch(selector, step, B, sample)
        trained.append(sel.prompt_ids)
        assert sel.prompt_ids.dtype == np.int64 and sel.prompt_ids.shape == (B,)
        assert len(np.unique(sel.prompt_ids)) == B
        assert sel.is_explore.dtype == bool and sel.des.shape == (B,)
        assert set(sel.factors) == {"difficulty", "cot_complexity", "adaptability"}
        rewards = np.ones((B, G))
        selector.update(step, sel.prompt_ids, rewards, rewards > 0)
    assert 0 < selector.unique_prompts_used() <= 3 * B
    # "used" means trained on (used_prompts/): a screened candidate that did not train is not used
    np.testing.assert_array_equal(selector.used_prompt_ids(), np.unique(np.concatenate(trained)))
    assert len(selector.used_prompt_ids()) == selector.unique_prompts_used()
    metrics = selector.metrics()
    assert {"selection_ms", "update_ms", "pool_size", "unique_prompts_used"} <= set(metrics)
    stats = selector.prompt_stats()
    assert len(stats["prompt_id"]) == selector.unique_prompts_used()
    # Every rollout reaches the store: a trained group and its screening samples are one visit, a screened
    # candidate that did not train is a visit of its own.
    assert bool(screened) == (method in ("speed", "des_screened"))
    columns = selector.store.columns()
    assert columns["visits"].sum() == 3 * B + sum(c - B for c, _ in screened)


def _outcome_update(step, ids, rewards, correct, cot=None):
    """One ``des_reference`` update: per-prompt successes, trials, reward std (population) and CoT means."""
    means = [
        None if cot is None or key not in cot else np.nanmean(cot[key], axis=1)
        for key in ("response_length", "entropy_mean", "high_entropy_fraction")
    ]
    return (
        step,
        ids,
        correct.sum(axis=1).astype(float),
        np.full(len(ids), float(rewards.shape[1])),
        rewards.std(axis=1),
        *means,
    )


@pytest.mark.parametrize("method", ["speed", "des_screened"])
def test_screening_samples_reach_the_store_as_the_float64_reference_counts_them(method, rng):
    """Each screened candidate's samples are counted once: a dropped candidate as a visit of its own at the
    screen, a trained one together with its group (n + G samples, one visit). Checked against
    ``references.des_reference`` (a float64 loop over prompts) fed those visits in that order."""
    pool = pool_info()
    selector = make_selector(pool, config(method), seed=int(rng.integers(1 << 31)))
    updates, rounds = [], []

    def sample(candidates, n):
        rewards, correct = screen_outcomes(rng, candidates.prompt_ids, n)
        rewards = rewards + 0.1 * rng.random(rewards.shape)  # a shaped reward: its std is not the pass rate's
        rounds.append((candidates.prompt_ids.copy(), rewards, correct))
        return rewards, correct

    for step in range(5):
        selection, _ = screened_batch(selector, step, B, sample)
        ids, rewards, correct = rounds[-1]
        row = {prompt: k for k, prompt in enumerate(ids)}
        dropped = np.array([k for k, prompt in enumerate(ids) if prompt not in set(selection.prompt_ids.tolist())])
        kept = np.array([row[prompt] for prompt in selection.prompt_ids])
        updates.append(_outcome_update(step, ids[dropped], rewards[dropped], correct[dropped]))
        group_correct = rng.random((B, G)) < true_pass(selection.prompt_ids)[:, None]
        group_rewards = group_correct + 0.1 * rng.random((B, G))
        cot = {"response_length": rng.integers(5, 300, (B, G)).astype(float), "entropy_mean": rng.random((B, G))}
        selector.update(step, selection.prompt_ids, group_rewards, group_correct, cot)
        pad = np.full((B, correct.shape[1]), np.nan)
        updates.append(
            _outcome_update(
                step,
                selection.prompt_ids,
                np.concatenate([rewards[kept], group_rewards], axis=1),
                np.concatenate([correct[kept], group_correct], axis=1),
                {key: np.concatenate([pad, value], axis=1) for key, value in cot.items()},
            )
        )
    expected = des_reference(selector.config.des, POOL, pool.prior_difficulty, pool.reference_cot_length, updates)
    touched = np.unique(np.concatenate([u[1] for u in updates]))
    assert len(np.setdiff1d(touched, selector.used_prompt_ids())) > 0  # never trained, yet in the store
    _, factors = selector.store.score(touched)
    # The difficulty factor is a function of the pass-rate posterior alone: every touched prompt.
    np.testing.assert_allclose(factors["difficulty"], expected[touched, 0], rtol=1e-12, atol=1e-12)
    # The whole DES for the last update's prompts (a record is re-scored when it is touched).
    last = updates[-1][1]
    table = np.column_stack([*selector.store.score(last)[1].values(), selector.store.score(last)[0]])
    np.testing.assert_allclose(table, expected[last], rtol=1e-12, atol=1e-12)


def test_update_after_a_screening_round_refuses_other_prompts_and_keeps_its_state(rng):
    selector = make_selector(pool_info(), config("des_screened"), seed=int(rng.integers(1 << 31)))
    selection, _ = screened_batch(selector, 0, B, lambda c, n: screen_outcomes(rng, c.prompt_ids, n))
    state = selector.state_dict()
    wrong = selection.prompt_ids[::-1].copy()
    with pytest.raises(ValueError, match="needs the candidates screen\\(\\) chose, in its order"):
        selector.update(0, wrong, np.ones((B, G)), np.ones((B, G), dtype=bool))
    with pytest.raises(ValueError, match=r"must be \(B=64, G\) of one shape, got \(64, 8\) and \(64, 7\)"):
        selector.update(0, selection.prompt_ids, np.ones((B, G)), np.ones((B, G - 1), dtype=bool))
    assert _same_state(selector.state_dict(), state)
    selector.update(0, selection.prompt_ids, np.ones((B, G)), np.ones((B, G), dtype=bool))
    assert (selector.store.columns()["trials"][selection.prompt_ids] == 4 + G).all()  # screening + group
    # A round that never reached its update is not merged into a later one: a new select, or a restore.
    for restart in ("select", "load_state_dict"):
        screened_batch(selector, 1, B, lambda c, n: screen_outcomes(rng, c.prompt_ids, n))
        if restart == "load_state_dict":
            selector.load_state_dict(selector.state_dict())
            assert selector.screened is None  # the restored state has no round in flight
        plain = selector.select(1, B)
        before = selector.store.columns()["visits"][plain.prompt_ids]
        selector.update(1, plain.prompt_ids, np.zeros((B, G)), np.zeros((B, G), dtype=bool))
        np.testing.assert_array_equal(selector.store.columns()["visits"][plain.prompt_ids], before + 1)


def test_screening_correct_flags_are_checked():
    selector = make_selector(pool_info(), SelectionConfig(method="speed"), seed=0)
    selection = selector.select(0, 8)
    rewards = np.zeros((8, 2))
    with pytest.raises(ValueError, match=r"correct must be bool of the rewards' shape \(8, 2\), got float64"):
        selector.screen(selection, rewards, 5, rewards)
    with pytest.raises(ValueError, match=r"shape \(8, 3\)"):
        selector.screen(selection, rewards, 5, np.zeros((8, 3), dtype=bool))
    rewards[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"screening rewards\[2, 1\] = nan is not finite"):
        selector.screen(selection, rewards, 5, rewards > 0)
    with pytest.raises(ValueError, match="must return \\(rewards, correct\\)"):
        screened_batch(selector, 0, B, lambda c, n: np.ones((len(c.prompt_ids), n)))


@pytest.mark.parametrize("method", VARIANTS)
def test_same_seed_same_selections_and_restore_continues_identically(method):
    a = make_selector(pool_info(), config(method), seed=7)
    b = make_selector(pool_info(), config(method), seed=7)
    first_a, first_b = run(a, 6), run(b, 6)
    for x, y in zip(first_a, first_b):
        np.testing.assert_array_equal(x, y)
    state = a.state_dict()
    continued = run(a, 8, start=6)
    restored = make_selector(pool_info(), config(method), seed=999)
    restored.load_state_dict(state)
    resumed = run(restored, 8, start=6)
    for x, y in zip(continued, resumed):
        np.testing.assert_array_equal(x, y)
    assert restored.unique_prompts_used() == a.unique_prompts_used()


@pytest.mark.parametrize("method", ["des", "adarft"])
def test_bad_state_is_rejected_and_changes_nothing(method):
    selector = make_selector(pool_info(), config(method), seed=3)
    twin = make_selector(pool_info(), config(method), seed=3)
    run(selector, 2), run(twin, 2)
    other_method = make_selector(pool_info(), config("uniform"), seed=3).state_dict()
    with pytest.raises(ValueError, match="is for method 'uniform'"):
        selector.load_state_dict(other_method)
    small = make_selector(PoolInfo(100), config(method), seed=3).state_dict()
    with pytest.raises(ValueError, match="pool of 100 prompts"):
        selector.load_state_dict(small)
    broken = selector.state_dict()
    broken["method_state"] = {"target": 0.5} if method == "adarft" else {"status": broken["method_state"]["status"]}
    with pytest.raises(KeyError):
        selector.load_state_dict(broken)
    with pytest.raises(ValueError, match="version"):
        selector.load_state_dict({"version": 99})
    for x, y in zip(run(selector, 3, start=2), run(twin, 3, start=2)):
        np.testing.assert_array_equal(x, y)


def test_nan_reward_raises_and_changes_nothing():
    selector = make_selector(pool_info(), config("des"), seed=0)
    twin = make_selector(pool_info(), config("des"), seed=0)
    sel, sel_twin = selector.select(0, B), twin.select(0, B)
    rewards = np.ones((B, G))
    rewards[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"rewards\[5, 2\] = nan"):
        selector.update(0, sel.prompt_ids, rewards, rewards > 0)
    with pytest.raises(IndexError, match="not a prompt of this pool"):
        selector.update(0, np.full(B, POOL), np.ones((B, G)), np.ones((B, G), dtype=bool))
    good = np.zeros((B, G))
    selector.update(0, sel.prompt_ids, good, good > 0)
    twin.update(0, sel_twin.prompt_ids, good, good > 0)
    np.testing.assert_array_equal(selector.select(1, B).prompt_ids, twin.select(1, B).prompt_ids)


def test_des_spends_fewer_rollouts_on_zero_variance_prompts_than_uniform():
    # Prompts with i % 10 in {0, 9} always fail / always pass: their groups teach nothing.
    def zero_variance_share(method):
        selector = make_selector(pool_info(), config(method), seed=0)
        chosen = np.concatenate(run(selector, 40)[20:])
        return np.isin(chosen % 10, [0, 9]).mean()

    uniform, des = zero_variance_share("uniform"), zero_variance_share("des")
    assert uniform == pytest.approx(0.2, abs=0.03)
    assert des < 0.6 * uniform


def test_des_retires_mastered_prompts_and_retests_them():
    pool = PoolInfo(200)
    selector = make_selector(
        pool, SelectionConfig(curriculum=CurriculumConfig(initial_pool=200, retest_interval=3, retire_after=2)), seed=0
    )
    retired_seen = False
    for step in range(12):
        sel = selector.select(step, 20)
        mastered = sel.prompt_ids < 100  # prompts 0..99 always pass, 100..199 pass half the time
        correct = np.where(mastered[:, None], True, np.tile([True, False], (20, 4)))
        selector.update(step, sel.prompt_ids, correct.astype(float), correct)
        if selector.metrics()["retired"] > 0:
            retired_seen = True
            waiting = np.concatenate([ids for _, ids in selector.retests])
            assert (waiting < 100).all()
    assert retired_seen
    assert len(np.unique(selector.select(12, 20).prompt_ids)) == 20


def capped_config(method, max_visits):
    """``config(method)`` with the visit cap; ``des_stratified`` is ``des`` with label strata."""
    cfg = config("des_screened" if method == "des_screened" else "des", max_visits=max_visits)
    if method == "des_stratified":
        cfg.des = DESConfig(stratify_labels=True)
    return cfg


@pytest.mark.parametrize("method", ["des", "des_screened", "des_stratified"])
def test_des_max_visits_caps_each_prompts_trained_visits(method):
    def trained_counts(chosen):
        return np.bincount(np.concatenate(chosen), minlength=POOL)

    assert trained_counts(run(make_selector(pool_info(), capped_config(method, 0), seed=4), 30)).max() > 2
    selector = make_selector(pool_info(), capped_config(method, 2), seed=4)
    twin = make_selector(pool_info(), capped_config(method, 2), seed=4)
    chosen = run(selector, 20)
    run(twin, 20)
    counts = trained_counts(chosen)
    assert counts.max() == 2
    np.testing.assert_array_equal(selector.visits, counts)  # trained groups only: screening rounds do not count
    twice = np.flatnonzero(counts == 2)
    assert (selector.status[twice] == CAPPED).all()
    assert selector.metrics()["capped"] == len(twice) == int((selector.status == CAPPED).sum())
    assert selector.in_play_count == int((selector.status == IN_PLAY).sum())
    waiting = np.concatenate([ids for _, ids in selector.retests]) if selector.retests else np.array([], int)
    assert not np.isin(twice, waiting).any()  # no re-test brings them back
    # The counts survive a checkpoint: a restored selector continues exactly, still within the cap.
    restored = make_selector(pool_info(), capped_config(method, 2), seed=999)
    restored.load_state_dict(selector.state_dict())
    assert restored.metrics()["capped"] == selector.metrics()["capped"]
    later, twin_later = run(restored, 20, start=20), run(twin, 20, start=20)
    for x, y in zip(later, twin_later):
        np.testing.assert_array_equal(x, y)
    assert trained_counts(chosen + later).max() == 2


def test_des_visit_cap_must_match_on_resume_and_names_itself_when_it_empties_the_pool():
    selector = make_selector(pool_info(), config("des"), seed=1)
    run(selector, 3)
    old = selector.state_dict()
    del old["method_state"]["visits"], old["method_state"]["max_visits"]  # saved before curriculum.max_visits
    capped, twin = (make_selector(pool_info(), config("des", max_visits=3), seed=1) for _ in range(2))
    with pytest.raises(ValueError, match="no per-prompt visit counts.*max_visits=0"):
        capped.load_state_dict(old)
    for x, y in zip(run(capped, 3), run(twin, 3)):  # the failed load left nothing behind
        np.testing.assert_array_equal(x, y)
    plain = make_selector(pool_info(), config("des"), seed=1)
    plain.load_state_dict(old)
    assert (plain.visits == 0).all()
    with pytest.raises(ValueError, match="saved with curriculum.max_visits=0, this run has 3"):
        capped.load_state_dict(plain.state_dict())  # resume, save, resume with a cap: still refused
    with pytest.raises(ValueError, match="saved with curriculum.max_visits=3, this run has 0"):
        plain.load_state_dict(capped.state_dict())
    # One visit each: the pool runs out, and the error names the cap (plain and screened paths).
    for method in ("des", "des_screened"):
        small = make_selector(PoolInfo(300), capped_config(method, 1), seed=0)
        with pytest.raises(ValueError, match=r"prompts reached curriculum.max_visits=1 .*raise it, or set it to 0"):
            run(small, 6)


def test_random_subset_stays_in_its_subset():
    selector = make_selector(pool_info(), config("random_subset"), seed=2)
    chosen = np.concatenate(run(selector, 20))
    assert len(np.unique(chosen)) <= 500
    assert set(chosen.tolist()) <= set(selector.subset.tolist())
    with pytest.raises(ValueError, match="random_subset_size=500"):
        selector.select(99, 501)


def test_adarft_selects_around_its_target():
    selector = make_selector(pool_info(), config("adarft"), seed=0)
    sel = selector.select(0, B)
    prior = pool_info().prior_difficulty
    known = np.where(np.isfinite(prior), prior, 0.5)
    assert np.abs(known[sel.prompt_ids] - selector.target).max() <= np.sort(np.abs(known - selector.target))[B - 1]


def test_warm_start_probe_is_uniform_random():
    selector = make_selector(pool_info(), config("des", warm_start_probe=2 * B), seed=0)
    chosen = np.concatenate(run(selector, 2))
    assert selector.probe_left == 0
    # The probe ignores the prior: level-0 and level-4 prompts (least learnable) are drawn too.
    prior = pool_info().prior_difficulty[chosen]
    assert np.isin(prior, [0.0, 1.0]).mean() > 0.2


def test_config_errors():
    with pytest.raises(ValueError, match="curriculum.max_visits=-1 is invalid"):
        CurriculumConfig(max_visits=-1)
    with pytest.raises(ValueError, match="selection.method='best' is unknown"):
        SelectionConfig(method="best")
    with pytest.raises(ValueError, match="PoolInfo.prior_difficulty has shape"):
        PoolInfo(10, prior_difficulty=np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        PoolInfo(0)


@pytest.mark.parametrize("always_correct, grows", [(True, True), (False, False)])
def test_des_scale_grows_only_when_replayed_prompts_stop_giving_signal(always_correct, grows):
    # All groups all-correct (no signal) -> the target grows; groups half right (signal) -> it holds,
    # however flat the reward is (the old reward-trend rule grew it in both cases).
    selector = make_selector(PoolInfo(5000), SelectionConfig(curriculum=CurriculumConfig(initial_pool=300)), seed=0)
    rng = np.random.default_rng(0)
    for step in range(30):
        sel = selector.select(step, 32)
        correct = (
            np.ones((32, G), dtype=bool)
            if always_correct
            else rng.permuted(np.tile([True, False], (32, G // 2)), axis=1)
        )
        selector.update(step, sel.prompt_ids, correct.astype(float), correct)
    metrics = selector.metrics()
    assert (metrics["pool_target"] > 300) == grows
    assert metrics["exploit_signal"] == pytest.approx(0.0 if always_correct else 1.0)
    assert metrics["explore_signal"] == pytest.approx(0.0 if always_correct else 1.0)


def test_difficulty_factor_matches_the_native_store_on_unseen_prompts():
    from scalingrl.des import DESConfig, PromptStore, difficulty_factor

    labels = np.linspace(0, 1, 11)
    for target in (0.3, 0.5, 0.7):
        store = PromptStore(11, DESConfig(target_pass=target), labels, None)
        _, factors = store.score(np.arange(11))
        np.testing.assert_allclose(
            factors["difficulty"], difficulty_factor(np.clip(1 - labels, 0.02, 0.98), target), rtol=1e-12
        )


def calibrated(**des):
    from scalingrl.des import DESConfig

    return SelectionConfig(
        des=DESConfig(calibrate_labels=True, calibrate_every=1, **des),
        curriculum=CurriculumConfig(initial_pool=256, retest_interval=5),
    )


def test_label_calibration_counts_match_a_float64_loop():
    selector = make_selector(pool_info(), calibrated(calibration_decay=0.8), seed=0)
    prior = pool_info().prior_difficulty
    labels = sorted(set(prior[np.isfinite(prior)].tolist()))
    s, t = {label: 0.0 for label in labels}, {label: 0.0 for label in labels}
    rng = np.random.default_rng(3)
    for step in range(5):
        sel = selector.select(step, B)
        correct = rng.random((B, G)) < true_pass(sel.prompt_ids)[:, None]
        selector.update(step, sel.prompt_ids, correct.astype(float), correct)
        for label in labels:
            s[label] *= 0.8
            t[label] *= 0.8
        for i, row in zip(sel.prompt_ids, correct):
            if np.isfinite(prior[i]):
                s[prior[i]] += row.sum()
                t[prior[i]] += G
    expected = [(2 * min(max(1 - label, 0.02), 0.98) + s[label]) / (2 + t[label]) for label in labels]
    np.testing.assert_allclose(selector.calibration.pass_rates(), expected, rtol=1e-12)


def test_label_calibration_moves_exploration_to_labels_measured_near_the_target():
    # Label 0.5 (nominally the most learnable) is hopeless for this learner; label 0.0 passes half the time.
    pool = PoolInfo(4000, prior_difficulty=np.repeat([0.0, 0.5, 1.0], [1300, 1400, 1300]).astype(float))
    true = {0.0: 0.5, 0.5: 0.0, 1.0: 0.0}
    shares = {}
    for calibrate in (False, True):
        config = calibrated() if calibrate else SelectionConfig(curriculum=CurriculumConfig(initial_pool=256))
        selector = make_selector(pool, config, seed=0)
        rng = np.random.default_rng(0)
        explored = []
        for step in range(25):
            sel = selector.select(step, 32)
            p = np.array([true[v] for v in pool.prior_difficulty[sel.prompt_ids]])
            correct = rng.random((32, G)) < p[:, None]
            selector.update(step, sel.prompt_ids, correct.astype(float), correct)
            if step >= 10:
                explored.append(sel.prompt_ids[sel.is_explore])
        explored = np.concatenate(explored)
        shares[calibrate] = float(np.mean(pool.prior_difficulty[explored] == 0.0))
    assert shares[False] < 0.1  # the nominal label ranks label 0.0 (nominal pass 0.98) at the bottom
    assert shares[True] > 0.8


def test_label_calibration_round_trips_and_needs_labels():
    a, b = make_selector(pool_info(), calibrated(), seed=4), make_selector(pool_info(), calibrated(), seed=4)
    run(a, 4), run(b, 4)
    restored = make_selector(pool_info(), calibrated(), seed=0)
    restored.load_state_dict(a.state_dict())
    for x, y in zip(run(a, 5, start=4), run(restored, 5, start=4)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="disagree on des.calibrate_labels"):
        make_selector(pool_info(), config("des"), seed=0).load_state_dict(b.state_dict())
    with pytest.raises(ValueError, match="needs difficulty labels"):
        make_selector(PoolInfo(100), calibrated(), seed=0)


def _speed_reference(rewards, batch_size):
    """SPEED's choice as a plain loop: the first batch_size candidates whose screening rewards differ, then
    the first others, returned in candidate order."""
    varies = [i for i, row in enumerate(rewards.tolist()) if len(set(row)) > 1]
    rest = [i for i in range(len(rewards)) if i not in varies]
    return sorted((varies + rest)[:batch_size])


@pytest.mark.parametrize("qualified_share", [0.0, 0.2, 0.5, 1.0])
def test_speed_screen_takes_the_first_candidates_whose_rewards_vary(qualified_share):
    rng = np.random.default_rng()
    selector = make_selector(pool_info(), SelectionConfig(method="speed"), seed=int(rng.integers(1 << 31)))
    plan = selector.screening_plan(B)
    assert (plan.candidates, plan.rollouts) == (2 * B, 4)  # ceil(2.0 x 64) candidates, 4 samples each
    selection = selector.select(0, plan.candidates)
    assert len(np.unique(selection.prompt_ids)) == plan.candidates
    rewards = np.repeat(rng.integers(0, 2, (plan.candidates, 1)).astype(float), plan.rollouts, axis=1)
    mixed = rng.random(plan.candidates) < qualified_share
    rewards[mixed, 0] = 1.0 - rewards[mixed, 0]  # these rows vary
    positions = selector.screen(selection, rewards, B, rewards > 0)
    assert positions.dtype == np.int64 and positions.tolist() == _speed_reference(rewards, B)
    assert selector.metrics()["screen_qualified"] == pytest.approx(mixed.mean())
    assert selector.metrics()["screen_filled"] == max(B - mixed.sum(), 0)
    taken = selection.take(positions)
    np.testing.assert_array_equal(taken.prompt_ids, selection.prompt_ids[positions])
    np.testing.assert_array_equal(taken.factors["difficulty"], selection.factors["difficulty"][positions])


def test_speed_plan_and_screen_errors():
    selector = make_selector(pool_info(), SelectionConfig(method="speed", speed=SPEEDConfig(2, 1.5)), seed=0)
    assert selector.screening_plan(5).candidates == 8  # ceil(1.5 x 5)
    assert selector.screening_plan(POOL).candidates == POOL  # never more than the pool
    with pytest.raises(ValueError, match="exceeds the pool"):
        selector.screening_plan(POOL + 1)
    assert make_selector(pool_info(), SelectionConfig(method="speed", speed=SPEEDConfig(4, 1.1)), 0).screening_plan(
        100
    ) == ScreeningPlan(110, 4)  # 1.1 x 100 in floats is 110.00000000000001: still 110 candidates
    selection = selector.select(0, 8)
    with pytest.raises(ValueError, match=r"screening rewards must have 8 rows, got \(7, 2\)"):
        selector.screen(selection, np.zeros((7, 2)), 5, np.zeros((7, 2)) > 0)
    with pytest.raises(ValueError, match=r"must be \(C, n >= 2\), got shape \(8, 1\)"):
        selector.screen(selection, np.zeros((8, 1)), 5, np.zeros((8, 1)) > 0)
    with pytest.raises(ValueError, match=r"batch_size=9 must be in \[1, 8\]"):
        selector.screen(selection, np.zeros((8, 2)), 9, np.zeros((8, 2)) > 0)
    with pytest.raises(ValueError, match="screen_rollouts=1 must be >= 2"):
        SPEEDConfig(screen_rollouts=1)
    for factor in (0.5, float("inf"), True, "2"):
        with pytest.raises(ValueError, match=f"candidates_factor={factor!r} must be a finite number >= 1"):
            SPEEDConfig(candidates_factor=factor)
    with pytest.raises(ValueError, match="max_candidates_factor=3.0 must be >= speed.candidates_factor=4.0"):
        SPEEDConfig(candidates_factor=4.0, max_candidates_factor=3.0)
    with pytest.raises(ValueError, match="headroom=0.9 must be a finite number >= 1"):
        SPEEDConfig(headroom=0.9)
    with pytest.raises(ValueError, match="screen_rollouts=2.5 must be an integer"):
        SPEEDConfig(screen_rollouts=2.5)
    with pytest.raises(ValueError, match="needs candidates >= 1 and rollouts >= 2"):
        ScreeningPlan(4, 1)
    uniform = make_selector(pool_info(), SelectionConfig(method="uniform"), seed=0)
    assert uniform.screening_plan(B) is None
    with pytest.raises(NotImplementedError, match="uniform has no screening_plan"):
        uniform.screen(selection, np.zeros((8, 2)), 5, np.zeros((8, 2)) > 0)
    with pytest.raises(ValueError, match="positions must be distinct"):
        selection.take(np.array([1, 1]))
    for bad in (np.array([1.0]), np.array([[1]])):
        with pytest.raises(ValueError, match="positions must be a 1-D integer array"):
            selection.take(bad)
    assert len(selection.take([]).prompt_ids) == 0
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 8\)"):
        selection.take(np.array([8]))


def test_screened_batch_refuses_a_plan_or_screen_that_breaks_the_batch():
    class Short(METHODS["speed"]):
        def screen(self, selection, rewards, batch_size, correct):
            return super().screen(selection, rewards, batch_size, correct)[:-1]

    class Few(METHODS["speed"]):
        def screening_plan(self, batch_size):
            return ScreeningPlan(batch_size - 1, 2)

    for cls, message in ((Short, r"speed.screen returned positions of shape \(63,\)"), (Few, "63 candidates < batch")):
        selector = cls(pool_info(), SelectionConfig(method="speed"), 0)
        with pytest.raises(ValueError, match=message):
            screened_batch(
                selector, 0, B, lambda c, n: (np.ones((len(c.prompt_ids), n)), np.ones((len(c.prompt_ids), n), bool))
            )


def test_speed_screens_as_many_candidates_as_its_measured_qualified_share_needs():
    selector = make_selector(pool_info(), SelectionConfig(method="speed"), seed=0)
    expected_plans = []
    for step, qualified in enumerate([32, 96, 0, 0, 0, 0]):  # of each step's candidates, how many vary
        plan = selector.screening_plan(B)
        expected_plans.append(plan.candidates)
        selection = selector.select(step, plan.candidates)
        rewards = np.zeros((plan.candidates, 4))
        rewards[:qualified, 0] = 1.0
        selector.screen(selection, rewards, B, rewards > 0)
        selector.update(step, selection.prompt_ids[:B], np.zeros((B, G)), np.zeros((B, G), dtype=bool))
    # step 0: 2.0 x 64; then ceil(1.25 x 64 / q) with q <- (q + share) / 2, within [64, 8 x 64]
    q1 = 32 / 128
    q2 = 0.5 * q1 + 0.5 * 96 / 320
    q3 = 0.5 * q2
    assert expected_plans[:4] == [128, 320, int(np.ceil(80 / q2)), min(int(np.ceil(80 / q3)), 8 * B)]
    assert expected_plans[-1] == 8 * B  # nothing qualifies: the cap
    state = selector.state_dict()
    restored = make_selector(pool_info(), SelectionConfig(method="speed"), seed=1)
    restored.load_state_dict(state)
    assert restored.screening_plan(B) == selector.screening_plan(B)
    state["method_state"]["qualified_share"] = 1.5
    with pytest.raises(ValueError, match="qualified_share=1.5 must be in"):
        restored.load_state_dict(state)


def _check_des_bookkeeping(selector):
    """Status, counts and both samplers agree: each sampler has weight exactly on the prompts of its status
    (a new prompt in play gets its weight at its update, so checked after one), the count matches, and the
    parked and retired prompts are exactly those waiting for a re-test."""
    status = selector.status
    assert selector.in_play_count == np.count_nonzero(status == IN_PLAY)
    np.testing.assert_array_equal(selector.in_play.weights() > 0, status == IN_PLAY)
    np.testing.assert_array_equal(selector.unseen.weights() > 0, status == UNSEEN)
    waiting = np.concatenate([ids for _, ids in selector.retests]) if selector.retests else np.zeros(0, int)
    assert len(np.unique(waiting)) == len(waiting)
    assert set(np.flatnonzero((status == PARKED) | (status == RETIRED))) == set(waiting.tolist())


def test_des_screen_trains_qualified_candidates_and_releases_the_rest():
    selector = make_selector(pool_info(), config("des_screened"), seed=4)
    rng, trained_ids, replayed_surplus, moved = np.random.default_rng(4), set(), 0, 0
    for step in range(12):
        plan = selector.screening_plan(B)
        candidates = selector.select(step, plan.candidates)
        rewards = screen_rewards(rng, candidates.prompt_ids, plan.rollouts)
        varies = rewards.max(axis=1) > rewards.min(axis=1)
        weights_before = selector.in_play.weights(candidates.prompt_ids)
        positions = selector.screen(candidates, rewards, B, rewards > 0)
        assert positions.shape == (B,) and len(np.unique(positions)) == B
        if varies.sum() >= B:
            assert varies[positions].all()  # only learnable candidates train while there are enough
        else:
            assert set(np.flatnonzero(varies)) <= set(positions.tolist())
        dropped = np.setdiff1d(np.arange(plan.candidates), positions)
        ids = candidates.prompt_ids
        flat, surplus_new = (
            ids[dropped[~varies[dropped]]],
            ids[dropped[varies[dropped] & candidates.is_explore[dropped]]],
        )
        assert (selector.status[flat] == PARKED).all()
        assert selector.metrics()["parked"] == np.count_nonzero(selector.status == PARKED)  # counts them too
        assert any(step + 5 == due and set(flat) <= set(waiting.tolist()) for due, waiting in selector.retests)
        assert (selector.status[surplus_new] == UNSEEN).all()
        surplus_old = dropped[varies[dropped] & ~candidates.is_explore[dropped]]  # replayed, learnable, surplus
        assert (selector.status[ids[surplus_old]] == IN_PLAY).all()
        # Still in play, re-weighted by the DES their screening round gave them (it changed the record).
        des_old, _ = selector.store.score(ids[surplus_old])
        np.testing.assert_allclose(
            selector.in_play.weights(ids[surplus_old]), selector.config.des.sampler_weight(des_old)
        )
        moved += int((selector.in_play.weights(ids[surplus_old]) != weights_before[surplus_old]).sum())
        replayed_surplus += len(surplus_old)
        # Back at the DES weight their screening round gave them (the round is a visit in the store).
        des_now, _ = selector.store.score(surplus_new)
        np.testing.assert_allclose(selector.unseen.weights(surplus_new), selector.config.des.sampler_weight(des_now))
        assert (selector.store.columns()["last_step"][surplus_new] == step).all()
        trained = candidates.take(positions)
        correct = rng.random((B, G)) < true_pass(trained.prompt_ids)[:, None]
        selector.update(step, trained.prompt_ids, correct.astype(float), correct)
        _check_des_bookkeeping(selector)
        trained_ids.update(trained.prompt_ids.tolist())
        assert set(selector.used_prompt_ids().tolist()) == trained_ids  # screened-only candidates are not used
    assert selector.metrics()["screen_qualified"] == pytest.approx(varies.mean())
    assert replayed_surplus > 0 and moved > 0


@pytest.mark.parametrize("warm", [False, True])
def test_des_screen_schedule_reads_the_screening_round(warm):
    cfg = config("des_screened")
    selector = make_selector(pool_info(), cfg, seed=5)
    step = 6 if warm else 0
    run(selector, step)  # warm: prompts in play, so the round has replayed candidates too
    plan = selector.screening_plan(B)
    assert plan.rollouts == 4 and (warm or plan.candidates == 2 * B)  # selection.speed's count and samples
    candidates = selector.select(step, plan.candidates)
    explore = candidates.is_explore
    assert (~explore).any() == warm
    rewards = np.zeros((plan.candidates, plan.rollouts))
    varies = np.random.default_rng(5).random(plan.candidates) < 0.4
    rewards[varies, 0] = 1.0
    before = selector.schedule
    trained = candidates.take(selector.screen(candidates, rewards, B, rewards > 0))
    # The scale and mix rules see the round's informative shares by origin (C candidates, n samples each).
    signal = StepSignal(
        int((varies & explore).sum()),
        int(explore.sum()),
        int((varies & ~explore).sum()),
        int((~explore).sum()),
        plan.rollouts,  # measured on the screen's n samples per candidate, not on the trained groups' G
    )
    assert selector.screen_signal == signal
    informative = np.zeros((B, G))
    informative[:, 0] = 1.0  # every trained group informative: that is not what DES proposed
    selector.update(step, trained.prompt_ids, informative, informative > 0)
    assert selector.schedule == next_schedule(before, signal, cfg.curriculum, POOL)
    if warm:
        assert selector.schedule.exploit_signal != pytest.approx(before.exploit_signal)


def test_des_screen_signal_of_an_abandoned_step_is_dropped():
    selector = make_selector(pool_info(), config("des_screened"), seed=5)
    run(selector, 3)
    saved = selector.state_dict()
    for restart in (lambda: selector.select(3, B), lambda: selector.load_state_dict(saved)):
        candidates = selector.select(3, selector.screening_plan(B).candidates)
        rewards = np.zeros((len(candidates.prompt_ids), 4))
        rewards[::2, 0] = 1.0
        selector.screen(candidates, rewards, B, rewards > 0)
        assert selector.screen_signal is not None
        restart()  # the step is abandoned after its screen: its signal must not reach the next update
        assert selector.screen_signal is None and selector.screened is None


def test_des_screen_state_and_config_errors():
    selector = make_selector(pool_info(), config("des_screened"), seed=5)
    plain = make_selector(pool_info(), config("des"), seed=5)
    candidates = selector.select(0, selector.screening_plan(B).candidates)
    rewards = np.ones((len(candidates.prompt_ids), 4))
    assert plain.screening_plan(B) is None
    with pytest.raises(NotImplementedError, match="des has no screening_plan"):
        plain.screen(candidates, rewards, B, rewards > 0)
    reordered = candidates.take(np.arange(len(candidates.prompt_ids))[::-1].copy())
    state = selector.state_dict()
    with pytest.raises(ValueError, match="des.screen needs the candidates that select"):
        selector.screen(reordered, rewards, B, rewards > 0)  # not the pending selection: nothing would be released
    assert _same_state(selector.state_dict(), state)
    for source, target in ((selector, plain), (plain, selector)):
        with pytest.raises(ValueError, match="disagree on des.screen"):
            target.load_state_dict(source.state_dict())
    with pytest.raises(ValueError, match=r"screening rewards must have 128 rows, got \(3, 4\)"):
        selector.screen(candidates, rewards[:3], B, rewards[:3] > 0)
    for labels in ("calibrate_labels", "stratify_labels"):
        with pytest.raises(ValueError, match="des.screen=true does not combine with"):
            DESConfig(screen=True, **{labels: True})
    with pytest.raises(ValueError, match="selection.method='speed': use selection.method=des"):
        SelectionConfig(method="speed", des=DESConfig(screen=True))


def test_des_screen_parked_candidates_come_back_and_a_small_pool_does_not_stall():
    """Pool 120 and B = 48, three quarters of the prompts at pass rate 0 or 1 (they never qualify): the
    screen parks many candidates each step and the re-tests must be counted when the next round is sized."""
    pool = PoolInfo(120, prior_difficulty=np.full(120, 0.5))
    passes = np.where(np.arange(120) % 4 == 0, 0.5, (np.arange(120) % 8 == 1).astype(float))
    cfg = SelectionConfig(method="des", des=DESConfig(screen=True), curriculum=CurriculumConfig(retest_interval=2))
    selector, rng = make_selector(pool, cfg, seed=0), np.random.default_rng(0)

    def sample(candidates, n):
        correct = rng.random((len(candidates.prompt_ids), n)) < passes[candidates.prompt_ids, None]
        return correct.astype(float), correct

    parked_before, returned = np.zeros(0, dtype=np.int64), 0
    for step in range(12):
        selection, _ = screened_batch(selector, step, 48, sample)
        due = [ids for when, ids in selector.retests if when == step + 2]  # parked by this step's screen
        parked_now = np.concatenate(due) if due else np.zeros(0, dtype=np.int64)
        parked_now = parked_now[~selector.used[parked_now]]  # and never trained
        correct = rng.random((48, G)) < passes[selection.prompt_ids, None]
        selector.update(step, selection.prompt_ids, correct.astype(float), correct)
        _check_des_bookkeeping(selector)
        assert not [ids for due, ids in selector.retests if due <= step + 1]  # due re-tests are back already
        # Parked at step - 1 (re-test due at step + 1) and still untrained: back among the unseen prompts.
        back = parked_before[~selector.used[parked_before]]
        assert (selector.status[back] == UNSEEN).all() and (selector.unseen.weights(back) > 0).all()
        returned += len(back)
        parked_before = parked_now
    assert returned > 0
    tight = SelectionConfig(method="des", des=DESConfig(screen=True), curriculum=CurriculumConfig(retest_interval=50))
    stalled = make_selector(pool, tight, seed=0)
    with pytest.raises(ValueError, match="lower batch_size or curriculum.retest_interval"):
        for step in range(12):
            selection, _ = screened_batch(stalled, step, 48, sample)
            stalled.update(step, selection.prompt_ids, np.zeros((48, G)), np.zeros((48, G), dtype=bool))


def test_des_screen_keeps_the_qualified_candidates_mix_of_new_and_replayed():
    selector = make_selector(pool_info(), config("des_screened"), seed=6)
    run(selector, 4)  # prompts in play to replay
    shares = []
    for step in range(4, 10):
        plan = selector.screening_plan(B)
        candidates = selector.select(step, plan.candidates)
        rewards = np.zeros((plan.candidates, plan.rollouts))
        rewards[:, 0] = 1.0  # every candidate qualifies: which B train is a draw, not the list's order
        trained = candidates.take(selector.screen(candidates, rewards, B, rewards > 0))
        shares.append((trained.is_explore.mean(), candidates.is_explore.mean()))
        selector.update(step, trained.prompt_ids, rewards[:B, :1].repeat(G, 1), rewards[:B, :1].repeat(G, 1) > 0)
    shares = np.array(shares)
    assert ((shares[:, 1] > 0.2) & (shares[:, 1] < 0.8)).any()  # some steps mix new and replayed candidates
    # A random B of the candidates: within 4 standard deviations (<= 0.0625 for B = 64) of the candidates'
    # share on every step. Taken in list order (new ones first) step 4 would train 0.95 new vs 0.49.
    np.testing.assert_allclose(shares[:, 0], shares[:, 1], atol=0.25)


def _same_state(a, b) -> bool:
    """Deep equality of two state dicts (arrays compared by value)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return a == b


def test_des_screen_draws_the_warm_start_probe_a_round_at_a_time():
    cfg = SelectionConfig(method="des", des=DESConfig(screen=True), curriculum=CurriculumConfig(warm_start_probe=192))
    selector, rng = make_selector(pool_info(), cfg, seed=2), np.random.default_rng(2)
    plan = selector.screening_plan(B)
    candidates = selector.select(0, plan.candidates)
    assert plan.candidates == 2 * B and selector.probe_left == 192 - 2 * B  # the probe feeds the whole round
    assert candidates.is_explore.all()
    rewards, correct = screen_outcomes(rng, candidates.prompt_ids, 4)
    trained = candidates.take(selector.screen(candidates, rewards, B, correct))
    correct = rng.random((B, G)) < true_pass(trained.prompt_ids)[:, None]
    selector.update(0, trained.prompt_ids, correct.astype(float), correct)
    _check_des_bookkeeping(selector)
