"""Generated tokens/s of the two rollout engines on the same model, prompts and sampling.

    python benchmarks/bench_rollout.py --model models/smollm2-135m --prompts 16 --group-size 4 --max-new-tokens 128

Both engines get the same formatted GSM8K test prompts (chat template, the smollm2_gsm8k system
prompt), the same SamplingConfig (temperature, top_p 1, max_new_tokens, G samples per prompt) and
are timed over the same number of generate calls after one warm-up call; what a user would use
instead of vLLM is HF ``generate`` (``rollout.engine=hf``). Engine start time is reported apart.
Writes benchmarks/results/rollout_cpu.json (or --output). On a shared CPU read the ratio, not the
absolute numbers; the JSON records the load average at start and end.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path


def _run(engine, prompts, references, sampling, repeats: int, seed: int) -> dict:
    import torch

    from scalingrl.data import _reference
    from scalingrl.rewards import RewardConfig, score_completions

    torch.manual_seed(seed)
    engine.generate(prompts[:2], sampling)  # warm-up
    tokens, seconds, truncated, correct = 0.0, 0.0, 0.0, []
    for repeat in range(repeats):
        torch.manual_seed(seed + 1 + repeat)
        started = time.perf_counter()
        batch = engine.generate(prompts, sampling)
        seconds += time.perf_counter() - started
        tokens += float(batch.response_mask.sum())
        truncated += float(batch.truncated.float().mean())
        answers = [_reference(reference) for reference in references for _ in range(sampling.group_size)]
        correct += score_completions(batch.texts, answers, RewardConfig())[1]
    return {
        "generated_tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "truncated_fraction": truncated / repeats,
        "pass_rate": sum(correct) / len(correct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/smollm2-135m")
    parser.add_argument("--data", default="../shared/data/gsm8k/test.jsonl")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vllm-dtype", default="float32")
    parser.add_argument(
        "--vllm-compile", action="store_true", help="torch.compile in vLLM (default: eager, as the preset)"
    )
    parser.add_argument("--hf-dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "rollout_cpu.json"))
    args = parser.parse_args()

    import torch

    from scalingrl.config import preset_dir
    from scalingrl.data import format_prompts, load_rows
    from scalingrl.model import load_model_and_tokenizer
    from scalingrl.rollout import HFGenerateEngine, SamplingConfig, VLLMEngine

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    config = __import__("yaml").safe_load((preset_dir() / "smollm2_gsm8k.yaml").read_text())
    rows = load_rows(args.data)[: args.prompts]
    model, tokenizer = load_model_and_tokenizer(args.model, args.hf_dtype)
    prompts = format_prompts(
        tokenizer, [row["question"] for row in rows], "{prompt}", True, config["model"]["system_prompt"]
    )
    results = {}
    for name in ("vllm", "hf"):
        sampling = SamplingConfig(
            engine=name,
            group_size=args.group_size,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            max_prompt_tokens=512,
            vllm_dtype=args.vllm_dtype,
            vllm_enforce_eager=not args.vllm_compile,
        )
        started = time.perf_counter()
        engine = (
            VLLMEngine(args.model, tokenizer, sampling, seed=args.seed)
            if name == "vllm"
            else HFGenerateEngine(model, tokenizer)
        )
        start_s = time.perf_counter() - started
        results[name] = {
            "engine_start_s": start_s,
            **_run(engine, prompts, [row["answer"] for row in rows], sampling, args.repeats, args.seed),
        }
        del engine  # frees the vLLM engine process before the HF run
        __import__("gc").collect()
    ratio = results["vllm"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
    print(f"{'engine':<6} {'start s':>8} {'tokens':>8} {'gen s':>8} {'tokens/s':>9} {'truncated':>9} {'pass':>6}")
    for name, row in results.items():
        print(
            f"{name:<6} {row['engine_start_s']:8.1f} {row['generated_tokens']:8.0f} {row['seconds']:8.1f} "
            f"{row['tokens_per_s']:9.1f} {row['truncated_fraction']:9.2f} {row['pass_rate']:6.3f}"
        )
    print(f"vLLM / HF generated tokens/s: {ratio:.2f}x")
    out = {
        "command": "python benchmarks/bench_rollout.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("output", "vllm_compile"))
        + (" --vllm-compile" if args.vllm_compile else ""),
        "settings": vars(args),
        "results": results,
        "vllm_over_hf_tokens_per_s": ratio,
        "loadavg_1min_start": load_start,
        "loadavg_1min_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
