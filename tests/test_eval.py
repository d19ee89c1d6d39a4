"""Held-out evaluation: exactly ``eval.samples`` completions per problem, greedy decoding (temperature
0) equal to transformers' own argmax decoding, and the ``python -m scalingrl.eval`` command line, which
parses like ``scalingrl.train`` and ends bad input in a one-line ``error: ...``.

Uses a tiny randomly initialised Llama with the character tokenizer (no model download, seconds)."""

import json

import pytest
import torch

from scalingrl.config import EvalConfig, load_config
from scalingrl.eval import evaluate
from scalingrl.quickstart import TinyModelConfig, build_char_tokenizer, new_tiny_model
from scalingrl.rewards import RewardConfig
from scalingrl.rollout import HFGenerateEngine, SamplingConfig
from scalingrl.synthetic import ALPHABET

ROWS = [
    {"prompt": p, "answer": a}
    for p, a in [("1+2=", "3"), ("13*4-5=", "47"), ("7-9=", "-2"), ("2*3*4=", "24"), ("88+1=", "89")]
]
PROMPTS = [row["prompt"] for row in ROWS]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer(ALPHABET)
    tokenizer.padding_side = "left"
    model = new_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tokenizer)
    return model.eval().double(), tokenizer  # float64: argmax ties between padded and unpadded runs cannot flip


class RecordingEngine:
    """Wraps an engine; keeps every batch and counts the rows ``model.generate`` really decoded."""

    def __init__(self, engine):
        self.engine, self.batches, self.decoded_rows = engine, [], 0
        generate = engine.model.generate

        def counting_generate(*args, **kwargs):
            self.decoded_rows += kwargs["input_ids"].shape[0]
            return generate(*args, **kwargs)

        engine.model.generate = counting_generate

    def generate(self, prompts, config, group_size=None):
        batch = self.engine.generate(prompts, config, group_size)
        self.batches.append(batch)
        return batch

    def texts(self):
        return [text for batch in self.batches for text in batch.texts]


def _evaluate(tiny, seed=0, **eval_fields):
    model, tokenizer = tiny
    engine = RecordingEngine(HFGenerateEngine(model, tokenizer))
    eval_config = EvalConfig(**{"size": len(ROWS), "batch_size": 2, "max_new_tokens": 6, **eval_fields})
    result = evaluate(engine, ROWS, PROMPTS, eval_config, SamplingConfig(group_size=4), RewardConfig(), seed=seed)
    del model.generate  # drop the counting wrapper (an instance attribute) again
    return result, engine


@pytest.mark.parametrize("samples", [1, 3])
def test_samples_generates_exactly_that_many_completions(tiny, samples):
    result, engine = _evaluate(tiny, samples=samples)
    assert engine.decoded_rows == len(ROWS) * samples  # not 2N for samples=1
    assert len(engine.texts()) == len(ROWS) * samples
    assert [len(batch.texts) for batch in engine.batches] == [2 * samples, 2 * samples, samples]
    assert result["n_samples"] == samples and result["n_problems"] == len(ROWS)
    assert result["decoding"] == {"method": "sampling", "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 6}
    assert result["generated_tokens"] == sum(int(b.response_mask.sum()) for b in engine.batches)


def _argmax_loop(model, tokenizer, prompt, max_new_tokens):
    """Token-by-token argmax over full forwards (no cache, no padding)."""
    ids = tokenizer(prompt)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
            out.append(token)
            if token == tokenizer.eos_token_id:
                break
    return out


def test_greedy_is_deterministic_and_equals_hf_argmax_decoding(tiny):
    model, tokenizer = tiny
    first, engine = _evaluate(tiny, seed=0, samples=1, temperature=0.0)
    second, engine_again = _evaluate(tiny, seed=12345, samples=1, temperature=0.0)
    assert first["decoding"] == {"method": "greedy", "max_new_tokens": 6}
    assert engine.texts() == engine_again.texts() and first["accuracy"] == second["accuracy"]
    responses = [
        row[mask.bool()].tolist()
        for batch in engine.batches
        for row, mask in zip(batch.response_ids, batch.response_mask)
    ]
    for prompt, response in zip(PROMPTS, responses):
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():  # the reference: transformers' own greedy decoding, one unpadded prompt at a time
            reference = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=6,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )[0, encoded["input_ids"].shape[1] :].tolist()
        if tokenizer.eos_token_id in reference:
            reference = reference[: reference.index(tokenizer.eos_token_id) + 1]
        assert response == reference == _argmax_loop(model, tokenizer, prompt, 6)


def test_sampled_evaluation_differs_from_greedy(tiny):
    """Guards the greedy test: at temperature 1 the same prompts do not all decode to the argmax."""
    _, greedy = _evaluate(tiny, samples=1, temperature=0.0)
    _, sampled = _evaluate(tiny, samples=1, temperature=1.0)
    assert greedy.texts() != sampled.texts()


def test_temperature_zero_rules():
    assert SamplingConfig(temperature=0.0).temperature == 0.0  # the engine decodes greedily
    with pytest.raises(ValueError, match="eval.samples=1"):
        EvalConfig(temperature=0.0, samples=4)
    with pytest.raises(ValueError, match="eval.temperature must be > 0, or 0"):
        EvalConfig(temperature=-1.0)
    with pytest.raises(ValueError, match="rollout.temperature must be > 0 for GRPO"):
        load_config(None, ["rollout.temperature=0"])


# ---- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory):
    model, tokenizer = tiny
    folder = tmp_path_factory.mktemp("model")
    model.float().save_pretrained(folder)
    model.double()
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    lines = "\n".join(json.dumps({"question": row["prompt"], "answer": f"work #### {row['answer']}"}) for row in ROWS)
    (folder / "train.jsonl").write_text(lines)
    (folder / "test.jsonl").write_text(lines)
    return [f"data.path={folder / 'train.jsonl'}", f"data.eval_path={folder / 'test.jsonl'}"]


FAST = [
    "rollout.engine=hf",
    "eval.size=3",
    "eval.samples=1",
    "eval.temperature=0",
    "eval.max_new_tokens=5",
    "optim.threads=1",
]


def test_eval_parses_like_train_in_any_order(model_dir, data_args, tmp_path):
    from scalingrl.config import preset_dir
    from scalingrl.eval import main

    model, out = str(model_dir), tmp_path / "result.json"
    documented = main([model, "--config", "smollm2_gsm8k", *FAST, *data_args, "--output", str(out)])
    assert documented["n_problems"] == 3 and documented["n_samples"] == 1
    assert json.loads(out.read_text())["decoding"]["method"] == "greedy"
    yaml_path = str(preset_dir() / "smollm2_gsm8k.yaml")
    shuffled = main([*FAST[:2], "--config", yaml_path, *data_args, model, *FAST[2:]])
    options_first = main(["--output", str(tmp_path / "b.json"), "--config", yaml_path, model, *data_args, *FAST])
    for result in (shuffled, options_first):
        assert {k: result[k] for k in ("accuracy", "n_problems", "decoding", "generated_tokens")} == {
            k: documented[k] for k in ("accuracy", "n_problems", "decoding", "generated_tokens")
        }


def test_train_and_eval_share_the_parser_convention():
    from scalingrl.config import parse_command_line
    from scalingrl.eval import build_parser as eval_parser
    from scalingrl.train import build_parser as train_parser

    args = parse_command_line(
        train_parser(), ["steps=3", "--config", "smollm2_gsm8k", "eval.size=2", "--output-dir", "x"]
    )
    assert (args.config, args.overrides, args.output_dir) == ("smollm2_gsm8k", ["steps=3", "eval.size=2"], "x")
    args = parse_command_line(eval_parser(), ["m", "--config", "smollm2_gsm8k", "eval.size=2"])
    assert (args.target, args.config, args.overrides) == ("m", "smollm2_gsm8k", ["eval.size=2"])


def test_plain_model_folder_without_data_is_an_error(model_dir, data_args):
    from scalingrl.eval import main

    with pytest.raises(
        SystemExit, match=r"^error: .*no scalingrl config.yaml.*--config smollm2_gsm8k.*data.eval_path="
    ):
        main([str(model_dir), *FAST])
    assert main([str(model_dir), "data.source=file", *data_args, *FAST])["n_problems"] == 3  # data given: fine


def test_quickstart_model_folder_evaluates_on_its_synthetic_set(model_dir, tmp_path):
    import shutil

    from scalingrl.eval import main

    quickstart = tmp_path / "quickstart"
    shutil.copytree(model_dir, quickstart)
    (quickstart / "scalingrl_build.json").write_text("{}")  # what build_quickstart_model leaves in its folder
    result = main([str(quickstart), *FAST])
    assert result["n_problems"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--config", "no_such_preset"],
            r"^error: config file .*no_such_preset.yaml' not found; presets in configs/: \[",
        ),
        (["--config", "smollm2_gsm8k", "eval.size=oops"], r"^error: eval.size must be an integer, got 'oops'"),
        (
            ["--config", "smollm2_gsm8k", "data.path=/no/such/train.jsonl"],
            r"^error: .*/no/such/train.jsonl.*does not exist",
        ),
        (
            ["--config", "smollm2_gsm8k", "eval.samples=2", "eval.temperature=0"],
            r"^error: eval.temperature=0 \(greedy\)",
        ),
    ],
)
def test_bad_input_ends_in_one_error_line(model_dir, argv, message):
    from scalingrl.eval import main

    with pytest.raises(SystemExit, match=message):
        main([str(model_dir), *argv])


def test_bad_target(tmp_path, data_args):
    from scalingrl.eval import main

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"^error: .*run has no complete checkpoint"):
        main([str(tmp_path / "run"), *FAST])
    with pytest.raises(SystemExit, match=r"^error: could not load a causal LM from .*missing"):
        main([str(tmp_path / "missing"), "--config", "smollm2_gsm8k", *data_args, *FAST])
