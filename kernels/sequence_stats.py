"""Per-sequence chain-of-thought statistics from per-token entropy, log-prob and the response mask.

One program per sequence streams its T tokens in BLOCK_T tiles, accumulating the response length, the sum
and max of entropy, the count of tokens above the high-entropy threshold and the sum of log-probs, all in
float32. Values outside the mask are never used (NaN there is harmless). Left out: gradients (these are
statistics for data selection, not a loss) and any quantile-based threshold (it would need a sort).
The torch twin is ``scalingrl.ops.sequence_stats_torch``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _sequence_stats_kernel(
    ENTROPY_ptr,
    LOGPROB_ptr,
    MASK_ptr,
    LENGTH_ptr,
    ENTROPY_MEAN_ptr,
    ENTROPY_MAX_ptr,
    HIGH_FRACTION_ptr,
    LOGPROB_SUM_ptr,
    T,
    stride_eb,
    stride_lb,
    stride_mb,
    threshold,
    BLOCK_T: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    count = 0.0
    entropy_sum = 0.0
    entropy_max = float("-inf")
    high = 0.0
    logprob_sum = 0.0
    for start in range(0, T, BLOCK_T):
        offs = start + tl.arange(0, BLOCK_T)
        in_row = offs < T
        keep = (tl.load(MASK_ptr + row * stride_mb + offs, mask=in_row, other=0) != 0) & in_row
        ent = tl.load(ENTROPY_ptr + row * stride_eb + offs, mask=keep, other=0.0).to(tl.float32)
        lp = tl.load(LOGPROB_ptr + row * stride_lb + offs, mask=keep, other=0.0).to(tl.float32)
        count += tl.sum(keep.to(tl.float32), axis=0)
        entropy_sum += tl.sum(tl.where(keep, ent, 0.0), axis=0)
        entropy_max = tl.maximum(entropy_max, tl.max(tl.where(keep, ent, float("-inf")), axis=0))
        high += tl.sum((keep & (ent > threshold)).to(tl.float32), axis=0)
        logprob_sum += tl.sum(tl.where(keep, lp, 0.0), axis=0)
    denom = tl.maximum(count, 1.0)
    tl.store(LENGTH_ptr + row, count)
    tl.store(ENTROPY_MEAN_ptr + row, entropy_sum / denom)
    tl.store(ENTROPY_MAX_ptr + row, tl.where(count > 0, entropy_max, 0.0))
    tl.store(HIGH_FRACTION_ptr + row, high / denom)
    tl.store(LOGPROB_SUM_ptr + row, logprob_sum)


def sequence_stats_forward(
    entropy: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
    out: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Launch the kernel.

    Args:
        entropy, logprobs: (B, T) float (any float dtype; read as float32).
        mask: (B, T) bool, True marks a response token.
        threshold: high-entropy threshold in nats (strictly above counts).
        out: optional dict of the five (B,) float32 contiguous outputs.

    Returns:
        dict response_length, entropy_mean, entropy_max, high_entropy_fraction, logprob_sum, each (B,) float32.
    """
    B, T = entropy.shape
    entropy = entropy if entropy.stride(-1) == 1 else entropy.contiguous()
    logprobs = logprobs if logprobs.stride(-1) == 1 else logprobs.contiguous()
    mask = (mask if mask.stride(-1) == 1 else mask.contiguous()).view(torch.uint8)
    keys = ("response_length", "entropy_mean", "entropy_max", "high_entropy_fraction", "logprob_sum")
    if out is None:
        out = {key: torch.empty(B, dtype=torch.float32, device=entropy.device) for key in keys}
    if B:
        block_t = min(1024, triton.next_power_of_2(max(T, 1)))
        _sequence_stats_kernel[(B,)](
            entropy,
            logprobs,
            mask,
            *(out[key] for key in keys),
            T,
            entropy.stride(0),
            logprobs.stride(0),
            mask.stride(0),
            threshold,
            BLOCK_T=block_t,
        )
    return {key: out[key] for key in keys}
