"""Rollout statistics for GRPO and the Data Effectiveness Score: the public face of ``scalingrl.kernels``.

Three ops, each a Triton kernel with a pure-torch twin of the same signature, picked by one dispatch
function per op (``backend="auto"``: Triton on CUDA tensors, the twin elsewhere; ``"triton"`` forces the
kernel, which on CPU needs ``TRITON_INTERPRET=1``; ``"torch"`` forces the twin):

* ``token_logprobs_entropy``: per-token log-prob of the sampled token and entropy of softmax(logits / T),
  differentiable, without a float32 copy of the [tokens x vocab] logits (the twin is chunked over rows).
* ``sequence_stats``: per-sequence chain-of-thought statistics over the response mask.
* ``group_advantages``: GRPO advantages and per-group reward statistics.

Arguments are checked here, at the boundary, with errors that name the argument and the bad value; the
kernels trust what they get. Left out on purpose: losses, KL terms and anything that needs the full
probability matrix (top-k, sampling).
"""

from __future__ import annotations

import math

import torch

BACKENDS = ("auto", "triton", "torch")
ADVANTAGE_SCALES = ("group", "batch", "none")
LOGIT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# 80th percentile of chain-of-thought token entropy reported by Wang et al. 2025, "Beyond the 80/20 Rule:
# High-Entropy Minority Tokens Drive Effective RL for LLM Reasoning" (Qwen3, nats). Tokens above it are
# the "forking" minority.
HIGH_ENTROPY_THRESHOLD = 0.672
# The twin materialises at most about this many float32 elements per temporary (chunk_rows x V).
TWIN_CHUNK_ELEMENTS = 1 << 24


def _use_triton(backend: str, *tensors: torch.Tensor) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return all(t.is_cuda for t in tensors)
    return backend == "triton"


def _check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors must share one device, got {devices}")


# --------------------------------------------------------------------------------------------------
# token_logprobs_entropy
# --------------------------------------------------------------------------------------------------


def _as_rows(logits: torch.Tensor) -> torch.Tensor:
    """View (N, V) or (B, T, V) as (B, T, V) without copying; the last dim is made unit-stride."""
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    return logits.unsqueeze(0) if logits.dim() == 2 else logits


def _twin_chunk_rows(vocab: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return chunk_size
    return max(1, TWIN_CHUNK_ELEMENTS // vocab)


def _token_stats_chunk(x: torch.Tensor, ids: torch.Tensor, temperature: float):
    """Log-prob, entropy and log-sum-exp of one chunk. x: (C, V) any float dtype; ids: (C,) int64.

    Two (C, V) float32 temporaries, every other step in place.
    """
    z = x.to(torch.float32, copy=True)  # never in place on the caller's logits
    if temperature != 1.0:
        z.div_(temperature)
    target = z.gather(1, ids.unsqueeze(1)).squeeze(1)
    peak = z.amax(dim=1, keepdim=True)
    z.sub_(peak)
    p = z.exp()
    total = p.sum(dim=1, keepdim=True)
    log_total = total.log()
    z.sub_(log_total)  # log p
    p.div_(total)
    entropy = -p.mul_(z).sum(dim=1)
    bad = entropy.isnan()  # 0 * -inf from -inf logits (or a NaN row): redo those rows with 0 log 0 = 0
    if bad.any():
        logp = z[bad]
        entropy[bad] = -(logp.exp() * logp.masked_fill(logp == -math.inf, 0.0)).sum(dim=1)
    lse = (peak + log_total).squeeze(1)
    return target - lse, entropy, lse


def _token_grad_chunk(x, ids, lse, entropy, grad_lp, grad_ent, temperature: float, out: torch.Tensor):
    """d/dx of sum(grad_lp * logprob + grad_ent * entropy) for one chunk, written into ``out`` (C, V).

    d logprob / dz_j = [j == t] - p_j;  d entropy / dz_j = -p_j (log p_j + H);  z = x / temperature.
    """
    logp = x.to(torch.float32, copy=True)
    if temperature != 1.0:
        logp.div_(temperature)
    logp.sub_(lse.unsqueeze(1))
    p = logp.exp()
    logp.masked_fill_(logp == -math.inf, 0.0)  # there p = 0; keeps 0 * inf from forming
    coef = logp.add_(entropy.unsqueeze(1)).mul_(-grad_ent.unsqueeze(1)).sub_(grad_lp.unsqueeze(1))
    grad = p.mul_(coef)
    grad.scatter_add_(1, ids.unsqueeze(1), grad_lp.unsqueeze(1))
    if temperature != 1.0:
        grad.div_(temperature)
    out.copy_(grad)


class TokenStatsTorch(torch.autograd.Function):
    """The twin as an autograd Function: forward and backward both chunked over rows (O(chunk x V) fp32)."""

    @staticmethod
    def forward(ctx, logits, token_ids, temperature, chunk_rows):
        rows = _as_rows(logits)
        ids = token_ids.reshape(rows.shape[:2]).long()
        B, T, _ = rows.shape
        logprobs = torch.empty((B, T), dtype=torch.float32, device=logits.device)
        entropy = torch.empty_like(logprobs)
        lse = torch.empty_like(logprobs)
        for b in range(B):
            for s in range(0, T, chunk_rows):
                e = min(T, s + chunk_rows)
                lp, ent, ls = _token_stats_chunk(rows[b, s:e], ids[b, s:e], temperature)
                logprobs[b, s:e], entropy[b, s:e], lse[b, s:e] = lp, ent, ls
        ctx.save_for_backward(logits, token_ids, lse, entropy)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        lead = logits.shape[:-1]
        return logprobs.reshape(lead), entropy.reshape(lead)

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        logits, token_ids, lse, entropy = ctx.saved_tensors
        rows = _as_rows(logits)
        ids = token_ids.reshape(rows.shape[:2]).long()
        B, T, _ = rows.shape
        zeros = torch.zeros((B, T), dtype=torch.float32, device=logits.device)
        g_lp = zeros if grad_logprobs is None else grad_logprobs.reshape(B, T).float()
        g_ent = zeros if grad_entropy is None else grad_entropy.reshape(B, T).float()
        grad = torch.empty(rows.shape, dtype=logits.dtype, device=logits.device)
        for b in range(B):
            for s in range(0, T, ctx.chunk_rows):
                e = min(T, s + ctx.chunk_rows)
                _token_grad_chunk(
                    rows[b, s:e],
                    ids[b, s:e],
                    lse[b, s:e],
                    entropy[b, s:e],
                    g_lp[b, s:e],
                    g_ent[b, s:e],
                    ctx.temperature,
                    grad[b, s:e],
                )
        return grad.reshape(logits.shape), None, None, None


def _check_token_stats_args(logits, token_ids, temperature, chunk_size) -> None:
    if not isinstance(logits, torch.Tensor) or not isinstance(token_ids, torch.Tensor):
        raise TypeError("logits and token_ids must be torch tensors")
    if logits.dim() not in (2, 3):
        raise ValueError(f"logits must be (N, V) or (B, T, V), got shape {tuple(logits.shape)}")
    if logits.dtype not in LOGIT_DTYPES:
        raise TypeError(f"logits dtype must be one of bf16/fp16/fp32, got {logits.dtype}")
    if token_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"token_ids must be an integer tensor, got dtype {token_ids.dtype}")
    if tuple(token_ids.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"token_ids shape {tuple(token_ids.shape)} must equal logits.shape[:-1] = {tuple(logits.shape[:-1])}"
        )
    _check_same_device(logits=logits, token_ids=token_ids)
    vocab = logits.shape[-1]
    if vocab < 1:
        raise ValueError(f"logits must have a vocabulary of at least 1, got V = {vocab}")
    if token_ids.numel() > 0:
        low, high = int(token_ids.min()), int(token_ids.max())
        if low < 0 or high >= vocab:
            raise ValueError(f"token_ids must lie in [0, {vocab}), got values in [{low}, {high}]")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")


def token_logprobs_entropy(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    temperature: float = 1.0,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each sampled token and the entropy of its next-token distribution, differentiable.

    Both are of softmax(logits / temperature), computed in float32 from logits of any float dtype, in one
    pass over the vocabulary per row; backward recomputes softmax from saved per-row log-sum-exp and
    entropy, so no [N, V] float32 tensor is ever stored.

    Args:
        logits: (N, V) or (B, T, V) bf16/fp16/fp32; the last dim need not be contiguous with the others
            (a time slice of the model's logits is read in place by the kernel).
        token_ids: (N,) or (B, T) integer, values in [0, V).
        temperature: > 0, applied inside (z = logits / temperature).
        backend: "auto" | "triton" | "torch".
        chunk_size: rows per chunk of the torch twin (default: about 2^24 / V); ignored by Triton.

    Returns:
        (logprobs, entropy), each float32 with the leading shape of ``logits`` (entropy in nats).
        A row whose logits are all -inf, or that holds +inf or NaN, gives NaN.
    """
    _check_token_stats_args(logits, token_ids, temperature, chunk_size)
    temperature = float(temperature)
    if _use_triton(backend, logits, token_ids):
        from scalingrl.kernels.token_stats import TokenStatsFunction

        return TokenStatsFunction.apply(logits, token_ids, temperature)
    return TokenStatsTorch.apply(logits, token_ids, temperature, _twin_chunk_rows(logits.shape[-1], chunk_size))


# --------------------------------------------------------------------------------------------------
# sequence_stats
# --------------------------------------------------------------------------------------------------

SEQUENCE_STAT_KEYS = ("response_length", "entropy_mean", "entropy_max", "high_entropy_fraction", "logprob_sum")


def sequence_stats_torch(
    entropy: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    high_entropy_threshold: float = HIGH_ENTROPY_THRESHOLD,
) -> dict[str, torch.Tensor]:
    """The twin of ``sequence_stats`` (same arguments, already checked; mask is bool)."""
    entropy, logprobs = entropy.float(), logprobs.float()
    length = mask.sum(dim=1).float()
    denom = length.clamp_min(1.0)
    masked_entropy = torch.where(mask, entropy, 0.0)
    peak = torch.where(mask, entropy, -math.inf).amax(dim=1) if entropy.shape[1] else torch.zeros_like(length)
    return {
        "response_length": length,
        "entropy_mean": masked_entropy.sum(dim=1) / denom,
        "entropy_max": torch.where(length > 0, peak, 0.0),
        "high_entropy_fraction": (mask & (entropy > high_entropy_threshold)).sum(dim=1).float() / denom,
        "logprob_sum": torch.where(mask, logprobs, 0.0).sum(dim=1),
    }


def sequence_stats(
    entropy: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    high_entropy_threshold: float = HIGH_ENTROPY_THRESHOLD,
    backend: str = "auto",
) -> dict[str, torch.Tensor]:
    """Per-sequence chain-of-thought statistics over the response tokens (feeds DES's CoT-complexity factor).

    Args:
        entropy: (B, T) float, per-token entropy in nats (e.g. from ``token_logprobs_entropy``).
        logprobs: (B, T) float, per-token log-prob of the sampled token.
        mask: (B, T) bool or numeric; nonzero marks a response token. Values outside the mask are ignored,
            NaN included.
        high_entropy_threshold: a token counts as high-entropy when its entropy is strictly above this
            (nats; default 0.672, the 80th-percentile CoT entropy of Wang et al. 2025).
        backend: "auto" | "triton" | "torch".

    Returns:
        dict with keys response_length, entropy_mean, entropy_max, high_entropy_fraction, logprob_sum,
        each (B,) float32. A row with an empty mask gives length 0 and 0.0 for every other statistic.
        Not differentiable.
    """
    for name, t in (("entropy", entropy), ("logprobs", logprobs), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be (B, T), got shape {tuple(t.shape)}")
    for name, t in (("entropy", entropy), ("logprobs", logprobs)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got dtype {t.dtype}")
    if not (entropy.shape == logprobs.shape == mask.shape):
        raise ValueError(
            f"entropy {tuple(entropy.shape)}, logprobs {tuple(logprobs.shape)} and mask "
            f"{tuple(mask.shape)} must have the same shape"
        )
    if mask.is_complex():
        raise TypeError(f"mask must be bool or real numeric, got dtype {mask.dtype}")
    _check_same_device(entropy=entropy, logprobs=logprobs, mask=mask)
    threshold = float(high_entropy_threshold)
    if math.isnan(threshold):
        raise ValueError("high_entropy_threshold must not be NaN")
    entropy, logprobs = entropy.detach(), logprobs.detach()
    mask = mask.detach() if mask.dtype == torch.bool else mask.detach() != 0
    if _use_triton(backend, entropy, logprobs, mask):
        from scalingrl.kernels.sequence_stats import sequence_stats_forward

        return sequence_stats_forward(entropy, logprobs, mask, threshold)
    return sequence_stats_torch(entropy, logprobs, mask, threshold)


# --------------------------------------------------------------------------------------------------
# group_advantages
# --------------------------------------------------------------------------------------------------

GROUP_STAT_KEYS = ("reward_mean", "reward_std", "pass_rate", "zero_variance")


def _unbiased_std(x: torch.Tensor, dim=None) -> torch.Tensor:
    """torch.std (Bessel-corrected, as TRL and verl use), defined as 0 for a single sample."""
    n = x.numel() if dim is None else x.shape[dim]
    if n < 2:
        return torch.zeros(() if dim is None else x.shape[:dim] + x.shape[dim + 1 :], dtype=x.dtype, device=x.device)
    return x.std() if dim is None else x.std(dim=dim)


def group_advantages_torch(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6, pass_threshold: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The twin of ``group_advantages`` (same arguments, already checked)."""
    r = rewards.float().reshape(-1, group_size)
    zero_variance = r.amax(dim=1) == r.amin(dim=1)
    # A constant group gets its reward as the mean exactly, std 0 and advantages exactly 0 (a float mean of
    # G equal values can be off by an ulp, which eps would blow up to ~1e-2).
    mean = torch.where(zero_variance, r[:, 0], r.mean(dim=1))
    std = torch.where(zero_variance, 0.0, _unbiased_std(r, dim=1))
    centred = r - mean.unsqueeze(1)
    if scale == "group":
        advantages = centred / (std.unsqueeze(1) + eps)
    elif scale == "batch":
        advantages = centred / (_unbiased_std(r.reshape(-1)) + eps)
    else:
        advantages = centred
    stats = {
        "reward_mean": mean,
        "reward_std": std,
        "pass_rate": (r >= pass_threshold).float().mean(dim=1),
        "zero_variance": zero_variance,
    }
    return advantages.reshape(-1), stats


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: str = "group",
    eps: float = 1e-6,
    backend: str = "auto",
    pass_threshold: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO advantages and per-group reward statistics (feed DES's difficulty and adaptability factors).

    Rows g*G .. g*G+G-1 are the G completions of prompt g. Every std is Bessel-corrected (unbiased,
    torch.std, as TRL and verl), and 0 for G = 1.

    Args:
        rewards: (N,) float, N = num_groups * group_size.
        group_size: G >= 1, dividing N.
        scale: "group": (r - group mean) / (group std + eps) (GRPO); "batch": (r - group mean) /
            (std of all N rewards + eps); "none": r - group mean (Dr. GRPO).
        eps: >= 0, added to the std.
        backend: "auto" | "triton" | "torch".
        pass_threshold: a reward >= this counts as a pass (a correct answer scores 1.0).

    Returns:
        advantages (N,) float32 and a dict of (num_groups,) tensors: reward_mean, reward_std, pass_rate
        (float32) and zero_variance (bool: every reward in the group is exactly equal; such a group gets
        its reward as mean, std 0 and advantages exactly 0).
    """
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"rewards must be a torch tensor, got {type(rewards).__name__}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be (N,), got shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        raise TypeError(f"rewards must be a float tensor, got dtype {rewards.dtype}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if rewards.numel() % group_size:
        raise ValueError(f"group_size {group_size} must divide the number of rewards {rewards.numel()}")
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"scale must be one of {ADVANTAGE_SCALES}, got {scale!r}")
    if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    rewards = rewards.detach()
    if _use_triton(backend, rewards):
        from scalingrl.kernels.group_advantages import group_advantages_forward

        return group_advantages_forward(rewards, group_size, scale, float(eps), float(pass_threshold))
    return group_advantages_torch(rewards, group_size, scale, float(eps), float(pass_threshold))
