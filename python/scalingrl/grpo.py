"""GRPO loss: the clipped surrogate on group-relative advantages, as pure functions of tensors.

``policy_loss`` takes the per-token log-probs of the current policy, the old (sampling) log-probs,
per-sequence advantages and the response mask, and returns the loss with its statistics:
PPO clipping with separate low/high ranges (``clip_high > clip_low`` is DAPO's clip-higher),
token-mean or sequence-mean aggregation, and an optional k3 KL penalty to a reference policy.
The tests compare it against a slow per-token loop (``tests/references.py``). ``response_logprobs``
runs the model and scores the sampled tokens through ``scalingrl.ops``.

Left out on purpose: advantage estimation (``scalingrl.ops.group_advantages``) and any optimizer step.
"""

from __future__ import annotations

import dataclasses

import torch

from scalingrl.config_field import config_field

__all__ = ["GRPOConfig", "policy_loss", "response_logprobs", "AGGREGATIONS"]

AGGREGATIONS = ("token_mean", "sequence_mean")


@dataclasses.dataclass
class GRPOConfig:
    """The GRPO objective."""

    clip_low: float = config_field(0.2, help="lower clip range epsilon (ratio >= 1 - clip_low).")
    clip_high: float = config_field(
        0.28,
        help="upper clip range epsilon (ratio <= 1 + clip_high); > clip_low is clip-higher.",
    )
    aggregation: str = config_field(
        "token_mean",
        help='"token_mean" (every token of the batch weighs the same; DAPO) or "sequence_mean" (mean over each '
        "sequence's tokens, then over sequences; GRPO paper).",
    )
    kl_coef: float = config_field(
        0.0,
        help="weight of the k3 KL penalty to the initial (reference) policy; 0 skips the reference model altogether.",
    )
    advantage_scale: str = config_field(
        "group",
        help='"group" (divide by the group std), "batch" (by the batch std) or "none".',
    )
    updates_per_batch: int = config_field(
        1,
        help="optimizer steps per rollout batch (the batch is split into this many mini-batches); > 1 makes the "
        "old log-probs and clipping matter.",
    )

    def __post_init__(self) -> None:
        if not 0 < self.clip_low < 1:
            raise ValueError(f"grpo.clip_low must be in (0, 1), got {self.clip_low}")
        if not self.clip_high > 0:
            raise ValueError(f"grpo.clip_high must be > 0, got {self.clip_high}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"grpo.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.kl_coef < 0:
            raise ValueError(f"grpo.kl_coef must be >= 0, got {self.kl_coef}")
        if self.advantage_scale not in ("group", "batch", "none"):
            raise ValueError(f"grpo.advantage_scale must be 'group', 'batch' or 'none', got {self.advantage_scale!r}")
        if self.updates_per_batch < 1:
            raise ValueError(f"grpo.updates_per_batch must be >= 1, got {self.updates_per_batch}")


def _aggregate(
    values: torch.Tensor, mask: torch.Tensor, aggregation: str, normalizer: float | None = None
) -> torch.Tensor:
    if aggregation == "token_mean":
        return (values * mask).sum() / (normalizer if normalizer is not None else mask.sum().clamp_min(1.0))
    per_sequence = (values * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
    count = normalizer if normalizer is not None else (mask.sum(-1) > 0).sum().clamp_min(1)
    return per_sequence.sum() / count  # rows without tokens do not count


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOConfig,
    ref_logprobs: torch.Tensor | None = None,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-surrogate GRPO loss.

    Args:
        logprobs: (N, R) float32 current-policy log-probs of the sampled tokens (differentiable).
        old_logprobs: (N, R) float32 log-probs under the policy that sampled them.
        advantages: (N,) float32 per-sequence advantages.
        mask: (N, R) float32, 1 on response tokens.
        config: clip ranges, aggregation, KL weight.
        ref_logprobs: (N, R) float32 reference-policy log-probs; needed when ``config.kl_coef > 0``.
        normalizer: the aggregation's denominator (tokens for token_mean, sequences for
            sequence_mean) when these rows are a subset of a larger batch, e.g. the rows left after
            dropping zero-advantage rows, whose loss terms are exactly 0; None = from ``mask``.

    Returns:
        (loss scalar, stats) with stats "clip_fraction", "ratio_mean", "kl" (k3 to the reference,
        0 without one), "approx_kl_old" (k3 to the old policy).
    """
    mask = mask.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    advantage = advantages.to(logprobs.dtype).unsqueeze(-1)
    unclipped = ratio * advantage
    clipped = ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high) * advantage
    per_token = -torch.minimum(unclipped, clipped)
    kl_value = torch.zeros((), dtype=logprobs.dtype)
    if config.kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("grpo.kl_coef > 0 needs ref_logprobs")
        delta = (ref_logprobs - logprobs).clamp(-20.0, 20.0)
        kl_tokens = torch.exp(delta) - delta - 1.0
        per_token = per_token + config.kl_coef * kl_tokens
        kl_value = _aggregate(kl_tokens.detach(), mask, config.aggregation)
    loss = _aggregate(per_token, mask, config.aggregation, normalizer)
    with torch.no_grad():
        denominator = mask.sum().clamp_min(1.0)
        clip_fraction = (((unclipped - clipped).abs() > 0).to(mask.dtype) * mask).sum() / denominator
        approx_kl_old = ((torch.exp(-log_ratio) + log_ratio - 1.0) * mask).sum() / denominator
        stats = {
            "clip_fraction": float(clip_fraction),
            "ratio_mean": float((ratio * mask).sum() / denominator),
            "kl": float(kl_value),
            "approx_kl_old": float(approx_kl_old),
        }
    return loss, stats


def _logits_to_keep(model, keep: int) -> dict[str, int]:
    """``{"logits_to_keep": keep}`` when the model's forward takes it (transformers causal LMs), else ``{}``.

    Only the last ``keep`` positions' logits are computed: the prompt positions' (N, P, V) logits and
    their share of the lm_head matmul are never built. ``model`` may be a DeepSpeed engine: its
    ``module`` is inspected.
    """
    import inspect

    target = getattr(model, "module", model)
    try:
        parameters = inspect.signature(target.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": keep} if "logits_to_keep" in parameters else {}


def response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask, temperature: float = 1.0):
    """Per-token log-probs and entropies of the sampled response tokens under ``model``.

    Args:
        prompt_ids: (N, P) int64 left-padded; prompt_mask: (N, P) int64.
        response_ids: (N, R) int64 right-padded; response_mask: (N, R) float32.
        temperature: the sampling temperature (log-probs are of softmax(logits / temperature)).

    Returns:
        (logprobs, entropy), each (N, R) float32, differentiable w.r.t. the model parameters.
    """
    from scalingrl import ops

    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention = torch.cat([prompt_mask.long(), response_mask.long()], dim=1)
    position_ids = (attention.cumsum(-1) - 1).clamp_min(0)
    keep = response_ids.shape[1] + 1  # the positions that predict response tokens, plus the last one
    logits = model(
        input_ids=input_ids, attention_mask=attention, position_ids=position_ids, **_logits_to_keep(model, keep)
    ).logits
    response_logits = logits[:, -keep:-1, :]
    return ops.token_logprobs_entropy(response_logits, response_ids, temperature=temperature)
