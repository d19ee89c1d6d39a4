"""Build (or rebuild) the warm-started quickstart model ahead of a run.

    python scripts/build_quickstart_model.py [--config quickstart] [--out DIR] [key=value ...]

Without --out it fills the cache that `python -m scalingrl.train` reads (~/.cache/scalingrl/models,
or $SCALINGRL_CACHE), so the first training run skips the ~1 minute warm start. It then prints the
sampled (T=1) and greedy held-out accuracy of the warm start.
"""

import argparse
import dataclasses

import numpy as np
import torch

from scalingrl.config import load_config, resolve_preset
from scalingrl.data import format_prompts
from scalingrl.eval import evaluate
from scalingrl.model import load_model_and_tokenizer
from scalingrl.quickstart import build_quickstart_model
from scalingrl.rollout import HFGenerateEngine
from scalingrl.synthetic import SyntheticTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="quickstart")
    parser.add_argument("--out", default="")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    config = load_config(resolve_preset(args.config), args.overrides)
    torch.set_num_threads(max(config.optim.threads, 1))
    task = SyntheticTask(config.data.synthetic)
    path = build_quickstart_model(config.model.tiny, task, args.out or None)
    print(f"model: {path}")
    model, tokenizer = load_model_and_tokenizer(str(path))
    rows = SyntheticTask(dataclasses.replace(config.data.synthetic, heldout_size=config.eval.size)).heldout_rows()
    prompts = format_prompts(tokenizer, [row["prompt"] for row in rows])
    engine = HFGenerateEngine(model, tokenizer)
    for temperature in (config.eval.temperature, 1e-3):
        result = evaluate(
            engine,
            rows,
            prompts,
            dataclasses.replace(config.eval, temperature=temperature),
            config.rollout,
            config.reward,
        )
        print(
            f"T={temperature}: accuracy {result['accuracy']:.3f} pass@{result['n_samples']} {result['pass_at_n']:.3f} "
            f"by level {np.round(list(result['accuracy_by_level'].values()), 2).tolist()}"
        )


if __name__ == "__main__":
    main()
