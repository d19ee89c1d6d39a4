"""Held-out evaluation: pass@1 as the mean accuracy over n samples per problem.

``evaluate`` samples ``eval.samples`` completions per held-out problem with a rollout engine and
scores them with ``scalingrl.rewards``; its RNG is forked and seeded from (seed, step) so an
evaluation never shifts the training run's random stream (resumed runs stay identical).
``python -m scalingrl.eval`` evaluates a checkpoint, a run folder or any HF model folder on a test set.

Left out on purpose: pass@k for k > 1 estimators and per-token scoring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["evaluate", "main", "cli"]


def evaluate(engine, rows: list[dict[str, Any]], prompts: list[str], eval_config, sampling_config, reward_config,
             seed: int = 0) -> dict[str, Any]:
    """Accuracy of ``engine`` on held-out ``rows`` (with their formatted ``prompts``).

    Returns {"accuracy": mean over problems and samples, "pass_at_n": fraction of problems with any
    correct sample, "accuracy_by_level": {level: accuracy}, "n_problems", "n_samples"}.
    """
    import dataclasses

    import torch

    from scalingrl.rewards import score_completions

    n = eval_config.samples
    sampling = dataclasses.replace(sampling_config, temperature=eval_config.temperature, group_size=max(n, 2),
                                   max_new_tokens=eval_config.max_new_tokens or sampling_config.max_new_tokens)
    correct_rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(rows), eval_config.batch_size):
            chunk_rows = rows[start : start + eval_config.batch_size]
            batch = engine.generate(prompts[start : start + eval_config.batch_size], sampling, group_size=n if n > 1 else None)
            group = n if n > 1 else sampling.group_size
            references = [row["answer"] for row in chunk_rows for _ in range(group)]
            _, correct = score_completions(batch.texts, references, reward_config)
            correct_rows.append(np.asarray(correct, dtype=bool).reshape(len(chunk_rows), group)[:, :n])
    correct = np.concatenate(correct_rows) if correct_rows else np.zeros((0, n), dtype=bool)
    by_level: dict[str, float] = {}
    levels = [row.get("level") for row in rows]
    for level in sorted({l for l in levels if l is not None and l == l}):
        members = [i for i, l in enumerate(levels) if l == level]
        by_level[str(level)] = float(correct[members].mean())
    return {"accuracy": float(correct.mean()) if correct.size else 0.0,
            "pass_at_n": float(correct.any(1).mean()) if correct.size else 0.0,
            "accuracy_by_level": by_level, "n_problems": len(rows), "n_samples": n}


def _resolve_model(target: str) -> tuple[str, Path | None]:
    """(HF model folder, run folder or None) for a run folder, checkpoint folder or model folder."""
    path = Path(target)
    if (path / "checkpoints").is_dir():
        from scalingrl.checkpoint import latest_checkpoint

        checkpoint = latest_checkpoint(path / "checkpoints")
        if checkpoint is None:
            raise SystemExit(f"{path} has no complete checkpoint")
        return str(checkpoint), path
    if (path / "manifest.json").exists() and (path / "model.safetensors").exists():
        return str(path), path.parent.parent
    return target, None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m scalingrl.eval TARGET [--config yaml] [key=value ...]``; prints and returns the result."""
    import torch

    from scalingrl.config import load_config
    from scalingrl.data import build_pools
    from scalingrl.model import format_prompts, load_model_and_tokenizer
    from scalingrl.rollout import make_engine

    parser = argparse.ArgumentParser(prog="python -m scalingrl.eval", description=(
        "Evaluate a run folder (its latest checkpoint), a checkpoint folder or an HF model folder on the "
        "held-out set of a config (the run's own config.yaml by default). Overrides: eval.size=500 eval.samples=8 "
        "data.eval_path=../shared/data/gsm8k/test.jsonl ..."))
    parser.add_argument("target", help="run folder, checkpoint folder or HF model folder")
    parser.add_argument("--config", default="", help="YAML config (default: the run's config.yaml, else quickstart)")
    parser.add_argument("--output", default="", help="write the result JSON here")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. eval.samples=8")
    args = parser.parse_args(argv)
    model_dir, run_dir = _resolve_model(args.target)
    config_path = args.config or (str(run_dir / "config.yaml") if run_dir and (run_dir / "config.yaml").exists() else "")
    config = load_config(config_path or None, args.overrides)
    torch.set_num_threads(max(config.optim.threads, 1))
    model_path = model_dir
    checkpoint = (Path(model_dir) / "manifest.json").exists()
    if checkpoint:  # a scalingrl checkpoint: weights on top of the base model
        from safetensors.torch import load_file

        model_path = config.model.path or _quickstart_path(config)
        model, tokenizer = load_model_and_tokenizer(model_path, config.model.dtype, config.model.trust_remote_code)
        model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")), strict=False)
    else:
        model, tokenizer = load_model_and_tokenizer(model_path, config.model.dtype, config.model.trust_remote_code)
    _, heldout = build_pools(config.data, config.eval.size, config.seed)
    rows = heldout.rows(np.arange(min(len(heldout), config.eval.size or len(heldout))))
    prompts = format_prompts(tokenizer, [r["prompt"] for r in rows], config.data.prompt_template,
                             config.model.use_chat_template, config.model.system_prompt)
    engine = make_engine(config.rollout, model, tokenizer, model_path, seed=config.seed,  # rollout.engine: hf or vllm
                         log=lambda line: print(line, file=sys.stderr))
    if checkpoint:
        engine.sync_weights(model)  # vLLM starts from the base folder: push the checkpoint's weights in place
    result = evaluate(engine, rows, prompts, config.eval, config.rollout, config.reward, config.seed)
    result["model"] = str(model_dir)
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
    return result


def _quickstart_path(config) -> str:
    from scalingrl.model import build_quickstart_model
    from scalingrl.synthetic import SyntheticTask

    return str(build_quickstart_model(config.model.tiny, SyntheticTask(config.data.synthetic)))


def cli() -> None:
    main(sys.argv[1:])


if __name__ == "__main__":
    cli()
