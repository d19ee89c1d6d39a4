"""Rollout engines: turn prompts into G sampled completions with their sampling log-probs.

``RolloutEngine`` is the interface the trainer talks to: ``generate`` (G samples per prompt, group-
contiguous) and ``sync_weights`` (called after every optimizer step). ``HFGenerateEngine`` is the CPU
default: it samples with ``transformers`` ``generate`` from the policy module itself, so syncing is
free. ``VLLMEngine`` wraps a vLLM ``LLM`` and pushes new weights in place after each update; it is
optional (vLLM is not a dependency) and only imported when selected.

Left out on purpose: reward computation and any training-side tensors (the trainer re-scores
log-probs with gradients in ``scalingrl.grpo``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

__all__ = ["SamplingConfig", "RolloutBatch", "RolloutEngine", "HFGenerateEngine", "VLLMEngine", "make_engine"]


@dataclasses.dataclass
class SamplingConfig:
    """How completions are sampled.

    Attributes:
        engine: "hf" (transformers generate; CPU default) or "vllm" (GPU; needs the vllm extra).
        group_size: G, samples per prompt.
        temperature: sampling temperature (> 0); 0 means greedy decoding (argmax each token;
            evaluation only: GRPO training needs sampled groups and rejects it).
        top_p: nucleus sampling mass (1.0 = off).
        max_new_tokens: longest completion in tokens.
        vllm_gpu_memory_utilization: fraction of GPU memory vLLM may take (engine="vllm" only).
    """

    engine: str = "hf"
    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 40
    vllm_gpu_memory_utilization: float = 0.4

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"rollout.engine must be 'hf' or 'vllm', got {self.engine!r}")
        if self.group_size < 2:
            raise ValueError(f"rollout.group_size must be >= 2 (GRPO compares samples of a group), got {self.group_size}")
        if not self.temperature >= 0:
            raise ValueError(f"rollout.temperature must be > 0 (or 0 for greedy decoding), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"rollout.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"rollout.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclasses.dataclass
class RolloutBatch:
    """Completions of B prompts x G samples, group-contiguous (row b*G + g).

    Attributes:
        prompt_ids: (N, P) int64 left-padded prompt tokens (pad = tokenizer pad id).
        prompt_mask: (N, P) int64, 1 on real prompt tokens.
        response_ids: (N, R) int64 right-padded completion tokens (EOS included when emitted).
        response_mask: (N, R) float32, 1 on completion tokens.
        sampling_logprobs: (N, R) float32 log-probs of the sampled tokens under the sampling
            distribution (temperature applied); 0 on padding.
        texts: N decoded completions (special tokens removed).
        truncated: (N,) bool tensor, True where the completion was cut off at ``max_new_tokens``
            (no EOS); None when the engine cannot tell.
    """

    prompt_ids: Any
    prompt_mask: Any
    response_ids: Any
    response_mask: Any
    sampling_logprobs: Any
    texts: list[str]
    truncated: Any = None

    def to(self, device) -> "RolloutBatch":
        """The same batch with every tensor on ``device`` (the policy's device); texts unchanged."""
        return RolloutBatch(self.prompt_ids.to(device), self.prompt_mask.to(device), self.response_ids.to(device),
                            self.response_mask.to(device), self.sampling_logprobs.to(device), self.texts,
                            None if self.truncated is None else self.truncated.to(device))


class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:
        """G samples for each prompt (already formatted text), group-contiguous."""

    def sync_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights (after an optimizer step)."""


def _pad_right(rows: list[list[int]], pad: int):
    import torch

    width = max(1, max(map(len, rows)))
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1.0
    return out, mask


class HFGenerateEngine:
    """Samples with ``model.generate`` from the live policy module (no weight copy, no sync cost).

    Args:
        model: the policy ``PreTrainedModel`` (the unwrapped module of the training engine).
        tokenizer: its tokenizer, padding on the left.
    """

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def sync_weights(self, model) -> None:
        self.model = model

    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:
        import torch

        group = group_size or config.group_size
        tokenizer = self.tokenizer
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not getattr(tokenizer, "chat_template", None))
        device = next(self.model.parameters()).device
        prompt_ids = encoded["input_ids"].repeat_interleave(group, dim=0).to(device)
        prompt_mask = encoded["attention_mask"].repeat_interleave(group, dim=0).to(device)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            decoding = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0)
            if config.temperature == 0:  # greedy: argmax tokens, log-probs of the untempered model
                decoding = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
            out = self.model.generate(
                input_ids=prompt_ids, attention_mask=prompt_mask, **decoding, max_new_tokens=config.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                return_dict_in_generate=True, output_scores=True,
            )
            logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        self.model.train(was_training)
        generated = out.sequences[:, prompt_ids.shape[1]:]
        rows, logprob_rows, truncated = [], [], []
        for tokens, token_logprobs in zip(generated.tolist(), logprobs.float()):
            length = len(tokens)
            if tokenizer.eos_token_id in tokens:
                length = tokens.index(tokenizer.eos_token_id) + 1
            truncated.append(tokenizer.eos_token_id not in tokens)  # ran to max_new_tokens
            rows.append(tokens[:length])
            logprob_rows.append(token_logprobs[:length])
        response_ids, response_mask = _pad_right(rows, tokenizer.pad_token_id)
        sampling_logprobs = torch.zeros_like(response_mask)
        for i, row in enumerate(logprob_rows):
            sampling_logprobs[i, : len(row)] = row
        texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return RolloutBatch(prompt_ids, prompt_mask.long(), response_ids, response_mask, sampling_logprobs, texts,
                            torch.tensor(truncated, dtype=torch.bool))


class VLLMEngine:
    """vLLM rollouts with in-place weight sync (GPU; ``pip install scalingrl[vllm]``).

    After each optimizer step the trainer calls ``sync_weights(model)``, which streams the policy's
    parameters into the running engine (``load_weights`` on the driver worker via ``collective_rpc``),
    so no engine restart and no checkpoint round trip happen between steps.

    Args:
        model_path: HF folder the engine starts from (the same weights as the policy at step 0).
        tokenizer: the policy tokenizer (for padding and decoding ids back).
        gpu_memory_utilization: vLLM memory fraction.
        max_model_len: longest prompt + completion.
    """

    def __init__(self, model_path: str, tokenizer, gpu_memory_utilization: float = 0.4, max_model_len: int = 4096) -> None:
        try:
            from vllm import LLM
        except ImportError as error:  # pragma: no cover - optional dependency
            raise ImportError("rollout.engine='vllm' needs vLLM: pip install 'scalingrl[vllm]'") from error
        self.tokenizer = tokenizer
        self.llm = LLM(model=model_path, gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       enable_prefix_caching=True)

    def sync_weights(self, model) -> None:  # pragma: no cover - needs a GPU and vLLM
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]

        def _load(worker, weights=weights):
            worker.model_runner.model.load_weights(weights=weights)

        self.llm.collective_rpc(_load)
        self.llm.reset_prefix_cache()

    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:  # pragma: no cover
        import torch
        from vllm import SamplingParams

        group = group_size or config.group_size
        params = SamplingParams(n=group, temperature=config.temperature, top_p=config.top_p,
                                max_tokens=config.max_new_tokens, logprobs=0)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True)
        rows, logprob_rows, texts, truncated = [], [], [], []
        for output in outputs:
            for sample in output.outputs:
                truncated.append(sample.finish_reason == "length")
                rows.append(list(sample.token_ids))
                logprob_rows.append([next(iter(step.values())).logprob for step in sample.logprobs])
                texts.append(sample.text)
        response_ids, response_mask = _pad_right(rows, self.tokenizer.pad_token_id)
        sampling_logprobs = torch.zeros_like(response_mask)
        for i, row in enumerate(logprob_rows):
            sampling_logprobs[i, : len(row)] = torch.tensor(row)
        return RolloutBatch(encoded["input_ids"].repeat_interleave(group, 0),
                            encoded["attention_mask"].repeat_interleave(group, 0),
                            response_ids, response_mask, sampling_logprobs, texts, torch.tensor(truncated, dtype=torch.bool))


def make_engine(config: SamplingConfig, model, tokenizer, model_path: str | None = None) -> RolloutEngine:
    """The engine named by ``config.engine`` for the policy ``model``."""
    if config.engine == "vllm":
        return VLLMEngine(model_path, tokenizer, config.vllm_gpu_memory_utilization)
    return HFGenerateEngine(model, tokenizer)
