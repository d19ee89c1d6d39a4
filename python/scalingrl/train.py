"""``python -m scalingrl.train``: the GRPO loop, with prompts chosen by DES and the curriculum.

Each step reads like the algorithm: select prompts, roll out G samples each, score them, compute
group advantages, update the policy, feed the outcomes back to the selector, record. The pieces
live elsewhere: ``scalingrl.selection`` (DES, curriculum, baselines), ``scalingrl.rollout``
(engines), ``scalingrl.rewards``, ``scalingrl.ops`` (advantages, log-probs, token statistics),
``scalingrl.grpo`` (loss), ``scalingrl.optimizer`` (DeepSpeed), ``scalingrl.checkpoint``,
``scalingrl.runlog`` (metrics, selection log, report). ``main(config)`` is importable; ``cli()`` parses
``--config``, ``--output-dir``, ``--resume`` and dotted overrides.

Left out on purpose: multi-node launch scripts (DeepSpeed's launcher sets the env this code reads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: nothing heavy is imported with this module
    import torch
    from transformers import PreTrainedTokenizerBase

    from scalingrl.config import TrainConfig
    from scalingrl.data import PromptPool
    from scalingrl.optimizer import PolicyOptimizer
    from scalingrl.rollout import RolloutBatch, RolloutEngine
    from scalingrl.runlog.metrics import MetricsRecorder
    from scalingrl.runlog.selection_log import SelectionLog
    from scalingrl.selection import Selector

__all__ = ["main", "cli", "RunError"]


class RunError(RuntimeError):
    """The run cannot start or continue (output folder, resume state); the message says why."""


@dataclasses.dataclass(kw_only=True)
class Run:
    """Everything one training process holds (built by ``setup``, by keyword).

    Attributes:
        config: the validated run configuration.
        out_dir: the run folder.
        pool: the training prompts, by prompt id.
        heldout_rows: the held-out problems this run evaluates on (``{"id", "prompt", "answer", "level"}``).
        heldout_prompts: their prompt texts (template and chat template applied).
        tokenizer: the policy's tokenizer.
        trainer: the policy under DeepSpeed (backward, optimizer step, engine state).
        rollout: the engine that samples completions.
        selector: the prompt-selection method.
        recorder: metrics.jsonl, TensorBoard and the progress bar (a no-op on ranks other than 0).
        selection_log: selection_log.jsonl (a no-op on ranks other than 0).
        ref_model: the frozen initial policy for the KL term; None when grpo.kl_coef = 0.
        model_path: the policy's HF folder (the built quickstart model when model.path is empty).
        start_step: the first step this process runs (after a resume).
        extra: what a checkpoint carries besides weights and selector: ``initial_eval`` (dict) and
            ``wall_clock_s`` (seconds).
        shards: rollout shards per step (every rank selects the same prompts).
        rank: this process's rank; world_size: the number of processes.
    """

    config: TrainConfig
    out_dir: Path
    pool: PromptPool
    heldout_rows: list[dict[str, str | int | float | None]]
    heldout_prompts: list[str]
    tokenizer: PreTrainedTokenizerBase
    trainer: PolicyOptimizer
    rollout: RolloutEngine
    selector: Selector
    recorder: MetricsRecorder | _SilentRecords
    selection_log: SelectionLog | _SilentRecords
    ref_model: torch.nn.Module | None
    model_path: str
    start_step: int = 0
    extra: dict[str, float | dict] = dataclasses.field(default_factory=dict)
    shards: int = 1
    rank: int = 0
    world_size: int = 1


class _SilentRecords:
    """Stands in for the metrics recorder and the selection log on ranks other than 0 (they write nothing)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _prepare_output_dir(config, resume: bool, rank: int = 0) -> Path:
    out = Path(config.output_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{rank}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise RunError(
            f"output directory {str(out)!r} is not writable ({error}); pass --output-dir to a writable folder"
        ) from error
    if not resume and any((out / "checkpoints").glob("step-*")):
        raise RunError(f"{out} already holds checkpoints; pass --resume to continue it or choose another --output-dir")
    return out


def _fingerprint(config, pool_size: int) -> dict[str, Any]:
    return {
        "model": config.model.path or "quickstart",
        "pool_size": pool_size,
        "batch_size": config.batch_size,
        "group_size": config.rollout.group_size,
        "selection": config.selection.method,
        "seed": config.seed,
        "data": config.data.path or config.data.source,
        # Only when set, so that checkpoints written before the key existed still load.
        **({"level_weights": list(weights)} if (weights := config.data.synthetic.level_weights) else {}),
        # The screen changes what the selector state holds: a resume without it must fail before any model loads.
        **({"des_screen": True} if config.selection.des.screen else {}),
    }


def _load_policy(config, log):
    from scalingrl.model import load_model_and_tokenizer
    from scalingrl.quickstart import build_quickstart_model
    from scalingrl.synthetic import SyntheticTask

    path = config.model.path
    if not path:
        path = str(build_quickstart_model(config.model.tiny, SyntheticTask(config.data.synthetic), log=log))
    model, tokenizer = load_model_and_tokenizer(path, config.model.dtype, config.model.trust_remote_code)
    return path, model, tokenizer


def _load_policy_rank0_first(config, main_rank: bool):
    """Rank 0 loads (and on first use builds and caches) the policy before the others read the cache."""
    from scalingrl import distributed

    if not main_rank:
        distributed.barrier()
    loaded = _load_policy(config, print if main_rank else (lambda *args, **kwargs: None))
    if main_rank:
        distributed.barrier()
    return loaded


def setup(config, resume: bool = False) -> Run:
    """Validate paths, load data and model, build engines and selector, restore a checkpoint."""
    import copy

    import torch

    from scalingrl import distributed, selection
    from scalingrl.checkpoint import latest_checkpoint, load_checkpoint, set_rng_state
    from scalingrl.config import to_dict
    from scalingrl.data import build_pools, format_prompts
    from scalingrl.optimizer import PolicyOptimizer
    from scalingrl.rollout import make_engine
    from scalingrl.runlog.metrics import MetricsRecorder
    from scalingrl.runlog.selection_log import SelectionLog

    rank, world = distributed.init()
    main_rank = rank == 0
    out = _prepare_output_dir(config, resume, rank)
    if config.optim.threads:
        torch.set_num_threads(config.optim.threads)
    pool, heldout = build_pools(config.data, config.eval.size, config.seed)  # data errors before any model work
    try:
        shards = distributed.resolve_shards(config.parallel, world, config.batch_size)
    except ValueError as error:
        raise RunError(str(error)) from None
    checkpoint = latest_checkpoint(out / "checkpoints") if resume else None
    fingerprint = _fingerprint(config, len(pool))
    state = load_checkpoint(checkpoint, fingerprint, world, config.optim.zero_stage) if checkpoint else None
    if main_rank:
        (out / "config.yaml").write_text(__import__("yaml").safe_dump(to_dict(config), sort_keys=False))
    torch.manual_seed(config.seed)
    model_path, model, tokenizer = _load_policy_rank0_first(config, main_rank)
    ref_model = copy.deepcopy(model).eval().requires_grad_(False) if config.grpo.kl_coef > 0 else None
    trainer = PolicyOptimizer(model, config.optim)
    if ref_model is not None:
        ref_model.to(trainer.device)  # the reference model lives with the policy
    selector = selection.make_selector(pool.pool_info(), config.selection, seed=config.seed)
    start_step = 0
    if state is not None:
        trainer.load_state(checkpoint / "deepspeed")
        selector.load_state_dict(state["selection"])
        set_rng_state(state["rng"])
        start_step = state["step"]
    recorder, selection_log = _SilentRecords(), _SilentRecords()
    if main_rank:
        recorder = MetricsRecorder(out, config.steps, start_step, config.tensorboard, config.progress_bar)
        recorder.truncate_after(start_step)
        selection_log = SelectionLog(out / "selection_log.jsonl", keep_before_step=start_step)
    heldout_rows = heldout.rows(np.arange(min(len(heldout), config.eval.size or len(heldout))))
    heldout_prompts = format_prompts(
        tokenizer,
        [row["prompt"] for row in heldout_rows],
        config.data.prompt_template,
        config.model.use_chat_template,
        config.model.system_prompt,
    )
    rollout = make_engine(config.rollout, trainer.module, tokenizer, model_path, seed=config.seed, log=recorder.write)
    run = Run(
        config=config,
        out_dir=out,
        pool=pool,
        heldout_rows=heldout_rows,
        heldout_prompts=heldout_prompts,
        tokenizer=tokenizer,
        trainer=trainer,
        rollout=rollout,
        selector=selector,
        recorder=recorder,
        selection_log=selection_log,
        ref_model=ref_model,
        model_path=model_path,
        start_step=start_step,
        extra=dict(state["extra"]) if state else {},
        shards=shards,
        rank=rank,
        world_size=world,
    )
    if checkpoint:
        recorder.write(f"resumed from {checkpoint} at step {start_step} ({world} process(es))")
    return run


def _step_seed(seed: int, step: int, shard: int = 0, screening: bool = False) -> int:
    """Sampling seed of rollout shard ``shard`` at ``step`` (shard 0 keeps the single-process stream); the
    screening round (``screening``) draws from its own stream."""
    entropy = [seed, step] + ([shard] if shard or screening else []) + ([1] if screening else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@dataclasses.dataclass
class ShardRollout:
    """One rollout shard on this rank: its batch (on the policy's device) and outcomes."""

    index: int
    batch: RolloutBatch
    rewards: list[float]
    correct: list[bool]
    advantages: torch.Tensor
    keep: np.ndarray
    zero_variance: np.ndarray
    truncated: np.ndarray
    time_rollout_s: float = 0.0
    time_reward_s: float = 0.0


def update_policy(run: Run, shards: list[ShardRollout]):
    """Optimizer step(s) on this rank's rollout shards; returns (stats, per-shard entropy, per-shard logprobs).

    Minibatch k is the k-th of ``grpo.updates_per_batch`` parts of every shard (the same rows at any
    world size). Its loss is normalised by the global token (or sequence) count, all-reduced over
    ranks, and scaled by the world size because DeepSpeed averages gradients, so the update equals
    the 1-process update of the whole minibatch. ``keep`` drops rows from the loss (the selector's
    ``loss_groups`` hook) while their entropies are still measured for the selector. Rows whose loss
    terms are exactly 0 (zero advantage and no KL term) only get a no-grad forward.
    """
    import torch

    from scalingrl import distributed
    from scalingrl.grpo import response_logprobs

    config = run.config
    entropies = [torch.zeros_like(shard.batch.response_mask) for shard in shards]
    logprobs_all = [torch.zeros_like(shard.batch.response_mask) for shard in shards]
    totals: dict[str, list[float]] = {}
    forward = run.trainer.forward_model()

    def score(i, rows, model, grad):
        batch = shards[i].batch
        index = torch.as_tensor(rows, dtype=torch.long, device=batch.response_mask.device)
        with torch.set_grad_enabled(grad):
            out = response_logprobs(
                model,
                batch.prompt_ids[index],
                batch.prompt_mask[index],
                batch.response_ids[index],
                batch.response_mask[index],
                config.rollout.temperature,
            )
        entropies[i][index] = out[1].detach() * batch.response_mask[index]
        logprobs_all[i][index] = out[0].detach() * batch.response_mask[index]
        return index, out[0]

    parts = [
        distributed.minibatch_parts(shard.batch.response_ids.shape[0], config.grpo.updates_per_batch)
        for shard in shards
    ]
    for k in range(config.grpo.updates_per_batch):
        losses, local_count, local_active = [], 0.0, 0
        for i, shard in enumerate(shards):
            rows, batch = parts[i][k], shard.batch
            keep_t = torch.as_tensor(
                shard.keep[rows], dtype=batch.response_mask.dtype, device=batch.response_mask.device
            )
            loss_mask = batch.response_mask[torch.as_tensor(rows, device=keep_t.device)] * keep_t.unsqueeze(-1)
            local_count += (
                float(loss_mask.sum())
                if config.grpo.aggregation == "token_mean"
                else float((loss_mask.sum(-1) > 0).sum())
            )
            needs_grad = shard.keep[rows] & ((shard.advantages.cpu().numpy()[rows] != 0) | (config.grpo.kl_coef > 0))
            if (~needs_grad).any():
                score(i, rows[~needs_grad], run.trainer.module, grad=False)
            active = rows[needs_grad]
            if len(active):
                local_active += len(active)
                losses.append((i, active) + score(i, active, forward, grad=True))
        normalizer = max(distributed.all_reduce_sum(local_count), 1.0)
        if distributed.all_reduce_sum(local_active) == 0:
            continue  # no rank has a row with a gradient: every rank skips this optimizer step
        loss, stats = _minibatch_loss(run, shards, losses, normalizer)
        run.trainer.backward(loss * distributed.dp_loss_scale())
        stats["grad_norm"] = run.trainer.step()
        for key, value in stats.items():
            totals.setdefault(key, []).append(value)
    return {key: float(np.mean(values)) for key, values in totals.items()}, entropies, logprobs_all


_LOSS_STATS = ("approx_kl_old", "clip_fraction", "kl", "ratio_mean")  # what grpo.policy_loss reports


def _minibatch_loss(run: Run, shards: list[ShardRollout], losses: list, normalizer: float):
    """This rank's share of a minibatch's loss (a sum over its shard parts) and the global loss statistics."""
    import torch

    from scalingrl import distributed
    from scalingrl.grpo import policy_loss, response_logprobs

    config = run.config
    total, weighted, tokens = None, {}, 0.0
    for i, active, index, logprobs in losses:
        batch = shards[i].batch
        keep_t = torch.as_tensor(
            shards[i].keep[active], dtype=batch.response_mask.dtype, device=batch.response_mask.device
        )
        mask = batch.response_mask[index] * keep_t.unsqueeze(-1)
        ref_logprobs = None
        if run.ref_model is not None:
            with torch.no_grad():
                ref_logprobs, _ = response_logprobs(
                    run.ref_model,
                    batch.prompt_ids[index],
                    batch.prompt_mask[index],
                    batch.response_ids[index],
                    batch.response_mask[index],
                    config.rollout.temperature,
                )
        loss, stats = policy_loss(
            logprobs,
            batch.sampling_logprobs[index],
            shards[i].advantages[index],
            mask,
            config.grpo,
            ref_logprobs,
            normalizer=normalizer,
        )
        total = loss if total is None else total + loss
        count = float(mask.sum())
        tokens += count
        for key, value in stats.items():
            weighted[key] = weighted.get(key, 0.0) + value * count
    if total is None:  # other ranks have rows with a gradient: join their gradient reduction with zeros
        total = _zero_loss(run, shards)
    all_tokens = max(distributed.all_reduce_sum(tokens), 1.0)
    # the same collectives on every rank, in the same order, even on a rank without rows in this minibatch
    stats = {key: distributed.all_reduce_sum(weighted.get(key, 0.0)) / all_tokens for key in _LOSS_STATS}
    stats["loss"] = distributed.all_reduce_sum(float(total.detach()))
    return total, stats


def _zero_loss(run: Run, shards: list[ShardRollout]):
    """A loss of exactly 0 through a real forward of one row, for a rank without rows in a minibatch.

    Its backward makes every gradient ready in the same order as a real loss does on the other ranks.
    ZeRO-2 reduces gradients bucket by bucket in that order, so a zero built straight from the
    parameters (``sum(p * 0)``: the reverse order) summed one rank's bucket with another rank's
    gradients of other parameters: measured, in the 2-process test run about half the elements of
    rank 1's ZeRO partition moved with the wrong sign (tests/test_distributed.py, 1 vs 2 processes).
    """
    import torch

    from scalingrl.grpo import response_logprobs

    batch = shards[0].batch
    index = torch.zeros(1, dtype=torch.long, device=batch.response_mask.device)
    logprobs, _ = response_logprobs(
        run.trainer.forward_model(),
        batch.prompt_ids[index],
        batch.prompt_mask[index],
        batch.response_ids[index],
        batch.response_mask[index],
        run.config.rollout.temperature,
    )
    return (logprobs * 0.0).sum()


def _sample_and_score(run: Run, shard_rows: list, group: int, seed: int):
    """``group`` samples of each row's prompt (torch seeded with ``seed``), scored with the run's reward.

    Returns (batch on the policy's device, rewards (N,) float, correct (N,) bool, complete_keep (N,) bool,
    truncated (N,) bool, rollout seconds, reward seconds), N = rows x group, group-contiguous.
    """
    import torch

    from scalingrl.data import format_prompts
    from scalingrl.rewards import apply_truncation_policy, score_completions

    config = run.config
    prompts = format_prompts(
        run.tokenizer,
        [row["prompt"] for row in shard_rows],
        config.data.prompt_template,
        config.model.use_chat_template,
        config.model.system_prompt,
    )
    started = time.perf_counter()
    torch.manual_seed(seed)
    batch = run.rollout.generate(prompts, config.rollout, group_size=group).to(run.trainer.device)
    rolled_out = time.perf_counter()
    references = [row["answer"] for row in shard_rows for _ in range(group)]
    truncated = (
        np.asarray(batch.truncated.cpu(), dtype=bool)
        if batch.truncated is not None
        else np.zeros(len(references), dtype=bool)
    )
    rewards, correct = score_completions(batch.texts, references, config.reward, truncated)
    rewards, correct, complete_keep = apply_truncation_policy(rewards, correct, truncated, config.reward.truncated)
    return batch, rewards, correct, complete_keep, truncated, rolled_out - started, time.perf_counter() - rolled_out


def _screen(run: Run, step: int, rows: list, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The screening round of a ``screening_plan``: ``samples`` rollouts of each candidate, sharded like the
    step's rollouts and all-gathered. Returns (C, samples) float64 rewards and (C, samples) bool correct,
    rows in candidate order."""
    from scalingrl import distributed

    shard_groups = distributed.shard_groups(len(rows), run.shards)
    local = {}
    for s in distributed.rank_shards(run.shards, run.rank, run.world_size):
        seed = _step_seed(run.config.seed, step, s, screening=True)
        _, rewards, correct, *_ = _sample_and_score(run, [rows[i] for i in shard_groups[s]], samples, seed)
        local[s] = (
            np.asarray(rewards, dtype=np.float64).reshape(-1, samples),
            np.asarray(correct, dtype=bool).reshape(-1, samples),
        )
    merged = {}
    for part in distributed.all_gather_object(local):
        merged.update(part)
    shards = [merged[s] for s in range(run.shards)]
    return np.concatenate([r for r, _ in shards]), np.concatenate([c for _, c in shards])


def _roll_out_and_score(run: Run, step: int, rows: list, shard_index: int, groups: np.ndarray) -> ShardRollout:
    """Roll out one shard (seeded from (seed, step, shard)), score it, and compute its group advantages."""
    import torch

    from scalingrl import ops

    config, group = run.config, run.config.rollout.group_size
    seed = _step_seed(config.seed, step, shard_index)
    batch, rewards, correct, complete_keep, truncated, rollout_s, reward_s = _sample_and_score(
        run, [rows[i] for i in groups], group, seed
    )
    reward_tensor = torch.tensor(rewards, dtype=torch.float32, device=run.trainer.device)
    advantages, group_stats = ops.group_advantages(reward_tensor, group, scale=config.grpo.advantage_scale)
    zero_variance = np.asarray(torch.as_tensor(group_stats["zero_variance"]).cpu(), dtype=bool).reshape(-1)
    keep = np.repeat(run.selector.loss_groups(np.asarray(rewards, dtype=np.float64).reshape(-1, group)), group)
    keep = keep & complete_keep  # reward.truncated=mask drops cut-off completions from the loss
    return ShardRollout(
        shard_index,
        batch,
        rewards,
        correct,
        advantages,
        keep,
        zero_variance,
        truncated,
        rollout_s,
        reward_s,
    )


def _gather_outcomes(run: Run, shards: list[ShardRollout], entropies, logprobs) -> dict[str, Any]:
    """Every rank's shard outcomes, all-gathered and put back into selection order (shard 0 first)."""
    from scalingrl import distributed, ops

    local = {}
    for shard, entropy, logprob in zip(shards, entropies, logprobs):
        seq = ops.sequence_stats(entropy, logprob, shard.batch.response_mask)
        local[shard.index] = {
            "rewards": np.asarray(shard.rewards, dtype=np.float64),
            "correct": np.asarray(shard.correct, dtype=bool),
            "keep": shard.keep,
            "zero_variance": shard.zero_variance,
            "truncated": shard.truncated,
            "tokens": float(shard.batch.response_mask.sum()),
            "cot_stats": {
                key: np.asarray(value.cpu() if hasattr(value, "cpu") else value, dtype=np.float64).reshape(-1)
                for key, value in seq.items()
            },
        }
    merged = {}
    for part in distributed.all_gather_object(local):
        merged.update(part)
    ordered = [merged[s] for s in range(run.shards)]
    group = run.config.rollout.group_size
    return {
        "rewards": np.concatenate([o["rewards"] for o in ordered]).reshape(-1, group),
        "correct": np.concatenate([o["correct"] for o in ordered]).reshape(-1, group),
        "keep": np.concatenate([o["keep"] for o in ordered]),
        "zero_variance": np.concatenate([o["zero_variance"] for o in ordered]),
        "truncated": np.concatenate([o["truncated"] for o in ordered]),
        "tokens": sum(o["tokens"] for o in ordered),
        "cot_stats": {
            key: np.concatenate([o["cot_stats"][key] for o in ordered]).reshape(-1, group)
            for key in ordered[0]["cot_stats"]
        },
    }


def grpo_step(run: Run, step: int) -> dict[str, Any]:
    """One GRPO step: select, roll out, score, advantages, update, feed back. Returns its metrics.

    Every rank selects the same prompts; rank r rolls out and scores the rollout shards s with
    s % world_size == r; the outcomes are all-gathered in selection order before ``selector.update``.
    A selector with a screening plan first screens its candidates (``selection.screened_batch``).
    """
    from scalingrl import distributed
    from scalingrl.selection import screened_batch

    config = run.config
    started = time.perf_counter()
    screen_s = 0.0

    def screen(candidates, samples):  # the screening hook's rollouts (only for a selector with a plan)
        nonlocal screen_s
        begun = time.perf_counter()
        outcome = _screen(run, step, run.pool.rows(candidates.prompt_ids), samples)  # (rewards, correct)
        screen_s = time.perf_counter() - begun
        return outcome

    selection, screen_rollouts = screened_batch(run.selector, step, config.batch_size, screen)
    run.selection_log.write(selection)
    rows = run.pool.rows(selection.prompt_ids)
    shard_groups = distributed.shard_groups(len(rows), run.shards)
    mine = distributed.rank_shards(run.shards, run.rank, run.world_size)
    selected = time.perf_counter()
    shards = [_roll_out_and_score(run, step, rows, s, shard_groups[s]) for s in mine]  # roll out + score
    rolled_out = time.perf_counter()
    run.rollout.sleep()  # colocated vLLM frees its GPU memory for the update (no-op otherwise)
    update_stats, entropies, logprobs = update_policy(run, shards)
    trained = time.perf_counter()
    run.rollout.sync_weights(run.trainer.module)  # in place; bumps the engine's weight_version
    updated = time.perf_counter()
    outcome = _gather_outcomes(run, shards, entropies, logprobs)
    rewards, correct, cot_stats = outcome["rewards"], outcome["correct"], outcome["cot_stats"]
    run.selector.update(step, np.asarray(selection.prompt_ids), rewards, correct, cot_stats)
    fed_back = time.perf_counter()
    levels = np.array([row.get("level", np.nan) for row in rows], dtype=np.float64)
    metrics = {
        "reward_mean": float(np.mean(rewards)),
        "reward_std": float(np.std(rewards)),
        "pass_rate": float(np.mean(correct)),
        "zero_variance_fraction": float(outcome["zero_variance"].mean()),
        "groups_used_fraction": float(outcome["keep"].mean()),
        "truncated_fraction": float(outcome["truncated"].mean()),
        "entropy_mean": float(cot_stats["entropy_mean"].mean()),
        "response_length_mean": float(cot_stats["response_length"].mean()),
        "explore_fraction": float(np.mean(selection.is_explore)),
        "prompt_ids": [int(i) for i in np.asarray(selection.prompt_ids)],
        "selected_level_mean": float(np.nanmean(levels)) if np.isfinite(levels).any() else None,
        "selected_levels": [None if not np.isfinite(level) else float(level) for level in levels],
        "unique_prompts_used": int(run.selector.unique_prompts_used()),
        "tokens_per_s": outcome["tokens"]  # the groups' tokens and time (a screening round is not counted)
        / max(distributed.all_reduce_sum(rolled_out - selected) / run.world_size, 1e-9),
        "lr": float(run.trainer.scheduler.get_last_lr()[0]),
        "rollouts": screen_rollouts + int(rewards.size),
        "screen_rollouts": screen_rollouts,
        "time_selection_s": (selected - started) - screen_s + (fed_back - updated),
        "time_screen_s": screen_s,
        "time_rollout_s": sum(shard.time_rollout_s for shard in shards),
        "time_reward_s": sum(shard.time_reward_s for shard in shards),
        "time_update_s": trained - rolled_out,
        "time_sync_s": updated - trained,
        "weight_version": int(run.rollout.weight_version),
        "time_step_s": fed_back - started,
    }
    metrics.update(
        {key: update_stats.get(key) for key in ("loss", "kl", "clip_fraction", "grad_norm", "approx_kl_old")}
    )
    metrics.update({f"selection/{key}": value for key, value in run.selector.metrics().items()})
    metrics["pool_size"] = int(metrics.get("selection/pool_size", len(run.pool)))
    return metrics


def run_eval(run: Run, step: int) -> dict[str, Any]:
    """Held-out accuracy; each rank evaluates a contiguous shard of the problems, results are gathered."""
    from scalingrl import distributed
    from scalingrl.eval import evaluate

    started = time.perf_counter()
    mine = np.array_split(np.arange(len(run.heldout_rows)), run.world_size)[run.rank]
    rows = [run.heldout_rows[i] for i in mine]
    prompts = [run.heldout_prompts[i] for i in mine]
    local = evaluate(
        run.rollout,
        rows,
        prompts,
        run.config.eval,
        run.config.rollout,
        run.config.reward,
        seed=_step_seed(run.config.seed + 7919, step, run.rank),
    )
    levels: dict[str, int] = {}
    for row in rows:
        level = row.get("level")
        if level is not None and level == level:
            levels[str(level)] = levels.get(str(level), 0) + 1
    gathered = distributed.all_gather_object((local, levels))
    result = (
        distributed.combine_eval([g[0] for g in gathered], [g[1] for g in gathered]) if run.world_size > 1 else local
    )
    run.recorder.write(
        f"step {step}: held-out accuracy {result['accuracy']:.3f} (pass@{result['n_samples']} "
        f"{result['pass_at_n']:.3f}, {len(run.heldout_rows)} problems, {time.perf_counter() - started:.1f}s)"
    )
    return result


def save(run: Run, step: int) -> Path:
    from scalingrl.checkpoint import save_checkpoint

    return save_checkpoint(
        run.out_dir / "checkpoints",
        step,
        run.trainer,
        run.selector.state_dict(),
        _fingerprint(run.config, len(run.pool)),
        run.extra,
        keep=run.config.keep_checkpoints,
    )


def main(config, resume: bool = False) -> dict[str, Any]:
    """Train with GRPO as ``config`` (a ``TrainConfig``) says; returns the summary (also in summary.json).

    Under a launcher (``torchrun``/``deepspeed``) every rank calls it; only rank 0 writes records.
    """
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
            run.recorder.write(
                f"step {done}/{config.steps} reward {metrics['reward_mean']:.3f} pass {metrics['pass_rate']:.3f} "
                f"zero-var {metrics['zero_variance_fraction']:.2f} pool {metrics['pool_size']} "
                f"step {metrics['time_step_s']:.2f}s"
            )
        run.extra["wall_clock_s"] = time.perf_counter() - clock
        # the step's record before its checkpoint: a kill between the two must not leave a checkpoint whose
        # step has no metrics row (resume continues after it); a row past the last checkpoint is trimmed on resume
        run.recorder.log(done, metrics)
        if config.save_every and done % config.save_every == 0 and done < config.steps:
            save(run, done)
    last_eval = run_eval(run, config.steps)
    run.recorder.log(config.steps, {"eval_accuracy": last_eval["accuracy"], "final": True}, advance=False)
    run.extra["wall_clock_s"] = time.perf_counter() - clock
    save(run, config.steps)
    return finish(run, last_eval)


def finish(run: Run, final_eval: dict[str, Any]) -> dict[str, Any]:
    """Summary, exports and report at the end of a run (written by rank 0)."""
    from scalingrl.rewards import shutdown_pool
    from scalingrl.runlog.selection_log import export_prompt_stats, export_used_prompts

    config, initial = run.config, run.extra["initial_eval"]
    summary = {
        "initial_eval_accuracy": initial["accuracy"],
        "final_eval_accuracy": final_eval["accuracy"],
        "eval_gain_points": 100 * (final_eval["accuracy"] - initial["accuracy"]),
        "initial_eval": initial,
        "final_eval": final_eval,
        "unique_prompts_used": int(run.selector.unique_prompts_used()),
        "pool_size": len(run.pool),
        "steps": config.steps,
        "wall_clock_s": run.extra["wall_clock_s"],
        "selection_method": config.selection.method,
        "selection_des_screen": config.selection.des.screen,  # DES's candidates through SPEED's screen
        "model": run.model_path,
        "data_rows_missing_answer": run.pool.stats.get("rows_missing_answer", 0),
        "output_dir": str(run.out_dir),
        "world_size": run.world_size,
        "rollout_shards": run.shards,
    }
    run.selection_log.close()
    run.recorder.close()
    shutdown_pool()
    if run.rank != 0:
        return summary
    (run.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    export_prompt_stats(run.selector, run.out_dir / "prompt_stats.parquet")
    used = np.asarray(run.selector.used_prompt_ids(), dtype=np.int64)
    export_used_prompts(
        used,
        run.pool.rows(used),
        run.out_dir / "used_prompts",
        {"pool_size": len(run.pool), "steps": config.steps, "selection": summary["selection_method"]},
    )
    if config.report:
        from scalingrl.runlog.report import write_report

        write_report(run.out_dir, summary)
    print(
        f"initial eval accuracy {summary['initial_eval_accuracy']:.3f} -> final {summary['final_eval_accuracy']:.3f} "
        f"({summary['eval_gain_points']:+.1f} points) in {summary['wall_clock_s']:.0f}s; records in {run.out_dir}"
    )
    return summary


def build_parser():
    from scalingrl.config import add_config_arguments, describe_fields, load_config, resolve_preset

    fields = "\n".join(describe_fields(load_config(resolve_preset("quickstart"))))
    parser = argparse.ArgumentParser(
        prog="python -m scalingrl.train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="GRPO on math prompts chosen by DES and the curriculum (quickstart preset by default).",
        epilog="overrides (key=value, value parsed as YAML; defaults of the quickstart preset):\n" + fields,
    )
    add_config_arguments(parser, default="quickstart")
    parser.add_argument("--output-dir", default="", help="run folder (default: runs/<preset>-<time>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest complete checkpoint in --output-dir"
    )
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # deepspeed launcher
    return parser


def cli(argv: list[str] | None = None) -> dict[str, Any]:
    from scalingrl.checkpoint import CheckpointError
    from scalingrl.config import ConfigError, config_from_args, parse_command_line
    from scalingrl.data import DataError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_command_line(build_parser(), argv)
    try:
        preset, config = config_from_args(args)
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
