"""The policy update at model level, with a tiny Llama and a plain torch optimizer in place of DeepSpeed.

``train.update_policy`` skips the backward pass of rows whose loss terms are exactly 0 (zero
advantage, no KL) and drops the rows of groups the selector's ``loss_groups`` hook rejects. Both are
shortcuts: the gradient must equal the one of the plain full-batch loss (``grpo.policy_loss`` over
every row, ``torch.autograd``), within fp32 tolerance. A short on-policy run on a one-step bandit
must raise the training reward.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scalingrl import ops
from scalingrl.config import load_config
from scalingrl.grpo import policy_loss, response_logprobs
from scalingrl.quickstart import TinyModelConfig, build_char_tokenizer, new_tiny_model
from scalingrl.rollout import HFGenerateEngine, RolloutBatch
from scalingrl.synthetic import ALPHABET
from scalingrl.train import ShardRollout, update_policy


class _TorchTrainer:
    """The three calls ``update_policy`` makes on the training engine, on a bare module.

    ``step`` records the gradient of the step (one flat fp32 vector) before the optimizer uses it.
    """

    def __init__(self, model, lr: float = 0.0) -> None:
        self.module, self.device = model, torch.device("cpu")
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0) if lr else None
        self.gradients: list[torch.Tensor] = []

    def forward_model(self):
        return self.module

    def backward(self, loss) -> None:
        loss.backward()

    def step(self) -> float:
        grad = torch.cat(
            [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in self.module.parameters()]
        )
        self.gradients.append(grad.clone())
        if self.optimizer is not None:
            self.optimizer.step()
        self.module.zero_grad(set_to_none=True)
        return float(grad.norm())


def _tiny_model():
    tokenizer = build_char_tokenizer(ALPHABET)
    config = TinyModelConfig(
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position=64,
        seed=int(torch.randint(0, 2**31, ())),
    )
    return new_tiny_model(config, tokenizer).float(), tokenizer


def _random_batch(model, groups: int, group: int, prompt_len: int = 5, response_len: int = 7):
    """Random prompts and responses (padded like a rollout), old log-probs near the current policy's."""
    n, vocab = groups * group, model.config.vocab_size
    prompt_ids = torch.randint(4, vocab, (n, prompt_len))
    prompt_mask = torch.ones(n, prompt_len, dtype=torch.long)
    prompt_mask[::3, :2] = 0  # some left padding
    response_ids = torch.randint(4, vocab, (n, response_len))
    lengths = torch.randint(1, response_len + 1, (n,))
    response_mask = (torch.arange(response_len) < lengths.unsqueeze(-1)).float()
    with torch.no_grad():
        current, _ = response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask)
    old = (current + 0.3 * torch.randn_like(current)) * response_mask  # ratios away from 1: clipping is exercised
    return RolloutBatch(prompt_ids, prompt_mask, response_ids, response_mask, old, [""] * n)


def _full_batch_gradient(model, batch, advantages, rows_in_loss, grpo):
    """Gradient of ``policy_loss`` over every row at once: rows outside ``rows_in_loss`` have a zero mask."""
    model.zero_grad(set_to_none=True)
    logprobs, _ = response_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask)
    mask = batch.response_mask * torch.as_tensor(rows_in_loss, dtype=torch.float32).unsqueeze(-1)
    loss, _ = policy_loss(logprobs, batch.sampling_logprobs, advantages, mask, grpo)
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grad


def _run(model, trainer, grpo, temperature=1.0):
    return SimpleNamespace(
        config=SimpleNamespace(grpo=grpo, rollout=SimpleNamespace(temperature=temperature)),
        trainer=trainer,
        ref_model=None,
    )


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
@pytest.mark.parametrize("drop_groups", [False, True])
def test_update_gradient_equals_full_batch_gradient(aggregation, drop_groups):
    model, _ = _tiny_model()
    groups, group = 4, 4
    batch = _random_batch(model, groups, group)
    rewards = torch.randint(0, 2, (groups, group)).float()
    rewards[1] = 1.0  # a zero-variance group: its rows have advantage 0 and take the no-grad path
    rewards[2] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    advantages, stats = ops.group_advantages(rewards.reshape(-1), group)
    assert (advantages.reshape(groups, group)[1] == 0).all()
    keep = np.ones(groups * group, dtype=bool)
    if drop_groups:
        keep[2 * group : 3 * group] = False  # the loss_groups hook drops a group that does carry advantages
    grpo = load_config(None, [f"grpo.aggregation={aggregation}"]).grpo
    trainer = _TorchTrainer(model)
    shard = ShardRollout(
        0,
        batch,
        rewards.reshape(-1).tolist(),
        (rewards.reshape(-1) > 0).tolist(),
        advantages,
        keep,
        np.asarray(stats["zero_variance"], dtype=bool).reshape(-1),
        np.zeros(groups * group, dtype=bool),
    )
    update_policy(_run(model, trainer, grpo), [shard])

    assert len(trainer.gradients) == 1
    expected = _full_batch_gradient(model, batch, advantages, keep, grpo)
    assert expected.abs().max() > 0
    torch.testing.assert_close(trainer.gradients[0], expected, rtol=1e-4, atol=1e-6)
    if drop_groups:  # dropping a group is the same as training on the other groups alone
        rows = np.flatnonzero(keep)
        alone = RolloutBatch(
            *(
                t[rows]
                for t in (
                    batch.prompt_ids,
                    batch.prompt_mask,
                    batch.response_ids,
                    batch.response_mask,
                    batch.sampling_logprobs,
                )
            ),
            [""] * len(rows),
        )
        only_kept = _full_batch_gradient(model, alone, advantages[rows], np.ones(len(rows), dtype=bool), grpo)
        torch.testing.assert_close(trainer.gradients[0], only_kept, rtol=1e-4, atol=1e-6)


def test_short_run_raises_training_reward():
    """On-policy GRPO on a one-step bandit: reward = share of a completion's characters that are '7'.

    The untrained model emits '7' about once in twenty characters; 12 updates of 8 groups of 8 lift
    the share well above where it started (about 0.08 -> 0.7 over seeds 1-5).
    """
    torch.set_num_threads(1)
    model, tokenizer = _tiny_model()
    engine = HFGenerateEngine(model, tokenizer, log=lambda message: None)
    config = load_config(None, ["rollout.group_size=8", "rollout.max_new_tokens=4", "grpo.clip_high=0.2"])
    trainer = _TorchTrainer(model, lr=1e-2)
    run = _run(model, trainer, config.grpo)
    prompts = ["1+2=", "3*4=", "5-6=", "7+8=", "9*0=", "2+2=", "4-1=", "6*3="]
    history = []
    for _ in range(12):
        batch = engine.generate(prompts, config.rollout)
        rewards = torch.tensor([text.count("7") / max(len(text), 1) for text in batch.texts])
        history.append(float(rewards.mean()))
        advantages, stats = ops.group_advantages(rewards, config.rollout.group_size)
        n = len(rewards)
        shard = ShardRollout(
            0,
            batch,
            rewards.tolist(),
            (rewards > 0).tolist(),
            advantages,
            np.ones(n, dtype=bool),
            np.asarray(stats["zero_variance"], dtype=bool).reshape(-1),
            np.zeros(n, dtype=bool),
        )
        update_policy(run, [shard])
    first, last = np.mean(history[:4]), np.mean(history[-4:])
    assert last > first + 0.3, f"training reward did not rise: {np.round(history, 3).tolist()}"
