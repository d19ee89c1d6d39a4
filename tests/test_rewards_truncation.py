"""The rollout batch's per-sample ``truncated`` flags (HF engine) against an independent count of EOS
tokens, and the ``reward.truncated`` policy and ``truncated_fraction`` metric through a real GRPO run."""

import json

import pytest
import torch

from scalingrl.config import ConfigError, load_config
from scalingrl.quickstart import TinyModelConfig, build_char_tokenizer, new_tiny_model
from scalingrl.rollout import HFGenerateEngine, SamplingConfig
from scalingrl.synthetic import ALPHABET


def test_hf_engine_flags_completions_without_eos():
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer(ALPHABET)
    model = new_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tokenizer
    ).eval()
    engine = HFGenerateEngine(model, tokenizer)
    seen = set()
    for seed, max_new_tokens in ((1, 12), (2, 12), (3, 30)):
        torch.manual_seed(seed)
        batch = engine.generate(
            ["1+2=", "13*4-5=", "7*7="], SamplingConfig(group_size=4, max_new_tokens=max_new_tokens)
        )
        assert batch.truncated.dtype == torch.bool and batch.truncated.shape == (12,)
        for row in range(12):
            tokens = batch.response_ids[row][batch.response_mask[row].bool()].tolist()
            expected = tokenizer.eos_token_id not in tokens
            assert bool(batch.truncated[row]) == expected
            assert not expected or len(tokens) == max_new_tokens  # cut off exactly at the limit
            seen.add(expected)
    assert seen == {True, False}  # both kinds of rows were checked


def test_config_key_and_its_error():
    assert load_config(None, ["reward.truncated=mask"]).reward.truncated == "mask"
    assert load_config(None, []).reward.truncated == "zero"
    with pytest.raises((ConfigError, ValueError), match="reward.truncated must be one of score|zero|mask"):
        load_config(None, ["reward.truncated=drop"])


TINY = [
    "steps=2",
    "batch_size=4",
    "rollout.group_size=4",
    "rollout.max_new_tokens=3",
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=64",
    "model.tiny.warmstart_steps=20",
    "model.tiny.warmstart_batch=16",
    "data.synthetic.size=500",
    "eval.size=8",
    "eval.samples=2",
    "eval.every=0",
    "progress_bar=false",
    "log_every=1",
    "optim.threads=1",
    "tensorboard=false",
    "report=false",
    "save_every=0",
    "selection.method=uniform",
]


@pytest.mark.parametrize("policy", ["zero", "mask"])
def test_grpo_step_applies_the_policy_and_records_the_fraction(policy, tmp_path, monkeypatch):
    """max_new_tokens=3 cuts most completions off: with "zero" every cut-off one gets reward 0, with
    "mask" the rows left in the loss are at most the complete ones."""
    from scalingrl.train import main

    monkeypatch.setenv("SCALINGRL_CACHE", str(tmp_path / "cache"))
    config = load_config(None, TINY + [f"reward.truncated={policy}"])
    config.output_dir = str(tmp_path / "run")
    main(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "truncated_fraction" in row]
    assert len(steps) == 2
    for row in steps:
        assert 0.0 <= row["truncated_fraction"] <= 1.0
        if policy == "zero":
            assert row["reward_mean"] <= 1.0 - row["truncated_fraction"] + 1e-9
        else:
            assert row["groups_used_fraction"] <= 1.0 - row["truncated_fraction"] + 1e-9
    assert any(row["truncated_fraction"] > 0 for row in steps)
