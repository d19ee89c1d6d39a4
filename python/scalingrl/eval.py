"""Held-out evaluation: pass@1 as the mean accuracy over n samples per problem.

``evaluate`` generates exactly ``eval.samples`` completions per held-out problem with a rollout engine
(greedily at ``eval.temperature=0``) and scores them with ``scalingrl.rewards``; its RNG is forked and
seeded from (seed, step) so an evaluation never shifts the training run's random stream (resumed runs
stay identical). ``python -m scalingrl.eval`` evaluates a checkpoint, a run folder or any HF model folder
on a test set, with the command-line convention of ``scalingrl.train`` (``scalingrl.config`` helpers).

Left out on purpose: pass@k for k > 1 estimators and per-token scoring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["evaluate", "main", "cli", "EvalError"]


def evaluate(
    engine,
    rows: list[dict[str, Any]],
    prompts: list[str],
    eval_config,
    sampling_config,
    reward_config,
    seed: int = 0,
    log=None,
) -> dict[str, Any]:
    """Accuracy of ``engine`` on held-out ``rows`` (with their formatted ``prompts``).

    Generates exactly ``eval_config.samples`` completions per problem (``group_size`` of the engine
    call; GRPO's group of >= 2 does not apply), greedily when ``eval_config.temperature`` is 0.
    ``log`` (a print-like callable or None) gets one progress line per generate batch.

    Returns {"accuracy" and "pass_at_1": mean correctness over problems and samples (pass@1 under
    "decoding"), "decoding": {"method": "greedy" | "sampling", ...}, "pass_at_n": fraction of problems
    with any correct sample, "accuracy_by_level": {level: accuracy}, "n_problems", "n_samples",
    "generated_tokens", "wall_clock_s" (generation plus scoring)}.
    Raises RuntimeError if the engine returns another number of completions than asked for.
    """
    import dataclasses

    import torch

    from scalingrl.rewards import score_completions

    n = eval_config.samples
    sampling = dataclasses.replace(
        sampling_config,
        temperature=eval_config.temperature,
        max_new_tokens=eval_config.max_new_tokens or sampling_config.max_new_tokens,
    )
    correct_rows, generated_tokens, started = [], 0, time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(rows), eval_config.batch_size):
            chunk_rows = rows[start : start + eval_config.batch_size]
            batch = engine.generate(prompts[start : start + eval_config.batch_size], sampling, group_size=n)
            if len(batch.texts) != len(chunk_rows) * n:
                raise RuntimeError(
                    f"the rollout engine returned {len(batch.texts)} completions for {len(chunk_rows)} "
                    f"problems x {n} samples; expected {len(chunk_rows) * n}"
                )
            generated_tokens += int(batch.response_mask.to("cpu").sum())
            references = [row["answer"] for row in chunk_rows for _ in range(n)]
            _, correct = score_completions(batch.texts, references, reward_config)
            correct_rows.append(np.asarray(correct, dtype=bool).reshape(len(chunk_rows), n))
            if log is not None:
                done = start + len(chunk_rows)
                log(
                    f"eval {done}/{len(rows)} problems: {generated_tokens} tokens, "
                    f"accuracy {np.concatenate(correct_rows).mean():.3f}, {time.perf_counter() - started:.1f}s"
                )
    correct = np.concatenate(correct_rows) if correct_rows else np.zeros((0, n), dtype=bool)
    by_level: dict[str, float] = {}
    levels = [row.get("level") for row in rows]
    for level in sorted({value for value in levels if value is not None and value == value}):
        members = [i for i, value in enumerate(levels) if value == level]
        by_level[str(level)] = float(correct[members].mean())
    accuracy = float(correct.mean()) if correct.size else 0.0
    return {
        "accuracy": accuracy,
        "pass_at_1": accuracy,
        "decoding": _decoding(sampling),
        "pass_at_n": float(correct.any(1).mean()) if correct.size else 0.0,
        "accuracy_by_level": by_level,
        "n_problems": len(rows),
        "n_samples": n,
        "generated_tokens": generated_tokens,
        "wall_clock_s": time.perf_counter() - started,
    }


def _decoding(sampling) -> dict[str, Any]:
    """How the completions were decoded: greedy (temperature 0) or sampled, with the settings used."""
    if sampling.temperature == 0:
        return {"method": "greedy", "max_new_tokens": sampling.max_new_tokens}
    return {
        "method": "sampling",
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": sampling.max_new_tokens,
    }


class EvalError(RuntimeError):
    """The evaluation cannot start (no checkpoint, no data to evaluate on); the message says how to fix it."""


def _resolve_model(target: str) -> tuple[str, Path | None]:
    """(HF model folder, run folder or None) for a run folder, checkpoint folder or model folder."""
    path = Path(target)
    if (path / "checkpoints").is_dir():
        from scalingrl.checkpoint import latest_checkpoint

        checkpoint = latest_checkpoint(path / "checkpoints")
        if checkpoint is None:
            raise EvalError(f"{path} has no complete checkpoint (checkpoints/step-*/manifest.json) to evaluate")
        return str(checkpoint), path
    if (path / "manifest.json").exists() and (path / "model.safetensors").exists():
        return str(path), path.parent.parent
    return target, None


def _is_quickstart(model_dir: str) -> bool:
    """Whether ``model_dir`` is the quickstart model, or a checkpoint trained from it on the synthetic task."""
    path = Path(model_dir)
    if (path / "scalingrl_build.json").exists():
        return True
    if (path / "manifest.json").exists():
        from scalingrl.checkpoint import read_manifest

        fingerprint = read_manifest(path).get("fingerprint", {})
        return fingerprint.get("model") == "quickstart" and fingerprint.get("data") == "synthetic"
    return False


def _check_data_is_known(target: str, model_dir: str, config_file, overrides: list[str]) -> None:
    """Refuse to fall back to the synthetic arithmetic set for a model that was not trained on it."""
    if config_file or any(word.split("=", 1)[0].strip().startswith("data.") for word in overrides):
        return
    if _is_quickstart(model_dir):
        return
    raise EvalError(
        f"{target} has no scalingrl config.yaml that says which held-out problems to evaluate on. Pass them: "
        "--config smollm2_gsm8k (a preset name) or --config FILE.yaml, or data overrides such as "
        "data.source=file data.path=../shared/data/gsm8k/train.jsonl data.eval_path=../shared/data/gsm8k/test.jsonl "
        "(JSONL/JSON/Parquet rows with data.prompt_field and data.answer_field; data.source=synthetic evaluates on "
        "the synthetic arithmetic set on purpose)"
    )


def build_parser() -> argparse.ArgumentParser:
    from scalingrl.config import EvalConfig, add_config_arguments, describe_fields

    parser = argparse.ArgumentParser(
        prog="python -m scalingrl.eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Evaluate a run folder (its latest checkpoint), a checkpoint folder or an HF model folder on the "
            "held-out set of a config: --config if given, else the run's own config.yaml, else the "
            "quickstart preset with the overrides; a plain model folder needs --config or data.* overrides "
            "(the quickstart model evaluates on its synthetic set)."
        ),
        epilog="eval overrides (key=value; every other key of python -m scalingrl.train --help works too):\n"
        + "\n".join(describe_fields(EvalConfig(), "eval.")),
    )
    parser.add_argument("target", help="run folder, checkpoint folder or HF model folder")
    add_config_arguments(
        parser,
        default=None,
        config_help=(
            "preset name in configs/ or a YAML file (default: the run's config.yaml; required for a plain model folder "
            "unless data.* overrides say which data)"
        ),
    )
    parser.add_argument("--output", default="", help="also write the result JSON here")
    return parser


def _split_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, list[str]]:
    """(target, overrides) from the positionals, whatever order they came in."""
    from scalingrl.config import is_override

    words = [args.target, *args.overrides]
    targets = [word for word in words if not is_override(word)]
    if len(targets) != 1:
        parser.error(f"expected one run, checkpoint or model folder and key=value overrides, got {targets or words}")
    return targets[0], [word for word in words if is_override(word)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m scalingrl.eval TARGET [--config preset|yaml] [--output json] [key=value ...]``.

    Prints and returns the result of ``evaluate`` plus "model". Bad input (config, data, checkpoint,
    model folder) ends in ``SystemExit("error: ...")`` without a traceback, as ``scalingrl.train`` does.
    """
    from scalingrl.checkpoint import CheckpointError
    from scalingrl.config import ConfigError, parse_command_line
    from scalingrl.data import DataError

    parser = build_parser()
    args = parse_command_line(parser, argv)
    target, args.overrides = _split_target(parser, args)
    try:
        result = _run(target, args)
    except (ConfigError, DataError, CheckpointError, EvalError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
    return result


def _run(target: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from scalingrl.config import config_from_args, resolve_preset
    from scalingrl.data import build_pools, format_prompts
    from scalingrl.model import load_model_and_tokenizer
    from scalingrl.rollout import make_engine

    model_dir, run_dir = _resolve_model(target)
    run_config = run_dir / "config.yaml" if run_dir and (run_dir / "config.yaml").exists() else None
    _check_data_is_known(target, model_dir, args.config or run_config, args.overrides)
    _, config = config_from_args(args, fallback=run_config or resolve_preset("quickstart"))
    _, heldout = build_pools(config.data, config.eval.size, config.seed)  # data errors before any model work
    if config.optim.threads:
        torch.set_num_threads(config.optim.threads)
    model_path = model_dir
    checkpoint = (Path(model_dir) / "manifest.json").exists()
    if checkpoint:  # a scalingrl checkpoint: weights on top of the base model
        from safetensors.torch import load_file

        model_path = config.model.path or _quickstart_path(config)
        model, tokenizer = load_model_and_tokenizer(model_path, config.model.dtype, config.model.trust_remote_code)
        model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")), strict=False)
    else:
        model, tokenizer = load_model_and_tokenizer(model_dir, config.model.dtype, config.model.trust_remote_code)
    rows = heldout.rows(np.arange(min(len(heldout), config.eval.size or len(heldout))))
    prompts = format_prompts(
        tokenizer,
        [r["prompt"] for r in rows],
        config.data.prompt_template,
        config.model.use_chat_template,
        config.model.system_prompt,
    )
    engine = make_engine(
        config.rollout,
        model,
        tokenizer,
        model_path,
        seed=config.seed,  # rollout.engine: hf or vllm
        log=lambda line: print(line, file=sys.stderr),
    )
    if checkpoint:
        engine.sync_weights(model)  # vLLM starts from the base folder: push the checkpoint's weights in place
    result = evaluate(
        engine,
        rows,
        prompts,
        config.eval,
        config.rollout,
        config.reward,
        config.seed,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    result["model"] = str(model_dir)
    return result


def _quickstart_path(config) -> str:
    from scalingrl.quickstart import build_quickstart_model
    from scalingrl.synthetic import SyntheticTask

    return str(build_quickstart_model(config.model.tiny, SyntheticTask(config.data.synthetic)))


def cli() -> None:
    main(sys.argv[1:])


if __name__ == "__main__":
    cli()
