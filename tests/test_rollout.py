"""The HF generate rollout engine: shapes, group layout, and sampling log-probs that equal the
training-side log-probs of the same tokens (so the first GRPO ratio is exactly 1)."""

import pytest
import torch

from scalingrl.model import TinyModelConfig, _new_tiny_model, build_char_tokenizer, format_prompts
from scalingrl.rollout import HFGenerateEngine, SamplingConfig
from scalingrl.synthetic import ALPHABET


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer(ALPHABET)
    model = _new_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tokenizer)
    return model.eval(), tokenizer


def test_tokenizer_round_trip(tiny):
    _, tokenizer = tiny
    ids = tokenizer("12+3*4=")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == 8
    assert tokenizer.decode(ids, skip_special_tokens=True) == "12+3*4="
    assert format_prompts(tokenizer, ["1+1="], "{prompt}") == ["1+1="]  # no chat template: unchanged


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generate_shapes_and_logprobs(tiny, temperature):
    from scalingrl.grpo import response_logprobs

    model, tokenizer = tiny
    engine = HFGenerateEngine(model, tokenizer)
    config = SamplingConfig(group_size=3, temperature=temperature, max_new_tokens=7)
    torch.manual_seed(1)
    batch = engine.generate(["1+2=", "13*4-5="], config)
    n = 6
    assert batch.prompt_ids.shape[0] == n and batch.response_ids.shape == batch.response_mask.shape
    assert batch.response_ids.shape[1] <= 7 and len(batch.texts) == n
    torch.testing.assert_close(batch.prompt_ids[0], batch.prompt_ids[2])  # group-contiguous rows
    assert (batch.prompt_mask[0] == 0).sum() > 0  # the short prompt is left-padded
    with torch.no_grad():
        logprobs, entropy = response_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                              batch.response_mask, temperature)
    mask = batch.response_mask.bool()
    torch.testing.assert_close(logprobs[mask], batch.sampling_logprobs[mask], atol=1e-4, rtol=1e-4)
    assert (batch.sampling_logprobs[~mask] == 0).all() and (entropy[mask] >= 0).all()


def test_sampling_config_errors():
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        SamplingConfig(group_size=1)
    with pytest.raises(ValueError, match="engine must be"):
        SamplingConfig(engine="sglang")
