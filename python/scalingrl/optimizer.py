"""The policy optimizer: the optimizer step through DeepSpeed (ZeRO stage configurable).

``PolicyOptimizer`` wraps ``deepspeed.initialize`` around the policy with a torch AdamW client
optimizer (DeepSpeed's own Adam JIT-compiles for minutes on CPU) and exposes what the trainer
needs: ``module`` (the unwrapped policy, shared with the HF rollout engine), ``device`` (where the
policy lives: ``cuda:LOCAL_RANK`` on GPUs, ``cpu`` here), ``backward``/``step`` (returns the
pre-clip global grad norm), and ``save_state``/``load_state`` through DeepSpeed's
``save_checkpoint``/``load_checkpoint`` (under ZeRO-1/2 every rank writes and reads its own optimizer
partition). On one process it sets up the torch.distributed env itself (gloo on CPU); under
``deepspeed``/``torchrun`` launchers it uses theirs. Gradients are averaged over ranks by DeepSpeed;
how a step's work is split across ranks is ``scalingrl.distributed``.

Left out on purpose: pipeline/tensor parallel, and the loss itself (``scalingrl.grpo``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from scalingrl.config_field import config_field

__all__ = ["OptimConfig", "PolicyOptimizer", "lr_multiplier", "setup_distributed_env"]


@dataclasses.dataclass
class OptimConfig:
    """Optimizer and DeepSpeed settings."""

    lr: float = config_field(3e-5, help="AdamW peak learning rate.")
    weight_decay: float = config_field(0.0, help="AdamW weight decay.")
    betas: tuple[float, float] = config_field((0.9, 0.99), help="AdamW betas.")
    warmup_steps: int = config_field(0, help="linear warmup steps of the learning rate.")
    decay_steps: int = config_field(
        0,
        help="optimizer steps over which the learning rate decays linearly to min_lr_ratio x lr (0 = constant "
        "after warmup).",
    )
    min_lr_ratio: float = config_field(0.1, help="floor of the linear decay, as a fraction of lr.")
    grad_clip: float = config_field(1.0, help="max global grad norm (0 = no clipping).")
    zero_stage: int = config_field(0, help="DeepSpeed ZeRO stage 0-3.")
    bf16: bool = config_field(False, help="train in bfloat16 (GPU presets); float32 otherwise.")
    threads: int = config_field(2, help="torch CPU threads (0 = leave torch's default).")

    def __post_init__(self) -> None:
        if not 0 < self.lr < 1:
            raise ValueError(f"optim.lr must be in (0, 1), got {self.lr} (RL on LLMs is stable near 1e-6..5e-5)")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"optim.zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if (
            self.grad_clip < 0
            or self.decay_steps < 0
            or self.warmup_steps < 0
            or self.weight_decay < 0
            or self.threads < 0
        ):
            raise ValueError("optim.grad_clip, warmup_steps, weight_decay and threads must be >= 0")
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives a list
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")


def lr_multiplier(step: int, config: OptimConfig) -> float:
    """Learning-rate factor at optimizer step ``step``: linear warmup, then constant or linear decay."""
    warmup = min(1.0, (step + 1) / (config.warmup_steps + 1))
    if not config.decay_steps:
        return warmup
    progress = min(1.0, step / config.decay_steps)
    return warmup * (1.0 - (1.0 - config.min_lr_ratio) * progress)


def setup_distributed_env() -> tuple[int, int]:
    """Single-process defaults for torch.distributed (kept when a launcher set them); (rank, world)."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
    for key, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "scalingrl" / "torch_extensions"))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


class PolicyOptimizer:
    """The policy under a DeepSpeed engine: backward, optimizer step, engine state.

    Args:
        model: the policy ``nn.Module``.
        config: optimizer and ZeRO settings.
    """

    def __init__(self, model, config: OptimConfig) -> None:
        import logging

        import torch

        from scalingrl import distributed

        self.rank, self.world_size = distributed.init()
        import deepspeed

        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        self.zero_stage = config.zero_stage
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, config))
        ds_config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": config.grad_clip,
            "zero_optimization": {"stage": config.zero_stage},
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": config.bf16},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
        )

    @property
    def module(self):
        """The unwrapped policy module (what rollouts and checkpoints use)."""
        return self.engine.module

    @property
    def device(self):
        """The device of the policy's parameters; every training tensor goes there."""
        return next(self.engine.module.parameters()).device

    def forward_model(self):
        """The callable to run forward passes through (the DeepSpeed engine)."""
        return self.engine

    def backward(self, loss) -> None:
        self.engine.backward(loss)

    def step(self) -> float:
        """Clip, step the optimizer and scheduler, zero grads; returns the global grad norm."""
        import torch

        grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
        local_norm = (
            float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
            if grads
            else None
        )
        self.engine.step()
        norm = self.engine.get_global_grad_norm()  # set under ZeRO (grads are partitioned there)
        if norm is None or norm != norm:
            norm = local_norm
        return float(norm) if norm is not None else float("nan")

    def save_state(self, directory: str | Path) -> None:
        """Module, optimizer (this rank's ZeRO partition) and scheduler into ``directory``; collective."""
        self.engine.save_checkpoint(str(directory), tag="state")

    def load_state(self, directory: str | Path) -> None:
        """Inverse of ``save_state``; collective. Raises RuntimeError when DeepSpeed finds no state there."""
        path, _ = self.engine.load_checkpoint(
            str(directory), tag="state", load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if path is None:
            raise RuntimeError(f"DeepSpeed found no engine state under {directory}")

    def all_gather_object(self, value):
        """Gather a picklable value from every rank (a one-element list on one process)."""
        from scalingrl import distributed

        return distributed.all_gather_object(value)
