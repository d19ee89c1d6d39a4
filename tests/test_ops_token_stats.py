"""scalingrl.ops.token_logprobs_entropy: Triton kernel (interpreted on CPU) and torch twin against float64."""

import math
import os
import subprocess
import sys

import pytest
import torch
from testing_utils import requires_cuda

from scalingrl import ops
from scalingrl.kernels import token_stats as kernel

# (dtype, atol, rtol): forward outputs are float32 accumulations of the exact inputs, so the forward
# tolerance is about fp32 summation over V; the gradient is returned in the logits' dtype, so its
# tolerance is that dtype's rounding.
FORWARD_TOL = {torch.float32: (2e-4, 1e-5), torch.bfloat16: (2e-4, 1e-5), torch.float16: (2e-4, 1e-5)}
GRAD_TOL = {torch.float32: (1e-6, 1e-4), torch.bfloat16: (1e-5, 1e-2), torch.float16: (1e-6, 2e-3)}
CASES = [  # (shape, dtype, temperature): odd and real vocab sizes, V never a multiple of the tile
    ((3, 151936), torch.bfloat16, 1.0),
    ((97, 32000), torch.float32, 0.7),
    ((2, 5, 1000), torch.bfloat16, 1.3),
    ((4, 3, 777), torch.float16, 0.6),
    ((5, 1), torch.float32, 1.0),
]
BACKENDS = ["triton", "torch"]


def reference(logits, token_ids, temperature):
    """float64 log-prob and entropy, differentiable by autograd (0 log 0 = 0 without NaN gradients)."""
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    target = logp.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)
    finite = torch.where(torch.isinf(logp), 0.0, logp)
    return target, -(logp.exp() * finite).sum(-1)


def random_logits(shape, dtype, scale=3.0):
    return (torch.randn(shape, dtype=torch.float64) * scale).to(dtype)


def check_against_reference(logits, token_ids, temperature, backend, grad_tol=None):
    dtype = logits.dtype
    x = logits.clone().requires_grad_()
    logprobs, entropy = ops.token_logprobs_entropy(x, token_ids, temperature=temperature, backend=backend)
    x64 = logits.detach().double().requires_grad_()
    ref_lp, ref_ent = reference(x64, token_ids, temperature)
    atol, rtol = FORWARD_TOL[dtype]
    assert logprobs.dtype == entropy.dtype == torch.float32
    assert logprobs.shape == entropy.shape == token_ids.shape
    torch.testing.assert_close(logprobs.double(), ref_lp.detach(), atol=atol, rtol=rtol)
    torch.testing.assert_close(entropy.double(), ref_ent.detach(), atol=atol, rtol=rtol)
    g_lp, g_ent = torch.randn_like(logprobs), torch.randn_like(entropy)
    (grad,) = torch.autograd.grad((logprobs * g_lp + entropy * g_ent).sum(), x)
    (ref_grad,) = torch.autograd.grad((ref_lp * g_lp.double() + ref_ent * g_ent.double()).sum(), x64)
    assert grad.dtype == dtype and grad.shape == logits.shape
    atol, rtol = grad_tol or GRAD_TOL[dtype]
    torch.testing.assert_close(grad.double(), ref_grad, atol=atol, rtol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, dtype, temperature", CASES)
def test_matches_float64_reference(shape, dtype, temperature, backend):
    logits = random_logits(shape, dtype)
    token_ids = torch.randint(0, shape[-1], shape[:-1])
    check_against_reference(logits, token_ids, temperature, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_and_masked_logits(dtype, backend):
    V = 3000
    logits = random_logits((6, V), dtype)
    token_ids = torch.randint(0, V, (6,))
    logits[0, torch.randperm(V)[:10]] = 1e4  # huge logits: one softmax mass on a few entries
    logits[1, torch.randperm(V)[:10]] = -1e4
    logits[2, : V - 3] = -math.inf  # masked vocabulary: only the last three entries live
    token_ids[2] = V - 2
    logits[3, :] = -math.inf  # a single live entry: log-prob 0, entropy 0
    logits[3, 17], token_ids[3] = 5.0, 17
    logits[4, torch.randperm(V)[:100]] = -math.inf  # scattered -inf, target among them: log-prob -inf
    token_ids[4] = int(torch.nonzero(torch.isinf(logits[4]))[0])
    # z = x / T is rounded to fp32 once; at |z| ~ 1e4 that is ~1e-3 absolute in log p, which the gradient
    # p (log p + H) carries: a floor of any fp32 kernel, hence the looser gradient tolerance here.
    check_against_reference(logits, token_ids, 0.9, backend, grad_tol=(1e-4, 1e-3) if dtype == torch.float32 else None)
    logprobs, entropy = ops.token_logprobs_entropy(logits, token_ids, 0.9, backend=backend)
    assert logprobs[3] == 0 and entropy[3] == 0 and logprobs[4] == -math.inf
    assert torch.isfinite(entropy).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_slice_of_model_logits_read_in_place(backend):
    full = random_logits((3, 9, 515), torch.bfloat16)
    logits = full[:, 2:-1, :]  # what grpo.response_logprobs passes: not viewable as (N, V)
    token_ids = torch.randint(0, 515, (3, 6))
    check_against_reference(logits, token_ids, 1.0, backend)


def test_forward_and_backward_write_every_element():
    logits = random_logits((2, 7, 300), torch.float32)
    token_ids = torch.randint(0, 300, (2, 7))
    out = tuple(torch.full((14,), math.nan) for _ in range(3))
    logprobs, entropy, lse = kernel.token_stats_forward(logits, token_ids, 1.1, out=out)
    assert all(torch.isfinite(t).all() for t in (logprobs, entropy, lse))
    grad_out = torch.full((2, 7, 300), math.nan)
    grad = kernel.token_stats_backward(
        logits, token_ids, lse, entropy, torch.randn(14), torch.randn(14), 1.1, out=grad_out
    )
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_twin_chunking_does_not_change_results(chunk_size):
    logits = random_logits((3, 11, 400), torch.bfloat16)
    token_ids = torch.randint(0, 400, (3, 11))
    whole = ops.token_logprobs_entropy(logits, token_ids, backend="torch", chunk_size=10_000)
    chunked = ops.token_logprobs_entropy(logits, token_ids, backend="torch", chunk_size=chunk_size)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_only_one_output_needs_a_gradient():
    logits = random_logits((4, 50), torch.float32).requires_grad_()
    token_ids = torch.randint(0, 50, (4,))
    for backend in BACKENDS:
        logprobs, _ = ops.token_logprobs_entropy(logits, token_ids, backend=backend)
        (grad,) = torch.autograd.grad(logprobs.sum(), logits)
        expected = torch.nn.functional.one_hot(token_ids, 50) - torch.softmax(logits.detach(), -1)
        torch.testing.assert_close(grad, expected.float(), atol=1e-6, rtol=1e-5)


def test_twin_does_not_modify_fp32_logits():
    logits = random_logits((3, 40), torch.float32)
    before = logits.clone()
    ops.token_logprobs_entropy(logits, torch.zeros(3, dtype=torch.long), temperature=0.5, backend="torch")
    assert torch.equal(logits, before)


def test_auto_uses_the_twin_on_cpu(monkeypatch):
    def fail(*args):
        raise AssertionError("the Triton kernel ran on a CPU tensor under backend='auto'")

    monkeypatch.setattr(kernel.TokenStatsFunction, "apply", fail)
    ops.token_logprobs_entropy(random_logits((2, 8), torch.float32), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(token_ids=torch.zeros(3, dtype=torch.long)), ValueError, "shape"),
        (dict(token_ids=torch.tensor([[0, 1, 10], [0, 0, 0]])), ValueError, r"\[0, 10\)"),
        (dict(token_ids=torch.tensor([[0, -1, 0], [0, 0, 0]])), ValueError, r"\[0, 10\)"),
        (dict(token_ids=torch.zeros(2, 3)), TypeError, "integer"),
        (dict(logits=torch.zeros(2, 3, 10, dtype=torch.int64)), TypeError, "dtype"),
        (dict(logits=torch.zeros(2, 3, 10, dtype=torch.float64)), TypeError, "dtype"),
        (dict(logits=torch.zeros(10)), ValueError, "logits must be"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(temperature=math.inf), ValueError, "temperature"),
        (dict(backend="cuda"), ValueError, "backend"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
    ],
)
def test_bad_input_raises(bad, error, match):
    args = dict(
        logits=torch.zeros(2, 3, 10),
        token_ids=torch.zeros(2, 3, dtype=torch.long),
        temperature=1.0,
        backend="torch",
        chunk_size=None,
    )
    args.update(bad)
    with pytest.raises(error, match=match):
        ops.token_logprobs_entropy(**args)


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cuda_kernel_matches_reference(dtype):
    logits = random_logits((64, 151936), dtype).cuda()
    token_ids = torch.randint(0, 151936, (64,), device="cuda")
    check_against_reference(logits, token_ids, 0.8, "auto")


COMPILE_FOR_SM90 = r"""
import warnings
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from scalingrl.kernels import group_advantages as ga, sequence_stats as ss, token_stats as ts

warnings.simplefilter("ignore", UserWarning)  # Triton's FP-fusion default notice
row_args = {"T": "i32", "V": "i32", "stride_xb": "i64", "stride_xt": "i32", "stride_ib": "i32", "stride_it": "i32",
            "inv_temperature": "fp32", "BLOCK_V": "constexpr"}
jobs = [
    (ts._token_stats_fwd_kernel, {"X_ptr": "*bf16", "IDS_ptr": "*i64", "LOGPROB_ptr": "*fp32", "ENTROPY_ptr": "*fp32",
                                  "LSE_ptr": "*fp32", **row_args}, {"BLOCK_V": 4096}),
    (ts._token_stats_bwd_kernel, {"X_ptr": "*bf16", "IDS_ptr": "*i64", "LSE_ptr": "*fp32", "ENTROPY_ptr": "*fp32",
                                  "GRAD_LOGPROB_ptr": "*fp32", "GRAD_ENTROPY_ptr": "*fp32", "GRAD_X_ptr": "*bf16",
                                  **row_args}, {"BLOCK_V": 4096}),
    (ss._sequence_stats_kernel, {**{name: "*fp32" for name in ("ENTROPY_ptr", "LOGPROB_ptr")}, "MASK_ptr": "*u8",
                                 **{name: "*fp32" for name in ("LENGTH_ptr", "ENTROPY_MEAN_ptr", "ENTROPY_MAX_ptr",
                                                               "HIGH_FRACTION_ptr", "LOGPROB_SUM_ptr")},
                                 "T": "i32", "stride_eb": "i32", "stride_lb": "i32", "stride_mb": "i32",
                                 "threshold": "fp32", "BLOCK_T": "constexpr"}, {"BLOCK_T": 1024}),
] + [
    (ga._group_advantages_kernel, {**{name: "*fp32" for name in ("REWARD_ptr", "ADVANTAGE_ptr", "MEAN_ptr", "STD_ptr",
                                                                 "PASS_RATE_ptr")}, "ZERO_VARIANCE_ptr": "*i8",
                                   "BATCH_STD_ptr": "*fp32", "G": "i32", "inv_bessel": "fp32", "eps": "fp32",
                                   "pass_threshold": "fp32", "SCALE": "constexpr", "BLOCK_G": "constexpr"},
     {"SCALE": scale, "BLOCK_G": 16}) for scale in (0, 1, 2)
]
for fn, signature, constexprs in jobs:
    kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                            target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
    assert "cubin" in kernel.asm, fn
print("compiled", len(jobs))
"""


def test_kernels_compile_for_sm90_without_a_gpu():
    """The interpreter does not type-check like the compiler does: lower every kernel to an sm_90 cubin."""
    pytest.importorskip("triton.backends.nvidia")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_SM90], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compiled 6" in done.stdout
