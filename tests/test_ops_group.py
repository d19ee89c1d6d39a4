"""scalingrl.ops.sequence_stats and group_advantages: kernels (interpreted on CPU) and twins against float64 loops."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from testing_utils import requires_cuda

from scalingrl import ops
from scalingrl.kernels import group_advantages as group_kernel
from scalingrl.kernels import sequence_stats as sequence_kernel

BACKENDS = ["triton", "torch"]
# (dtype, atol, rtol) of the per-token inputs; statistics accumulate in float32.
SEQUENCE_TOL = [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 1e-5, 1e-5)]


def sequence_reference(entropy, logprobs, mask, threshold):
    """Slow loop in float64."""
    out = {key: [] for key in ops.SEQUENCE_STAT_KEYS}
    for ent, lp, keep in zip(entropy.double(), logprobs.double(), mask.bool()):
        ent, lp = ent[keep], lp[keep]
        n = len(ent)
        out["response_length"].append(float(n))
        out["entropy_mean"].append(float(ent.mean()) if n else 0.0)
        out["entropy_max"].append(float(ent.max()) if n else 0.0)
        out["high_entropy_fraction"].append(float((ent > threshold).double().mean()) if n else 0.0)
        out["logprob_sum"].append(float(lp.sum()))
    return {key: torch.tensor(values, dtype=torch.float64) for key, values in out.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, atol, rtol", SEQUENCE_TOL)
@pytest.mark.parametrize("shape", [(6, 37), (3, 2500), (1, 1)])
def test_sequence_stats_match_reference(shape, dtype, atol, rtol, backend):
    entropy = (torch.rand(shape, dtype=torch.float64) * 3).to(dtype)
    logprobs = (-torch.rand(shape, dtype=torch.float64) * 5).to(dtype)
    mask = torch.rand(shape) < 0.6
    mask[0, :] = False  # an empty response
    if shape[0] > 1:
        mask[1, :] = True
    entropy[~mask] = math.nan  # values outside the mask must never be read into a statistic
    threshold = float(torch.rand(()) * 2)
    stats = ops.sequence_stats(entropy, logprobs, mask, high_entropy_threshold=threshold, backend=backend)
    expected = sequence_reference(entropy, logprobs, mask, threshold)
    assert tuple(stats) == ops.SEQUENCE_STAT_KEYS
    for key in ops.SEQUENCE_STAT_KEYS:
        assert stats[key].dtype == torch.float32 and stats[key].shape == (shape[0],)
        torch.testing.assert_close(stats[key].double(), expected[key], atol=atol, rtol=rtol)
    assert stats["response_length"][0] == 0 and stats["entropy_max"][0] == 0 and stats["entropy_mean"][0] == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int64, torch.float32, torch.uint8])
def test_sequence_stats_mask_dtypes_agree(mask_dtype, backend):
    entropy, logprobs = torch.rand(4, 9) * 2, torch.randn(4, 9)
    mask = torch.rand(4, 9) < 0.5
    stats = ops.sequence_stats(entropy, logprobs, mask.to(mask_dtype), backend=backend)
    expected = sequence_reference(entropy, logprobs, mask, ops.HIGH_ENTROPY_THRESHOLD)
    for key in ops.SEQUENCE_STAT_KEYS:
        torch.testing.assert_close(stats[key].double(), expected[key], atol=1e-5, rtol=1e-5)


def test_sequence_kernel_writes_every_row():
    entropy, logprobs, mask = torch.rand(5, 20), torch.randn(5, 20), torch.rand(5, 20) < 0.5
    out = {key: torch.full((5,), math.nan) for key in ops.SEQUENCE_STAT_KEYS}
    stats = sequence_kernel.sequence_stats_forward(entropy, logprobs, mask, 1.0, out=out)
    assert all(torch.isfinite(value).all() for value in stats.values())


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(entropy=torch.rand(3)), ValueError, "entropy must be"),
        (dict(mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, "same shape"),
        (dict(logprobs=torch.zeros(2, 3, dtype=torch.long)), TypeError, "logprobs must be a float"),
        (dict(high_entropy_threshold=math.nan), ValueError, "NaN"),
        (dict(backend="gpu"), ValueError, "backend"),
    ],
)
def test_sequence_stats_bad_input(bad, error, match):
    args = dict(
        entropy=torch.rand(2, 3),
        logprobs=torch.rand(2, 3),
        mask=torch.ones(2, 3, dtype=torch.bool),
        high_entropy_threshold=1.0,
        backend="torch",
    )
    args.update(bad)
    with pytest.raises(error, match=match):
        ops.sequence_stats(**args)


def group_reference(rewards, group_size, scale, eps, pass_threshold):
    """Slow loop in float64; every std Bessel-corrected, 0 for one sample."""

    def std(values):
        n = len(values)
        if n < 2:
            return 0.0
        mean = sum(values) / n
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))

    values = rewards.double().tolist()
    batch_std = std(values)
    advantages, stats = [], {key: [] for key in ops.GROUP_STAT_KEYS}
    for g in range(0, len(values), group_size):
        group = values[g : g + group_size]
        constant = max(group) == min(group)
        mean, group_std = (group[0], 0.0) if constant else (sum(group) / group_size, std(group))
        divisor = {"group": group_std + eps, "batch": batch_std + eps, "none": 1.0}[scale]
        advantages += [(v - mean) / divisor for v in group]
        stats["reward_mean"].append(mean)
        stats["reward_std"].append(group_std)
        stats["pass_rate"].append(sum(v >= pass_threshold for v in group) / group_size)
        stats["zero_variance"].append(max(group) == min(group))
    out = {key: torch.tensor(value, dtype=torch.float64) for key, value in stats.items()}
    out["zero_variance"] = out["zero_variance"].bool()
    return torch.tensor(advantages, dtype=torch.float64), out


REWARD_KINDS = ["binary", "continuous", "constant"]


def make_rewards(kind, n, dtype):
    if kind == "binary":
        rewards = (torch.rand(n) < 0.4).double()
        rewards[: n // 4] = 1.0  # some all-correct groups
    elif kind == "continuous":
        rewards = torch.randn(n, dtype=torch.float64) * 2 + 0.5
    else:
        rewards = torch.full((n,), 0.3, dtype=torch.float64)
    return rewards.to(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", ops.ADVANTAGE_SCALES)
@pytest.mark.parametrize("kind", REWARD_KINDS)
@pytest.mark.parametrize("dtype, atol, rtol", [(torch.float32, 1e-5, 1e-5), (torch.float64, 1e-5, 1e-5)])
@pytest.mark.parametrize("group_size, num_groups", [(8, 16), (5, 7), (1, 6), (64, 3)])
def test_group_advantages_match_reference(group_size, num_groups, dtype, atol, rtol, kind, scale, backend):
    rewards = make_rewards(kind, group_size * num_groups, dtype)
    eps = 1e-6
    advantages, stats = ops.group_advantages(rewards, group_size, scale=scale, eps=eps, backend=backend)
    expected_adv, expected = group_reference(rewards, group_size, scale, eps, 1.0)
    assert advantages.dtype == torch.float32 and advantages.shape == rewards.shape
    assert tuple(stats) == ops.GROUP_STAT_KEYS
    torch.testing.assert_close(advantages.double(), expected_adv, atol=atol, rtol=rtol)
    for key in ("reward_mean", "reward_std", "pass_rate"):
        assert stats[key].dtype == torch.float32 and stats[key].shape == (num_groups,)
        torch.testing.assert_close(stats[key].double(), expected[key], atol=atol, rtol=rtol)
    assert stats["zero_variance"].dtype == torch.bool
    assert torch.equal(stats["zero_variance"], expected["zero_variance"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_pass_threshold_and_bf16_rewards(backend):
    rewards = torch.tensor([0.0, 0.5, 0.9, 1.0, 0.2, 0.2, 0.2, 0.2], dtype=torch.bfloat16)
    _, stats = ops.group_advantages(rewards, 4, backend=backend, pass_threshold=0.5)
    torch.testing.assert_close(stats["pass_rate"], torch.tensor([0.75, 0.0]))
    assert stats["zero_variance"].tolist() == [False, True]


def test_group_kernel_writes_every_element():
    rewards = torch.randn(6 * 5)
    out = (
        torch.full((30,), math.nan),
        *(torch.full((5,), math.nan) for _ in range(3)),
        torch.zeros(5, dtype=torch.bool),
    )
    advantages, stats = group_kernel.group_advantages_forward(rewards, 6, "group", 1e-6, 1.0, out=out)
    assert torch.isfinite(advantages).all()
    assert all(torch.isfinite(stats[key]).all() for key in ("reward_mean", "reward_std", "pass_rate"))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(group_size=3), ValueError, "must divide"),
        (dict(group_size=0), ValueError, "group_size"),
        (dict(group_size=2.0), ValueError, "group_size"),
        (dict(rewards=torch.ones(8, dtype=torch.long)), TypeError, "float"),
        (dict(rewards=torch.ones(2, 4)), ValueError, r"\(N,\)"),
        (dict(scale="std"), ValueError, "scale"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(backend="cpu"), ValueError, "backend"),
    ],
)
def test_group_advantages_bad_input(bad, error, match):
    args = dict(rewards=torch.ones(8), group_size=4, scale="group", eps=1e-6, backend="torch")
    args.update(bad)
    with pytest.raises(error, match=match):
        ops.group_advantages(**args)


@settings(max_examples=60, deadline=None)
@given(
    group_size=st.integers(1, 9),
    num_groups=st.integers(1, 6),
    data=st.data(),
    scale=st.sampled_from(ops.ADVANTAGE_SCALES),
)
def test_group_advantages_properties(group_size, num_groups, data, scale):
    """Twin against the loop on arbitrary small reward sets (values from a few levels, so ties are common)."""
    values = data.draw(
        st.lists(
            st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0, 3.0]),
            min_size=group_size * num_groups,
            max_size=group_size * num_groups,
        )
    )
    rewards = torch.tensor(values, dtype=torch.float32)
    advantages, stats = ops.group_advantages(rewards, group_size, scale=scale, backend="torch")
    expected_adv, expected = group_reference(rewards, group_size, scale, 1e-6, 1.0)
    torch.testing.assert_close(advantages.double(), expected_adv, atol=1e-5, rtol=1e-5)
    assert torch.equal(stats["zero_variance"], expected["zero_variance"])
    group_sums = advantages.reshape(num_groups, group_size).sum(dim=1)
    assert torch.all(group_sums.abs() <= 1e-4 * (1 + advantages.abs().reshape(num_groups, group_size).sum(dim=1)))
    assert torch.all(advantages.reshape(num_groups, group_size)[stats["zero_variance"]] == 0)


@requires_cuda
@pytest.mark.gpu
def test_cuda_kernels_match_twins():
    rewards = (torch.rand(64 * 16, device="cuda") < 0.5).float()
    advantages, stats = ops.group_advantages(rewards, 16)
    twin_adv, twin_stats = ops.group_advantages(rewards, 16, backend="torch")
    torch.testing.assert_close(advantages, twin_adv, atol=1e-5, rtol=1e-5)
    entropy, logprobs = torch.rand(64, 4096, device="cuda"), torch.randn(64, 4096, device="cuda")
    mask = torch.rand(64, 4096, device="cuda") < 0.7
    seq, twin = (
        ops.sequence_stats(entropy, logprobs, mask),
        ops.sequence_stats(entropy, logprobs, mask, backend="torch"),
    )
    for key in ops.SEQUENCE_STAT_KEYS:
        torch.testing.assert_close(seq[key], twin[key], atol=1e-4, rtol=1e-5)
