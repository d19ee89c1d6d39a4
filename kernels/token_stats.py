"""Fused per-token log-prob and entropy of softmax(logits / T): one read of the logits per row.

Forward: one program per row streams the vocabulary in BLOCK_V tiles keeping an online max m, the sum of
exp d = sum exp(z - m) and s = sum exp(z - m) (z - m), all float32; then lse = m + log d, logprob =
z_t - lse, entropy = log d - s / d. Only lse and entropy (8 bytes a row) are saved for backward, which
re-reads the logits once and writes d/dlogits in the logits' dtype:

    d logprob / dz_j = [j == t] - p_j,    d entropy / dz_j = -p_j (log p_j + H),    z = x / T.

Offsets are int64 (N * V passes 2^31 at real sizes). The input may be a (B, T, V) view with any batch and
time strides as long as the vocabulary dim is unit-stride, so a time slice of the model's logits is
read in place. Left out: ignore-index rows (the caller masks afterwards), label smoothing, in-place
gradient into the logits buffer, and a split of one row over several programs (rows are long enough).
The torch twin is ``scalingrl.ops.TokenStatsTorch``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


def _block_v(vocab: int) -> int:
    # The interpreter pays per tile, the GPU wants a tile that keeps 8 warps busy with 16-byte loads.
    cap = 16384 if os.environ.get("TRITON_INTERPRET") == "1" else 4096
    return min(cap, triton.next_power_of_2(vocab))


@triton.jit
def _token_stats_fwd_kernel(
    X_ptr,
    IDS_ptr,
    LOGPROB_ptr,
    ENTROPY_ptr,
    LSE_ptr,
    T,
    V,
    stride_xb,
    stride_xt,
    stride_ib,
    stride_it,
    inv_temperature,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    b = row // T
    t = row % T
    x_row = X_ptr + b * stride_xb + t * stride_xt
    target = tl.load(IDS_ptr + b * stride_ib + t * stride_it).to(tl.int64)
    m = float("-inf")
    d = 0.0
    s = 0.0
    for start in range(0, V, BLOCK_V):
        offs = start + tl.arange(0, BLOCK_V)
        z = tl.load(x_row + offs, mask=offs < V, other=float("-inf")).to(tl.float32) * inv_temperature
        m_new = tl.maximum(m, tl.max(z, axis=0))
        # Rescale the running sums to the new max. Every difference below is between finite numbers or
        # finite minus -inf, never -inf - -inf, so no NaN is formed even in lanes that are discarded.
        m_new_finite = tl.where(m_new > float("-inf"), m_new, 0.0)
        shift = tl.where(m > float("-inf"), m, m_new_finite) - m_new_finite
        scale = tl.exp(shift)
        s = scale * (s + d * shift)
        d = scale * d
        live = z > float("-inf")
        zc = tl.where(live, z - m_new_finite, 0.0)
        e = tl.where(live, tl.exp(zc), 0.0)
        d += tl.sum(e, axis=0)
        s += tl.sum(e * zc, axis=0)
        m = m_new
    z_t = tl.load(x_row + target).to(tl.float32) * inv_temperature
    log_d = tl.log(d)
    lse = m + log_d
    tl.store(LOGPROB_ptr + row, z_t - lse)
    tl.store(ENTROPY_ptr + row, log_d - s / d)
    tl.store(LSE_ptr + row, lse)


@triton.jit
def _token_stats_bwd_kernel(
    X_ptr,
    IDS_ptr,
    LSE_ptr,
    ENTROPY_ptr,
    GRAD_LOGPROB_ptr,
    GRAD_ENTROPY_ptr,
    GRAD_X_ptr,
    T,
    V,
    stride_xb,
    stride_xt,
    stride_ib,
    stride_it,
    inv_temperature,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    b = row // T
    t = row % T
    x_row = X_ptr + b * stride_xb + t * stride_xt
    grad_row = GRAD_X_ptr + row * V
    target = tl.load(IDS_ptr + b * stride_ib + t * stride_it).to(tl.int64)
    lse = tl.load(LSE_ptr + row)
    entropy = tl.load(ENTROPY_ptr + row)
    g_lp = tl.load(GRAD_LOGPROB_ptr + row)
    g_ent = tl.load(GRAD_ENTROPY_ptr + row)
    for start in range(0, V, BLOCK_V):
        offs = start + tl.arange(0, BLOCK_V)
        in_row = offs < V
        z = tl.load(x_row + offs, mask=in_row, other=float("-inf")).to(tl.float32) * inv_temperature
        live = z > float("-inf")
        logp = tl.where(live, z - lse, 0.0)  # finite in every lane, so 0 * inf never forms
        p = tl.where(live, tl.exp(logp), 0.0)
        grad = p * (-g_lp - g_ent * (logp + entropy))
        grad += tl.where(offs == target, g_lp, 0.0)
        grad = grad * inv_temperature
        tl.store(grad_row + offs, grad.to(GRAD_X_ptr.dtype.element_ty), mask=in_row)


def _rows3d(logits: torch.Tensor) -> torch.Tensor:
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    return logits.unsqueeze(0) if logits.dim() == 2 else logits


def _ids2d(token_ids: torch.Tensor) -> torch.Tensor:
    return token_ids.unsqueeze(0) if token_ids.dim() == 1 else token_ids


def token_stats_forward(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    temperature: float = 1.0,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
):
    """Launch the forward kernel.

    Args:
        logits: (N, V) or (B, T, V) bf16/fp16/fp32, vocabulary dim unit-stride (copied otherwise).
        token_ids: integer, the leading shape of logits, values in [0, V) (not checked here).
        temperature: > 0.
        out: optional (logprobs, entropy, lse), each float32 contiguous with N = B*T elements.

    Returns:
        (logprobs, entropy, lse), each (B*T,) float32.
    """
    rows, ids = _rows3d(logits), _ids2d(token_ids)
    B, T, V = rows.shape
    n = B * T
    if out is None:
        out = tuple(torch.empty(n, dtype=torch.float32, device=logits.device) for _ in range(3))
    logprobs, entropy, lse = out
    if n:
        _token_stats_fwd_kernel[(n,)](
            rows,
            ids,
            logprobs,
            entropy,
            lse,
            T,
            V,
            rows.stride(0),
            rows.stride(1),
            ids.stride(0),
            ids.stride(1),
            1.0 / temperature,
            BLOCK_V=_block_v(V),
            num_warps=8,
        )
    return logprobs, entropy, lse


def token_stats_backward(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor,
    grad_logprobs: torch.Tensor,
    grad_entropy: torch.Tensor,
    temperature: float = 1.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Launch the backward kernel.

    Args:
        logits, token_ids, temperature: as in ``token_stats_forward``.
        lse, entropy: (B*T,) float32 from the forward.
        grad_logprobs, grad_entropy: (B*T,) float32 contiguous upstream gradients.
        out: optional (B, T, V) contiguous tensor of the logits' dtype for the gradient.

    Returns:
        d loss / d logits, contiguous, shaped like ``logits``, in the logits' dtype.
    """
    rows, ids = _rows3d(logits), _ids2d(token_ids)
    B, T, V = rows.shape
    if out is None:
        out = torch.empty((B, T, V), dtype=logits.dtype, device=logits.device)
    if B * T:
        _token_stats_bwd_kernel[(B * T,)](
            rows,
            ids,
            lse,
            entropy,
            grad_logprobs,
            grad_entropy,
            out,
            T,
            V,
            rows.stride(0),
            rows.stride(1),
            ids.stride(0),
            ids.stride(1),
            1.0 / temperature,
            BLOCK_V=_block_v(V),
            num_warps=8,
        )
    return out.reshape(logits.shape)


class TokenStatsFunction(torch.autograd.Function):
    """(logits, token_ids, temperature) -> (logprobs, entropy), leading shape of logits, float32."""

    @staticmethod
    def forward(ctx, logits, token_ids, temperature):
        logprobs, entropy, lse = token_stats_forward(logits, token_ids, temperature)
        ctx.save_for_backward(logits, token_ids, lse, entropy)
        ctx.temperature = temperature
        lead = logits.shape[:-1]
        return logprobs.reshape(lead), entropy.reshape(lead)

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        logits, token_ids, lse, entropy = ctx.saved_tensors
        zeros = torch.zeros_like(lse)
        g_lp = zeros if grad_logprobs is None else grad_logprobs.reshape(-1).float().contiguous()
        g_ent = zeros if grad_entropy is None else grad_entropy.reshape(-1).float().contiguous()
        grad = token_stats_backward(logits, token_ids, lse, entropy, g_lp, g_ent, ctx.temperature)
        return grad, None, None
