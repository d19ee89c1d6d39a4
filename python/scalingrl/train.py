"""``python -m scalingrl.train``: the GRPO loop, with prompts chosen by DES and the curriculum.

Each step reads like the algorithm: select prompts, roll out G samples each, score them, compute
group advantages, update the policy, feed the outcomes back to the selector, record. The pieces
live elsewhere: ``scalingrl.selection`` (DES, curriculum, baselines), ``scalingrl.rollout``
(engines), ``scalingrl.rewards``, ``scalingrl.ops`` (advantages, log-probs, token statistics),
``scalingrl.grpo`` (loss), ``scalingrl.training`` (DeepSpeed), ``scalingrl.checkpoint``,
``scalingrl.recording`` and ``scalingrl.report``. ``main(config)`` is importable; ``cli()`` parses
``--config``, ``--output-dir``, ``--resume`` and dotted overrides.

Left out on purpose: multi-node launch scripts (DeepSpeed's launcher sets the env this code reads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "cli", "RunError"]


class RunError(RuntimeError):
    """The run cannot start or continue (output folder, resume state); the message says why."""


@dataclasses.dataclass
class Run:
    """Everything one training process holds."""

    config: Any
    out_dir: Path
    pool: Any
    heldout_rows: list
    heldout_prompts: list
    tokenizer: Any
    trainer: Any
    rollout: Any
    selector: Any
    recorder: Any
    selection_log: Any
    ref_model: Any
    model_path: str
    start_step: int = 0
    extra: dict = dataclasses.field(default_factory=dict)


def _prepare_output_dir(config, resume: bool) -> Path:
    out = Path(config.output_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise RunError(f"output directory {str(out)!r} is not writable ({error}); pass --output-dir to a writable folder") from error
    if not resume and any((out / "checkpoints").glob("step-*")):
        raise RunError(f"{out} already holds checkpoints; pass --resume to continue it or choose another --output-dir")
    return out


def _fingerprint(config, pool_size: int) -> dict[str, Any]:
    return {"model": config.model.path or "quickstart", "pool_size": pool_size, "batch_size": config.batch_size,
            "group_size": config.rollout.group_size, "selection": getattr(config.selection, "method", "?"),
            "seed": config.seed, "data": config.data.path or config.data.source}


def _load_policy(config, log):
    from scalingrl.model import build_quickstart_model, load_model_and_tokenizer
    from scalingrl.synthetic import SyntheticTask

    path = config.model.path
    if not path:
        path = str(build_quickstart_model(config.model.tiny, SyntheticTask(config.data.synthetic), log=log))
    model, tokenizer = load_model_and_tokenizer(path, config.model.dtype, config.model.trust_remote_code)
    return path, model, tokenizer


def setup(config, resume: bool = False) -> Run:
    """Validate paths, load data and model, build engines and selector, restore a checkpoint."""
    import torch

    from scalingrl import records, selection
    from scalingrl.checkpoint import latest_checkpoint, load_checkpoint, set_rng_state
    from scalingrl.config import to_dict
    from scalingrl.data import build_pools
    from scalingrl.model import format_prompts
    from scalingrl.recording import MetricsRecorder
    from scalingrl.rollout import make_engine
    from scalingrl.training import DeepSpeedEngine

    out = _prepare_output_dir(config, resume)
    if config.optim.threads:
        torch.set_num_threads(config.optim.threads)
    pool, heldout = build_pools(config.data, config.eval.size, config.seed)  # data errors before any model work
    checkpoint = latest_checkpoint(out / "checkpoints") if resume else None
    fingerprint = _fingerprint(config, len(pool))
    state = load_checkpoint(checkpoint, fingerprint) if checkpoint else None
    (out / "config.yaml").write_text(__import__("yaml").safe_dump(to_dict(config), sort_keys=False))
    torch.manual_seed(config.seed)
    model_path, model, tokenizer = _load_policy(config, print)
    ref_model = None
    if config.grpo.kl_coef > 0:
        import copy

        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
    trainer = DeepSpeedEngine(model, config.optim)
    selector = selection.make_selector(pool.pool_info(), config.selection, seed=config.seed)
    start_step = 0
    if state is not None:
        trainer.load_optimizer_state_dict(state["optimizer"])
        selector.load_state_dict(state["selection"])
        set_rng_state(state["rng"])
        start_step = state["step"]
    recorder = MetricsRecorder(out, config.steps, start_step, config.tensorboard, config.progress_bar)
    recorder.truncate_after(start_step)
    selection_log = records.SelectionLog(out / "selection_log.jsonl", keep_before_step=start_step)
    heldout_rows = heldout.rows(np.arange(min(len(heldout), config.eval.size or len(heldout))))
    heldout_prompts = format_prompts(tokenizer, [row["prompt"] for row in heldout_rows], config.data.prompt_template,
                                     config.model.use_chat_template, config.model.system_prompt)
    rollout = make_engine(config.rollout, trainer.module, tokenizer, model_path)
    run = Run(config, out, pool, heldout_rows, heldout_prompts, tokenizer, trainer, rollout, selector, recorder,
              selection_log, ref_model, model_path, start_step, dict(state["extra"]) if state else {})
    if checkpoint:
        recorder.write(f"resumed from {checkpoint} at step {start_step}")
    return run


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def update_policy(run: Run, batch, advantages, keep):
    """Optimizer step(s) on one rollout batch; returns (stats, per-row entropy, per-row logprobs).

    ``keep`` (N,) bool drops rows from the loss (the selector's ``loss_groups`` hook) while their entropies
    are still measured for the selector. Rows whose loss terms are exactly 0 (zero advantage and no
    KL term) only get a no-grad forward; the loss keeps their tokens in its denominator, so the
    gradient equals that of the full batch.
    """
    import torch

    from scalingrl.grpo import policy_loss, response_logprobs

    config = run.config
    n = batch.response_ids.shape[0]
    entropy = torch.zeros_like(batch.response_mask)
    logprobs_all = torch.zeros_like(batch.response_mask)
    keep_t = torch.as_tensor(keep, dtype=batch.response_mask.dtype)
    needs_grad = keep & ((advantages.numpy() != 0) | (config.grpo.kl_coef > 0))
    totals: dict[str, list[float]] = {}
    forward = run.trainer.forward_model()

    def score(rows, model, grad):
        index = torch.as_tensor(rows, dtype=torch.long)
        with torch.set_grad_enabled(grad):
            out = response_logprobs(model, batch.prompt_ids[index], batch.prompt_mask[index], batch.response_ids[index],
                                    batch.response_mask[index], config.rollout.temperature)
        entropy[index] = out[1].detach() * batch.response_mask[index]
        logprobs_all[index] = out[0].detach() * batch.response_mask[index]
        return index, out[0]

    for rows in np.array_split(np.arange(n), config.grpo.updates_per_batch):
        loss_mask_all = batch.response_mask[rows] * keep_t[rows].unsqueeze(-1)
        normalizer = float(loss_mask_all.sum()) if config.grpo.aggregation == "token_mean" else float((loss_mask_all.sum(-1) > 0).sum())
        if (~needs_grad[rows]).any():
            score(rows[~needs_grad[rows]], run.trainer.module, grad=False)
        active = rows[needs_grad[rows]]
        if len(active) == 0:
            continue
        index, logprobs = score(active, forward, grad=True)
        ref_logprobs = None
        if run.ref_model is not None:
            with torch.no_grad():
                ref_logprobs, _ = response_logprobs(run.ref_model, batch.prompt_ids[index], batch.prompt_mask[index],
                                                    batch.response_ids[index], batch.response_mask[index],
                                                    config.rollout.temperature)
        loss, stats = policy_loss(logprobs, batch.sampling_logprobs[index], advantages[index],
                                  batch.response_mask[index] * keep_t[index].unsqueeze(-1), config.grpo, ref_logprobs,
                                  normalizer=max(normalizer, 1.0))
        run.trainer.backward(loss)
        stats["grad_norm"] = run.trainer.step()
        stats["loss"] = float(loss.detach())
        for key, value in stats.items():
            totals.setdefault(key, []).append(value)
    run.rollout.sync_weights(run.trainer.module)
    return {key: float(np.mean(values)) for key, values in totals.items()}, entropy, logprobs_all


def grpo_step(run: Run, step: int) -> dict[str, Any]:
    """One GRPO step: select, roll out, score, advantages, update, feed back. Returns its metrics."""
    import torch

    from scalingrl import ops
    from scalingrl.model import format_prompts
    from scalingrl.rewards import score_completions

    config, group = run.config, run.config.rollout.group_size
    started = time.perf_counter()
    selection = run.selector.select(step, config.batch_size)
    run.selection_log.write(selection)
    rows = run.pool.rows(selection.prompt_ids)
    prompts = format_prompts(run.tokenizer, [row["prompt"] for row in rows], config.data.prompt_template,
                             config.model.use_chat_template, config.model.system_prompt)
    selected = time.perf_counter()
    torch.manual_seed(_step_seed(config.seed, step))
    batch = run.rollout.generate(prompts, config.rollout)
    rolled_out = time.perf_counter()
    references = [row["answer"] for row in rows for _ in range(group)]
    rewards, correct = score_completions(batch.texts, references, config.reward)
    scored = time.perf_counter()
    reward_tensor = torch.tensor(rewards, dtype=torch.float32)
    advantages, group_stats = ops.group_advantages(reward_tensor, group, scale=config.grpo.advantage_scale)
    zero_variance = np.asarray(group_stats["zero_variance"], dtype=bool).reshape(-1)
    keep = np.repeat(run.selector.loss_groups(np.asarray(rewards, dtype=np.float64).reshape(-1, group)), group)
    update_stats, entropy, logprobs = update_policy(run, batch, advantages, keep)
    updated = time.perf_counter()
    seq = ops.sequence_stats(entropy, logprobs, batch.response_mask)
    cot_stats = {key: np.asarray(value, dtype=np.float64).reshape(len(rows), group) for key, value in seq.items()}
    run.selector.update(step, np.asarray(selection.prompt_ids), np.asarray(rewards, dtype=np.float64).reshape(len(rows), group),
                        np.asarray(correct, dtype=bool).reshape(len(rows), group), cot_stats)
    fed_back = time.perf_counter()
    generated_tokens = float(batch.response_mask.sum())
    levels = np.array([row.get("level", np.nan) for row in rows], dtype=np.float64)
    metrics = {
        "reward_mean": float(np.mean(rewards)), "reward_std": float(np.std(rewards)),
        "pass_rate": float(np.mean(correct)), "zero_variance_fraction": float(zero_variance.mean()),
        "groups_used_fraction": float(keep.mean()),
        "entropy_mean": float(cot_stats["entropy_mean"].mean()),
        "response_length_mean": float(cot_stats["response_length"].mean()),
        "explore_fraction": float(np.mean(selection.is_explore)),
        "prompt_ids": [int(i) for i in np.asarray(selection.prompt_ids)],
        "selected_level_mean": float(np.nanmean(levels)) if np.isfinite(levels).any() else None,
        "selected_levels": [None if not np.isfinite(l) else float(l) for l in levels],
        "unique_prompts_used": int(run.selector.unique_prompts_used()),
        "tokens_per_s": generated_tokens / max(rolled_out - selected, 1e-9),
        "lr": float(run.trainer.scheduler.get_last_lr()[0]),
        "time_selection_s": (selected - started) + (fed_back - updated), "time_rollout_s": rolled_out - selected,
        "time_reward_s": scored - rolled_out, "time_update_s": updated - scored, "time_step_s": fed_back - started,
    }
    metrics.update({key: update_stats.get(key) for key in ("loss", "kl", "clip_fraction", "grad_norm", "approx_kl_old")})
    metrics.update({f"selection/{key}": value for key, value in run.selector.metrics().items()})
    metrics["pool_size"] = int(metrics.get("selection/pool_size", len(run.pool)))
    return metrics


def run_eval(run: Run, step: int) -> dict[str, Any]:
    from scalingrl.eval import evaluate

    started = time.perf_counter()
    result = evaluate(run.rollout, run.heldout_rows, run.heldout_prompts, run.config.eval, run.config.rollout,
                      run.config.reward, seed=_step_seed(run.config.seed + 7919, step))
    run.recorder.write(f"step {step}: held-out accuracy {result['accuracy']:.3f} (pass@{result['n_samples']} "
                       f"{result['pass_at_n']:.3f}, {len(run.heldout_rows)} problems, {time.perf_counter() - started:.1f}s)")
    return result


def save(run: Run, step: int) -> Path:
    from scalingrl.checkpoint import save_checkpoint

    return save_checkpoint(run.out_dir / "checkpoints", step, run.trainer.module, run.trainer.optimizer_state_dict(),
                           run.selector.state_dict(), _fingerprint(run.config, len(run.pool)), run.extra,
                           keep=run.config.keep_checkpoints)


def main(config, resume: bool = False) -> dict[str, Any]:
    """Train with GRPO as ``config`` (a ``TrainConfig``) says; returns the summary (also in summary.json)."""
    run = setup(config, resume)
    clock = time.perf_counter() - run.extra.get("wall_clock_s", 0.0)
    if "initial_eval" not in run.extra:
        run.extra["initial_eval"] = run_eval(run, 0)
        run.recorder.log(0, {"eval_accuracy": run.extra["initial_eval"]["accuracy"]}, advance=False)
    last_eval = run.extra["initial_eval"]
    for step in range(run.start_step, config.steps):
        metrics = grpo_step(run, step)
        done = step + 1
        if config.eval.every and done % config.eval.every == 0 and done < config.steps:
            last_eval = run_eval(run, done)
            metrics["eval_accuracy"] = last_eval["accuracy"]
        if done % config.log_every == 0:
            run.recorder.write(f"step {done}/{config.steps} reward {metrics['reward_mean']:.3f} pass {metrics['pass_rate']:.3f} "
                               f"zero-var {metrics['zero_variance_fraction']:.2f} pool {metrics['pool_size']} "
                               f"step {metrics['time_step_s']:.2f}s")
        run.extra["wall_clock_s"] = time.perf_counter() - clock
        if config.save_every and done % config.save_every == 0 and done < config.steps:
            save(run, done)
        run.recorder.log(done, metrics)
    last_eval = run_eval(run, config.steps)
    run.recorder.log(config.steps, {"eval_accuracy": last_eval["accuracy"], "final": True}, advance=False)
    run.extra["wall_clock_s"] = time.perf_counter() - clock
    save(run, config.steps)
    return finish(run, last_eval)


def finish(run: Run, final_eval: dict[str, Any]) -> dict[str, Any]:
    """Summary, exports and report at the end of a run."""
    from scalingrl import records
    from scalingrl.rewards import shutdown_pool

    config, initial = run.config, run.extra["initial_eval"]
    summary = {
        "initial_eval_accuracy": initial["accuracy"], "final_eval_accuracy": final_eval["accuracy"],
        "eval_gain_points": 100 * (final_eval["accuracy"] - initial["accuracy"]),
        "initial_eval": initial, "final_eval": final_eval,
        "unique_prompts_used": int(run.selector.unique_prompts_used()), "pool_size": len(run.pool),
        "steps": config.steps, "wall_clock_s": run.extra["wall_clock_s"],
        "selection_method": getattr(config.selection, "method", None), "model": run.model_path,
        "data_rows_missing_answer": run.pool.stats.get("rows_missing_answer", 0), "output_dir": str(run.out_dir),
    }
    (run.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    run.selection_log.close()
    run.recorder.close()
    records.export_prompt_stats(run.selector, run.out_dir / "prompt_stats.parquet")
    used = np.asarray(run.selector.used_prompt_ids(), dtype=np.int64)
    records.export_used_prompts(used, run.pool.rows(used), run.out_dir / "used_prompts",
                                {"pool_size": len(run.pool), "steps": config.steps, "selection": summary["selection_method"]})
    if config.report:
        from scalingrl.report import write_report

        write_report(run.out_dir, summary)
    shutdown_pool()
    print(f"initial eval accuracy {summary['initial_eval_accuracy']:.3f} -> final {summary['final_eval_accuracy']:.3f} "
          f"({summary['eval_gain_points']:+.1f} points) in {summary['wall_clock_s']:.0f}s; records in {run.out_dir}")
    return summary


def build_parser():
    from scalingrl.config import describe_fields, load_config, resolve_preset

    try:
        fields = "\n".join(describe_fields(load_config(resolve_preset("quickstart"))))
    except ImportError as error:  # selection not importable: still show the rest
        fields = f"(field list unavailable: {error})"
    parser = argparse.ArgumentParser(
        prog="python -m scalingrl.train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="GRPO on math prompts chosen by DES and the curriculum (quickstart preset by default).",
        epilog="overrides (key=value, value parsed as YAML; defaults of the quickstart preset):\n" + fields)
    parser.add_argument("--config", default="quickstart", help="preset name in configs/ or a YAML file (default: quickstart)")
    parser.add_argument("--output-dir", default="", help="run folder (default: runs/<preset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --output-dir")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. steps=50 rollout.group_size=8")
    return parser


def cli(argv: list[str] | None = None) -> dict[str, Any]:
    from scalingrl.checkpoint import CheckpointError
    from scalingrl.config import ConfigError, load_config, resolve_preset
    from scalingrl.data import DataError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)
    try:
        preset = resolve_preset(args.config)
        config = load_config(preset, args.overrides)
        if args.resume and not (args.output_dir or config.output_dir):
            raise ConfigError("--resume needs --output-dir (the run folder to continue)")
        if args.output_dir:
            config.output_dir = args.output_dir
        elif not config.output_dir:
            config.output_dir = f"runs/{preset.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        return main(config, resume=args.resume)
    except (ConfigError, RunError, DataError, CheckpointError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    cli()
