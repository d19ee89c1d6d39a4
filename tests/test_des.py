"""The C++ per-prompt store against the slow Python reference, and its error paths."""

from __future__ import annotations

import numpy as np
import pytest
from references import des_reference

from scalingrl import _native
from scalingrl.des import DESConfig, PromptStore


def random_updates(rng, size, rounds, batch, groups=8):
    updates = []
    for step in range(rounds):
        ids = rng.choice(size, size=batch, replace=False)
        trials = np.full(batch, float(groups))
        succ = rng.integers(0, groups + 1, size=batch).astype(float)
        rstd = rng.random(batch) * 0.5
        length = rng.integers(1, 500, size=batch).astype(float)
        entropy = rng.random(batch) * 2
        high = rng.random(batch)
        for arr in (length, entropy, high):
            arr[rng.random(batch) < 0.2] = np.nan  # not measured
        updates.append((step, ids, succ, trials, rstd, length, entropy, high))
    return updates


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "config",
    [DESConfig(), DESConfig(target_pass=0.3, count_decay=1.0, weight_cot=0.0), DESConfig(norm_decay=0.5, stat_ema=1.0)],
    ids=["default", "target0.3-nocot", "fast-norm"],
)
def test_native_store_matches_reference(seed, config):
    rng = np.random.default_rng(seed)
    size = 60
    prior = rng.random(size)
    prior[rng.random(size) < 0.3] = np.nan
    reference_len = rng.integers(10, 1000, size=size).astype(float)
    reference_len[rng.random(size) < 0.3] = np.nan
    updates = random_updates(rng, size, rounds=6, batch=15)
    native = _native.PromptStore(size, config.native(), prior, reference_len)
    for update in updates:
        native.update(*update)
    expected = des_reference(config, size, prior, reference_len, updates)
    touched_last = updates[-1][1]
    never = np.setdiff1d(np.arange(size), np.concatenate([u[1] for u in updates]))
    for ids in (touched_last, never):
        np.testing.assert_allclose(native.score(ids.astype(np.int64)), expected[ids], rtol=1e-12, atol=1e-12)


def test_prior_difficulty_orders_unseen_prompts():
    # MATH levels 1..5 -> prior difficulty 0, .25, .5, .75, 1: the middle is the most learnable.
    store = PromptStore(5, DESConfig(), prior_difficulty=np.linspace(0, 1, 5))
    _, factors = store.score(np.arange(5))
    difficulty = factors["difficulty"]
    assert difficulty.argmax() == 2
    assert difficulty[1] > difficulty[0] and difficulty[3] > difficulty[4]


def test_few_visits_are_shrunk_towards_the_prior():
    store = PromptStore(2, DESConfig(count_decay=1.0))
    correct = np.array([[True] * 1 + [False] * 0, [True] * 1])
    store.update(0, np.array([0]), np.ones((1, 1)), correct[:1])
    store.update(0, np.array([1]), np.ones((1, 8)), np.ones((1, 8), dtype=bool))
    _, factors = store.score(np.array([0, 1]))
    # 1/1 correct is weaker evidence of mastery than 8/8: its learnability stays higher.
    assert factors["difficulty"][0] > factors["difficulty"][1] > 0


def test_all_correct_and_all_wrong_groups_lose_learnability():
    store = PromptStore(3, DESConfig())
    rewards = np.array([[1.0] * 8, [0.0] * 8, [1.0, 0.0] * 4])
    store.update(0, np.arange(3), rewards, rewards > 0.5)
    store.update(1, np.arange(3), rewards, rewards > 0.5)
    des, factors = store.score(np.arange(3))
    assert factors["difficulty"][2] > factors["difficulty"][0]
    assert factors["difficulty"][2] > factors["difficulty"][1]
    assert des[2] > des[0] and des[2] > des[1]


def test_switching_factors_off():
    rng = np.random.default_rng(0)
    rewards = (rng.random((4, 8)) < 0.5).astype(float)
    scores = {}
    for name, config in {"only_difficulty": DESConfig(weight_cot=0, weight_adaptability=0), "all": DESConfig()}.items():
        store = PromptStore(4, config)
        store.update(0, np.arange(4), rewards, rewards > 0.5, {"response_length": rng.random((4, 8)) * 100})
        scores[name] = store.score(np.arange(4))
    des, factors = scores["only_difficulty"]
    np.testing.assert_allclose(des, factors["difficulty"])
    with pytest.raises(ValueError, match="switch at least one factor on"):
        DESConfig(weight_difficulty=0, weight_cot=0, weight_adaptability=0)


@pytest.mark.parametrize(
    "field, value", [("prior_strength", 0.0), ("target_pass", 1.0), ("count_decay", 1.5), ("weight_cot", -1.0)]
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"des.{field}"):
        DESConfig(**{field: value})


def test_bad_updates_raise_and_change_nothing():
    store = PromptStore(10, DESConfig(), prior_difficulty=np.full(10, 0.5))
    rewards = np.ones((2, 4))
    store.update(0, np.array([1, 2]), rewards, rewards > 0)
    before = store.state_dict()
    bad_rewards = rewards.copy()
    bad_rewards[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"rewards\[1, 3\] = nan"):
        store.update(1, np.array([1, 2]), bad_rewards, rewards > 0)
    with pytest.raises(IndexError, match=r"prompt_ids\[1\] = 10 is not a prompt of this pool"):
        store.update(1, np.array([1, 10]), rewards, rewards > 0)
    with pytest.raises(IndexError, match="not a prompt"):
        store.update(1, np.array([-1, 2]), rewards, rewards > 0)
    with pytest.raises(ValueError, match="correct has shape"):
        store.update(1, np.array([1, 2]), rewards, np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="prompt_ids has 3 entries"):
        store.update(1, np.array([1, 2, 3]), rewards, rewards > 0)
    with pytest.raises(ValueError, match="cot_stats"):
        store.update(1, np.array([1, 2]), rewards, rewards > 0, {"entropy_mean": np.ones((2, 5))})
    native = store._impl
    with pytest.raises(ValueError, match=r"successes\[0\] = 5.0+ must be in \[0, trials\]"):
        native.update(1, np.array([1]), np.array([5.0]), np.array([4.0]), np.array([0.0]))
    after = store.state_dict()
    for name, values in before["columns"].items():
        np.testing.assert_array_equal(after["columns"][name], values)
    np.testing.assert_array_equal(after["moments"], before["moments"])


def test_prior_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"prior_difficulty\[1\] = 1.5.* outside \[0, 1\]"):
        PromptStore(3, DESConfig(), prior_difficulty=np.array([0.1, 1.5, 0.2]))


def test_state_round_trip():
    rng = np.random.default_rng(3)
    a = PromptStore(50, DESConfig(), prior_difficulty=rng.random(50))
    for step, ids, succ, trials, rstd, length, entropy, high in random_updates(rng, 50, 4, 10):
        a._impl.update(step, ids, succ, trials, rstd, length, entropy, high)
    b = PromptStore(50, DESConfig())
    b.load_state_dict(a.state_dict())
    rewards = np.tile([1.0, 0.0], (5, 4))
    for store in (a, b):
        store.update(9, np.arange(5), rewards, rewards > 0, {"entropy_mean": np.ones((5, 8))})
    np.testing.assert_array_equal(a.score(np.arange(50))[0], b.score(np.arange(50))[0])
    state = a.state_dict()
    del state["columns"]["des"]
    with pytest.raises(ValueError, match="lacks column 'des'"):
        b.load_state_dict(state)
