"""The GRPO loss against its slow float64 loop reference, on fresh random inputs each check."""

import pytest
import torch
from references import policy_loss_reference

from scalingrl.grpo import GRPOConfig, policy_loss


def _inputs(generator, n=7, r=11):
    logprobs = -torch.rand(n, r, generator=generator, dtype=torch.float64) * 3
    old = logprobs + 0.4 * torch.randn(n, r, generator=generator, dtype=torch.float64)
    ref = logprobs + 0.3 * torch.randn(n, r, generator=generator, dtype=torch.float64)
    advantages = torch.randn(n, generator=generator, dtype=torch.float64)
    lengths = torch.randint(0, r + 1, (n,), generator=generator)
    mask = (torch.arange(r)[None, :] < lengths[:, None]).double()
    mask[0, :2] = 1.0  # at least some tokens
    return logprobs, old, ref, advantages, mask


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
@pytest.mark.parametrize("clip_low, clip_high", [(0.2, 0.2), (0.2, 0.28), (0.1, 0.5)])
@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
@pytest.mark.parametrize("trial", range(3))
def test_loss_matches_reference(aggregation, clip_low, clip_high, kl_coef, trial):
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))  # conftest seeds torch per test
    logprobs, old, ref, advantages, mask = _inputs(generator)
    config = GRPOConfig(clip_low=clip_low, clip_high=clip_high, aggregation=aggregation, kl_coef=kl_coef)
    loss, stats = policy_loss(logprobs, old, advantages, mask, config, ref_logprobs=ref)
    expected = policy_loss_reference(
        logprobs.tolist(), old.tolist(), advantages.tolist(), mask.tolist(), config, ref.tolist()
    )
    assert float(loss) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.0 <= stats["clip_fraction"] <= 1.0
    assert (stats["kl"] > 0) == (kl_coef > 0)


def test_float32_matches_float64_reference():
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    logprobs, old, ref, advantages, mask = _inputs(generator, n=97, r=33)
    config = GRPOConfig()
    loss, _ = policy_loss(logprobs.float(), old.float(), advantages.float(), mask.float(), config)
    expected = policy_loss_reference(logprobs.tolist(), old.tolist(), advantages.tolist(), mask.tolist(), config)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_on_policy_gradient_is_advantage_weighted_logprob_gradient():
    """At ratio 1 nothing is clipped and d loss / d logprob = -A / tokens (token mean)."""
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.1, -0.3]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    advantages = torch.tensor([1.0, -2.0])
    loss, stats = policy_loss(logprobs, logprobs.detach(), advantages, mask, GRPOConfig())
    loss.backward()
    expected = -advantages[:, None] * mask / mask.sum()
    torch.testing.assert_close(logprobs.grad, expected)
    assert stats["clip_fraction"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)


def test_clip_higher_lets_positive_advantages_grow_further():
    logprobs = torch.log(torch.tensor([[1.25]]))  # ratio 1.25 against old = 0
    old = torch.zeros(1, 1)
    mask = torch.ones(1, 1)
    advantage = torch.ones(1)
    symmetric, stats = policy_loss(logprobs, old, advantage, mask, GRPOConfig(clip_low=0.2, clip_high=0.2))
    higher, _ = policy_loss(logprobs, old, advantage, mask, GRPOConfig(clip_low=0.2, clip_high=0.28))
    assert float(symmetric) == pytest.approx(-1.2) and float(higher) == pytest.approx(-1.25)
    assert stats["clip_fraction"] == 1.0


def test_rows_without_tokens_do_not_count_in_sequence_mean():
    logprobs = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    loss, _ = policy_loss(logprobs, logprobs, torch.tensor([2.0, 5.0]), mask, GRPOConfig(aggregation="sequence_mean"))
    assert float(loss) == pytest.approx(-2.0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(clip_low=0.0), "clip_low"),
        (dict(aggregation="mean"), "aggregation"),
        (dict(kl_coef=-1), "kl_coef"),
        (dict(advantage_scale="z"), "advantage_scale"),
        (dict(updates_per_batch=0), "updates_per_batch"),
    ],
)
def test_config_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**bad)


def test_kl_needs_reference():
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), GRPOConfig(kl_coef=0.1))


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
def test_dropping_zero_advantage_rows_with_normalizer_keeps_the_gradient(aggregation):
    generator = torch.Generator().manual_seed(torch.randint(0, 10**6, ()).item())
    logprobs, old, _, advantages, mask = _inputs(generator, n=8, r=6)
    mask[:, 0] = 1.0
    advantages[::2] = 0.0
    config = GRPOConfig(aggregation=aggregation)
    full = logprobs.clone().requires_grad_(True)
    loss_full, _ = policy_loss(full, old, advantages, mask, config)
    loss_full.backward()
    subset = logprobs[1::2].clone().requires_grad_(True)
    normalizer = float(mask.sum()) if aggregation == "token_mean" else float(len(mask))
    loss_subset, _ = policy_loss(subset, old[1::2], advantages[1::2], mask[1::2], config, normalizer=normalizer)
    loss_subset.backward()
    assert float(loss_subset.detach()) == pytest.approx(float(loss_full.detach()), rel=1e-12)
    torch.testing.assert_close(subset.grad, full.grad[1::2])
