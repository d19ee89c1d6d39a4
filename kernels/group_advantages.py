"""GRPO advantages and per-group reward statistics, one program per group.

Each program loads its G rewards (G <= 65536, one tile), computes mean, Bessel-corrected std (0 for G = 1),
pass rate (reward >= pass_threshold), the zero-variance flag (max == min, exact) and the advantages for
SCALE 0 "group", 1 "batch" (divides by a precomputed batch std read from a 1-element tensor, so the
host never syncs) or 2 "none". Left out: gradients (advantages are constants to the loss) and ragged
groups. The torch twin is ``scalingrl.ops.group_advantages_torch``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

SCALE_CODES = {"group": 0, "batch": 1, "none": 2}
MAX_GROUP_SIZE = 65536


@triton.jit
def _group_advantages_kernel(
    REWARD_ptr,
    ADVANTAGE_ptr,
    MEAN_ptr,
    STD_ptr,
    PASS_RATE_ptr,
    ZERO_VARIANCE_ptr,
    BATCH_STD_ptr,
    G,
    inv_bessel,
    eps,
    pass_threshold,
    SCALE: tl.constexpr,
    BLOCK_G: tl.constexpr,
):
    group = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_G)
    in_group = offs < G
    r = tl.load(REWARD_ptr + group * G + offs, mask=in_group, other=0.0).to(tl.float32)
    top = tl.max(tl.where(in_group, r, float("-inf")), axis=0)
    bottom = tl.min(tl.where(in_group, r, float("inf")), axis=0)
    # A constant group: mean = its reward exactly, so std and advantages are exactly 0.
    mean = tl.where(top == bottom, top, tl.sum(r, axis=0) / G)
    centred = tl.where(in_group, r - mean, 0.0)
    var = tl.sum(centred * centred, axis=0) * inv_bessel  # 1 / max(G - 1, 1), from the host
    std = tl.sqrt(var)
    passed = tl.sum((in_group & (r >= pass_threshold)).to(tl.float32), axis=0)
    if SCALE == 0:
        advantage = centred / (std + eps)
    elif SCALE == 1:
        advantage = centred / (tl.load(BATCH_STD_ptr) + eps)
    else:
        advantage = centred
    tl.store(ADVANTAGE_ptr + group * G + offs, advantage, mask=in_group)
    tl.store(MEAN_ptr + group, mean)
    tl.store(STD_ptr + group, std)
    tl.store(PASS_RATE_ptr + group, passed / G)
    tl.store(ZERO_VARIANCE_ptr + group, (top == bottom).to(tl.int8))


def group_advantages_forward(
    rewards: torch.Tensor,
    group_size: int,
    scale: str = "group",
    eps: float = 1e-6,
    pass_threshold: float = 1.0,
    out: tuple | None = None,
):
    """Launch the kernel.

    Args:
        rewards: (N,) float, N = num_groups * group_size, group-contiguous.
        group_size: G in [1, 65536], dividing N (checked by ``scalingrl.ops``).
        scale: "group" | "batch" | "none".
        out: optional (advantages (N,) float32, mean, std, pass_rate (num_groups,) float32,
            zero_variance (num_groups,) bool), all contiguous.

    Returns:
        advantages (N,) float32 and dict reward_mean, reward_std, pass_rate (float32), zero_variance (bool).
    """
    if group_size > MAX_GROUP_SIZE:
        raise ValueError(f"group_size must be at most {MAX_GROUP_SIZE} for the Triton kernel, got {group_size}")
    rewards = rewards.contiguous()
    n_groups = rewards.numel() // group_size
    device = rewards.device
    if out is None:
        out = (
            torch.empty(rewards.numel(), dtype=torch.float32, device=device),
            *(torch.empty(n_groups, dtype=torch.float32, device=device) for _ in range(3)),
            torch.empty(n_groups, dtype=torch.bool, device=device),
        )
    advantages, mean, std, pass_rate, zero_variance = out
    if scale == "batch" and rewards.numel() > 1:
        batch_std = rewards.float().std().reshape(1)
    else:
        batch_std = torch.zeros(1, dtype=torch.float32, device=device)
    if n_groups:
        _group_advantages_kernel[(n_groups,)](
            rewards,
            advantages,
            mean,
            std,
            pass_rate,
            zero_variance.view(torch.int8),
            batch_std,
            group_size,
            1.0 / max(group_size - 1, 1),
            eps,
            pass_threshold,
            SCALE=SCALE_CODES[scale],
            BLOCK_G=triton.next_power_of_2(group_size),
        )
    return advantages, {"reward_mean": mean, "reward_std": std, "pass_rate": pass_rate, "zero_variance": zero_variance}
