"""The rollout contract on the HF generate engine: prompt tokenization (no double BOS), the shared batch
assembly, sampling log-probs that equal the trainer's log-probs of the same tokens (so the first GRPO
ratio is exactly 1) with the model's own generation defaults ignored, ``truncated`` flags, and the
model-loading helpers (missing folder error, BOS repair of converted tokenizers)."""

import pytest
import torch

from scalingrl.data import format_prompts
from scalingrl.model import CONVERT_SMOLLM2_COMMAND, ensure_bos_token, load_model_and_tokenizer
from scalingrl.quickstart import TinyModelConfig, build_char_tokenizer, new_tiny_model
from scalingrl.rollout import (
    HFGenerateEngine,
    SamplingConfig,
    assemble_batch,
    encode_prompts,
    ignored_generation_defaults,
    stop_token_ids,
)
from scalingrl.synthetic import ALPHABET

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer(ALPHABET + "[]abcdefghijklmnopqrstuvwxyz")
    model = new_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tokenizer)
    return model.eval(), tokenizer


def test_tokenizer_round_trip(tiny):
    _, tokenizer = tiny
    ids = tokenizer("12+3*4=")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == 8
    assert tokenizer.decode(ids, skip_special_tokens=True) == "12+3*4="
    assert format_prompts(tokenizer, ["1+1="], "{prompt}") == ["1+1="]  # no chat template: unchanged


def test_encode_prompts_one_bos_with_and_without_chat_template(tiny):
    _, tokenizer = tiny
    plain = encode_prompts(tokenizer, ["1+1="])[0]
    assert plain == tokenizer("1+1=")["input_ids"] and plain.count(tokenizer.bos_token_id) == 1
    templated = build_char_tokenizer(ALPHABET + "[]abcdefghijklmnopqrstuvwxyz")
    templated.chat_template = CHAT_TEMPLATE
    text = format_prompts(templated, ["1+1="], "{prompt}")[0]
    assert text.startswith("<bos>[user]1+1=")
    assert templated(text)["input_ids"][:2] == [templated.bos_token_id] * 2  # what the old engine fed the model
    ids = encode_prompts(templated, [text])[0]
    assert ids[0] == templated.bos_token_id and ids[1] != templated.bos_token_id
    assert ids.count(templated.bos_token_id) == 1 and templated.decode(ids[1:]) == "[user]1+1=[assistant]"


def test_encode_prompts_rejects_long_prompt_by_index(tiny):
    _, tokenizer = tiny
    with pytest.raises(ValueError, match=r"prompt 1 has 9 tokens, more than rollout.max_prompt_tokens=5"):
        encode_prompts(tokenizer, ["1=", "12345678"], max_prompt_tokens=5)


def test_assemble_batch_layout_and_errors(tiny):
    _, tokenizer = tiny
    batch = assemble_batch(
        tokenizer,
        [[1, 5, 6], [1, 7]],
        2,
        [[8], [9, 2], [], [5, 5, 5]],
        [[-0.5], [-1.0, -2.0], [], [-0.1, -0.2, -0.3]],
        [False, False, True, True],
        weight_version=3,
    )
    assert batch.prompt_ids.tolist() == [[1, 5, 6], [1, 5, 6], [0, 1, 7], [0, 1, 7]]
    assert batch.prompt_mask.tolist() == [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert batch.response_ids.tolist() == [[8, 0, 0], [9, 2, 0], [0, 0, 0], [5, 5, 5]]
    assert batch.response_mask.sum(1).tolist() == [1, 2, 0, 3]
    torch.testing.assert_close(batch.sampling_logprobs[3], torch.tensor([-0.1, -0.2, -0.3]))
    assert batch.truncated.tolist() == [False, False, True, True] and batch.weight_version == 3
    assert batch.prompt_ids.dtype == torch.long and batch.response_mask.dtype == torch.float32
    with pytest.raises(ValueError, match="expected 4 responses"):
        assemble_batch(tokenizer, [[1], [1]], 2, [[8]] * 3, [[0.0]] * 3, [False] * 3)
    with pytest.raises(ValueError, match="response 1: 2 tokens but 1 log-probs"):
        assemble_batch(tokenizer, [[1]], 2, [[8], [8, 9]], [[0.0], [0.0]], [False, False])


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generate_shapes_and_logprobs(tiny, temperature):
    from scalingrl.grpo import response_logprobs

    model, tokenizer = tiny
    engine = HFGenerateEngine(model, tokenizer, log=lambda _: None)
    config = SamplingConfig(group_size=3, temperature=temperature, max_new_tokens=7)
    torch.manual_seed(1)
    batch = engine.generate(["1+2=", "13*4-5="], config)
    n = 6
    assert batch.prompt_ids.shape[0] == n and batch.response_ids.shape == batch.response_mask.shape
    assert batch.response_ids.shape[1] <= 7 and len(batch.texts) == n and batch.truncated.shape == (n,)
    torch.testing.assert_close(batch.prompt_ids[0], batch.prompt_ids[2])  # group-contiguous rows
    assert (batch.prompt_mask[0] == 0).sum() > 0  # the short prompt is left-padded
    lengths = batch.response_mask.sum(1).long()
    last = batch.response_ids[torch.arange(n), (lengths - 1).clamp_min(0)]
    assert batch.truncated.tolist() == [
        bool(length == 7 and t != tokenizer.eos_token_id) for length, t in zip(lengths, last)
    ]
    with torch.no_grad():
        logprobs, entropy = response_logprobs(
            model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, temperature
        )
    mask = batch.response_mask.bool()
    torch.testing.assert_close(logprobs[mask], batch.sampling_logprobs[mask], atol=1e-4, rtol=1e-4)
    assert (batch.sampling_logprobs[~mask] == 0).all() and (entropy[mask] >= 0).all()


def test_generation_config_processors_are_ignored_and_reported(tiny):
    """A shipped repetition penalty / top-k would change the sampling distribution: the engine must not
    apply them (log-probs still equal the trainer's) and must report them."""
    from scalingrl.grpo import response_logprobs

    model, tokenizer = tiny
    shipped = model.generation_config
    model.generation_config = shipped.__class__(repetition_penalty=3.0, top_k=5, temperature=0.3, do_sample=True)
    lines = []
    try:
        engine = HFGenerateEngine(model, tokenizer, log=lines.append)
        torch.manual_seed(2)
        batch = engine.generate(["11+11=", "7*7="], SamplingConfig(group_size=4, temperature=1.0, max_new_tokens=12))
        assert model.generation_config.repetition_penalty == 3.0  # restored after generate
    finally:
        model.generation_config = shipped
    assert "repetition_penalty" in lines[0] and "top_k" in lines[0] and "not applied" in lines[0]
    assert engine.ignored_defaults == {"temperature": 0.3, "top_k": 5, "repetition_penalty": 3.0}
    with torch.no_grad():
        logprobs, _ = response_logprobs(
            model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, 1.0
        )
    mask = batch.response_mask.bool()
    torch.testing.assert_close(logprobs[mask], batch.sampling_logprobs[mask], atol=1e-4, rtol=1e-4)
    assert ignored_generation_defaults({"temperature": 1.0, "top_p": 1.0}) == {}


def test_stop_token_ids_merges_generation_config(tiny):
    _, tokenizer = tiny
    from transformers import GenerationConfig

    assert stop_token_ids(tokenizer) == [tokenizer.eos_token_id]
    assert stop_token_ids(tokenizer, GenerationConfig(eos_token_id=[tokenizer.eos_token_id, 7])) == [
        tokenizer.eos_token_id,
        7,
    ]


def test_weight_version_counts_syncs(tiny):
    model, tokenizer = tiny
    engine = HFGenerateEngine(model, tokenizer, log=lambda _: None)
    engine.sync_weights(model)
    engine.sync_weights(model)
    assert engine.weight_version == 2


def test_sampling_config_errors():
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        SamplingConfig(group_size=1)
    with pytest.raises(ValueError, match="engine must be"):
        SamplingConfig(engine="sglang")
    with pytest.raises(ValueError, match="vllm_dtype"):
        SamplingConfig(vllm_dtype="int8")
    assert SamplingConfig(max_prompt_tokens=300, max_new_tokens=256).max_model_len == 556


def test_missing_model_folder_names_the_conversion_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder") as error:
        load_model_and_tokenizer(str(tmp_path / "models" / "smollm2-135m"))
    assert CONVERT_SMOLLM2_COMMAND in str(error.value) and "accelerate" in CONVERT_SMOLLM2_COMMAND


@pytest.mark.parametrize("add_bos", [True, False])
def test_ensure_bos_token_fixes_and_survives_save(tmp_path, add_bos):
    """A converted tokenizer that lost (or gained) its BOS is repaired, and the repair is saved."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    tokenizer = build_char_tokenizer(ALPHABET)  # adds <bos> by construction
    if add_bos:  # simulate a GGUF tokenizer that lost its BOS
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    assert (tokenizer("1+1")["input_ids"][0] == tokenizer.bos_token_id) != add_bos
    assert ensure_bos_token(tokenizer, add_bos) is True
    assert ensure_bos_token(tokenizer, add_bos) is False  # already right: untouched
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = reloaded("1+1")["input_ids"]
    assert (ids[0] == reloaded.bos_token_id) == add_bos and len(ids) == 3 + add_bos


@pytest.mark.parametrize(
    "cores, rank, size, expected",
    [
        ([0, 1], 0, 1, "0-1"),
        ([0, 1], 0, 2, "0"),
        ([0, 1], 1, 2, "1"),
        ([3], 0, 1, "3"),
        (list(range(8)), 1, 2, "4-7"),
        (list(range(7)), 0, 3, "0-2"),
        (list(range(7)), 2, 3, "5-6"),
        ([0, 2, 4, 6], 0, 1, "0,2,4,6"),
        ([0, 1], 2, 4, "0-1"),  # fewer cores than ranks: share them all
    ],
)
def test_cpu_bind_gives_each_local_rank_its_own_cores(cores, rank, size, expected):
    from scalingrl.rollout import cpu_bind

    assert cpu_bind(cores, rank, size) == expected


def test_cpu_bind_shares_cover_every_core_once():
    from scalingrl.rollout import cpu_bind

    cores = list(range(13))
    shares = [cpu_bind(cores, rank, 4) for rank in range(4)]
    bound = [c for share in shares for lo, hi in [share.split("-")] for c in range(int(lo), int(hi) + 1)]
    assert sorted(bound) == cores
    with pytest.raises(ValueError, match="LOCAL_RANK 4 is outside"):
        cpu_bind(cores, 4, 4)
    with pytest.raises(ValueError, match="no CPU cores"):
        cpu_bind([], 0, 1)


def test_response_logprobs_builds_only_response_logits(tiny):
    """The policy computes logits for the response positions only (``logits_to_keep``), and a model
    whose forward lacks that argument gets the full logits: same log-probs and gradients either way."""
    from scalingrl.grpo import response_logprobs

    model, tokenizer = tiny
    engine = HFGenerateEngine(model, tokenizer, log=lambda _: None)
    torch.manual_seed(3)
    batch = engine.generate(["12+3=", "4*4-1="], SamplingConfig(group_size=2, max_new_tokens=6))
    shapes = []
    hook = model.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.logits.shape)))

    class NoKeep(torch.nn.Module):  # a forward without logits_to_keep, as some custom models have
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

    args = (batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, 0.7)
    try:
        results = []
        for wrapped in (model, NoKeep(model)):
            model.zero_grad(set_to_none=True)
            logprobs, entropy = response_logprobs(wrapped, *args)
            (logprobs * batch.response_mask).sum().backward()
            results.append((logprobs.detach(), entropy.detach(), [p.grad.clone() for p in model.parameters()]))
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    n, p, r = batch.prompt_ids.shape[0], batch.prompt_ids.shape[1], batch.response_ids.shape[1]
    assert shapes[0][:2] == (n, r + 1) and shapes[1][:2] == (n, p + r)
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)
    for grad_keep, grad_full in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(grad_keep, grad_full, rtol=1e-4, atol=1e-6)
