"""The quickstart model: a tiny Llama for the synthetic arithmetic task, built and warm-started here.

It has a character-level tokenizer over the synthetic alphabet, is built from scratch (no hub) and
warm-started by a short supervised run across all difficulty levels so that sampling already finds
correct answers (RL sharpens; it cannot bootstrap from a pass rate of 0). The result is cached under
``~/.cache/scalingrl/models/<key>`` (or ``$SCALINGRL_CACHE``) and reused.

Left out on purpose: tokenizer training for real text (real models bring their own tokenizer) and
loading other models (``scalingrl.model``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from scalingrl.config_field import config_field
from scalingrl.fileio import staged

__all__ = [
    "TinyModelConfig",
    "build_char_tokenizer",
    "new_tiny_model",
    "supervised_batch",
    "warm_start",
    "build_quickstart_model",
    "cache_root",
]


def cache_root() -> Path:
    """``$SCALINGRL_CACHE`` or ``~/.cache/scalingrl``."""
    return Path(os.environ.get("SCALINGRL_CACHE", Path.home() / ".cache" / "scalingrl"))


@dataclasses.dataclass
class TinyModelConfig:
    """The quickstart model and its warm start."""

    hidden_size: int = config_field(128, help="model width.")
    num_layers: int = config_field(3, help="transformer blocks.")
    num_heads: int = config_field(4, help="attention heads (hidden_size must divide by it).")
    intermediate_size: int = config_field(384, help="MLP width.")
    max_position: int = config_field(96, help="longest sequence (prompt + response) in tokens.")
    warmstart_steps: int = config_field(600, help="supervised steps on reference chains of thought (0: random init).")
    warmstart_batch: int = config_field(64, help="problems per supervised step.")
    warmstart_lr: float = config_field(3e-3, help="AdamW learning rate of the warm start.")
    seed: int = config_field(0, help="initialisation and warm-start seed.")

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"model.tiny.hidden_size ({self.hidden_size}) must divide by num_heads ({self.num_heads})")
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position", "warmstart_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.tiny.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmstart_steps < 0 or self.warmstart_lr <= 0:
            raise ValueError("model.tiny.warmstart_steps must be >= 0 and warmstart_lr > 0")


def build_char_tokenizer(alphabet: str):
    """A character-level ``PreTrainedTokenizerFast`` over ``alphabet`` plus <pad>, <bos>, <eos>, <unk>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {token: index for index, token in enumerate(specials + list(dict.fromkeys(alphabet)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )


def new_tiny_model(config: TinyModelConfig, tokenizer):
    """A randomly initialised tiny Llama for ``tokenizer`` (seeded by ``config.seed``); no warm start."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(llama)


def supervised_batch(tokenizer, prompts: list[str], targets: list[str]):
    """Right-padded (input_ids, labels) (B, T) int64 with labels -100 on prompt and padding."""
    import torch

    rows, label_rows = [], []
    for prompt, target in zip(prompts, targets):
        prompt_ids = tokenizer(prompt)["input_ids"]
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + target_ids)
        label_rows.append([-100] * len(prompt_ids) + target_ids)
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, label_row) in enumerate(zip(rows, label_rows)):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(label_row)
    return input_ids, labels


def warm_start(model, tokenizer, task, config: TinyModelConfig, log=print) -> dict[str, Any]:
    """Supervised warm start on reference chains of thought from all levels of ``task``'s pool."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.warmstart_lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 50) * max(0.05, 1 - step / max(config.warmstart_steps, 1))
    )
    rng = np.random.default_rng(config.seed)
    model.train()
    started, loss_value = time.perf_counter(), float("nan")
    for step in range(config.warmstart_steps):
        ids = rng.integers(0, len(task), size=config.warmstart_batch)
        problems = [task.problem(int(i)) for i in ids]
        input_ids, labels = supervised_batch(tokenizer, [p.prompt for p in problems], [p.solution for p in problems])
        loss = model(
            input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long(), labels=labels
        ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = float(loss.detach())
        if step % 100 == 0 or step == config.warmstart_steps - 1:
            log(f"warm start step {step + 1}/{config.warmstart_steps} loss {loss_value:.3f}")
    model.eval()
    return {"warmstart_loss": loss_value, "warmstart_s": time.perf_counter() - started}


def build_quickstart_model(tiny: TinyModelConfig, task, out_dir: str | os.PathLike | None = None, log=print) -> Path:
    """Build (or reuse from the cache) the warm-started quickstart model; returns its HF folder."""
    import torch

    from scalingrl.synthetic import ALPHABET

    # The warm start sees the equal level mix whatever the pool's level_weights: the RL pool's mix is an
    # experiment on the same initial model (benchmarks/sample_efficiency.py, setting skewed_pool).
    task = type(task)(dataclasses.replace(task.config, level_weights=()))
    task_key = {k: v for k, v in dataclasses.asdict(task.config).items() if k not in ("heldout_size", "level_weights")}
    key_source = json.dumps([dataclasses.asdict(tiny), task_key, ALPHABET, 1], sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    target = Path(out_dir) if out_dir else cache_root() / "models" / f"quickstart-{key}"
    if (target / "model.safetensors").exists() and (target / "scalingrl_build.json").exists():
        return target
    log(f"building the quickstart model into {target} (once; cached afterwards)")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    tokenizer = build_char_tokenizer(ALPHABET)
    model = new_tiny_model(tiny, tokenizer)
    info = warm_start(model, tokenizer, task, tiny, log=log)
    with staged(target, directory=True) as staging:  # a killed build leaves no half-written cache entry
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "scalingrl_build.json").write_text(json.dumps({"key": key, **info}, indent=2))
    return target
