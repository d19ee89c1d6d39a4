"""Run configuration: one dataclass per component, YAML files and dotted command-line overrides.

``TrainConfig`` nests the component configs (model, data, rollout, reward, grpo, optim, selection,
eval). ``load_config(path, overrides)`` reads a YAML preset, applies ``a.b=value`` overrides (values
parsed as YAML), and builds the dataclasses, whose ``__post_init__`` checks reject bad values with a
message naming the key and the fix, before any model is loaded. ``describe_fields`` lists every key
with its default and documentation (each field's ``config_field`` help) for ``--help``.
``add_config_arguments``, ``parse_command_line`` and ``config_from_args`` are the one command-line
convention of ``scalingrl.train`` and ``scalingrl.eval``: ``--config`` takes a preset name or a YAML
path, and ``key.sub=value`` overrides may come in any order, intermixed with the options.

Left out on purpose: environment-variable overrides and config inheritance between presets.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from scalingrl.config_field import HELP, config_field
from scalingrl.distributed import ParallelConfig
from scalingrl.grpo import GRPOConfig
from scalingrl.optimizer import OptimConfig
from scalingrl.quickstart import TinyModelConfig
from scalingrl.rewards import RewardConfig
from scalingrl.rollout import SamplingConfig
from scalingrl.selection_config import SelectionConfig
from scalingrl.synthetic import SyntheticConfig

__all__ = [
    "TrainConfig",
    "ModelConfig",
    "DataConfig",
    "EvalConfig",
    "load_config",
    "apply_overrides",
    "to_dict",
    "from_dict",
    "describe_fields",
    "field_help",
    "ConfigError",
    "add_config_arguments",
    "parse_command_line",
    "config_from_args",
    "is_override",
]


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""


@dataclasses.dataclass
class ModelConfig:
    """The policy model."""

    path: str = config_field(
        "",
        help="local HF folder (or hub name where a hub is reachable); empty = build/reuse the quickstart tiny model.",
    )
    dtype: str = config_field("float32", help="weights dtype: float32, bfloat16 or float16.")
    use_chat_template: bool = config_field(True, help="wrap prompts in the tokenizer's chat template when it has one.")
    system_prompt: str = config_field("", help="system message for the chat template (empty = none).")
    trust_remote_code: bool = config_field(False, help="pass trust_remote_code to transformers.")
    tiny: TinyModelConfig = config_field(
        default_factory=TinyModelConfig,
        help="the quickstart model (used when path is empty).",
    )

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"model.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")


@dataclasses.dataclass
class DataConfig:
    """The prompt pool and the held-out set."""

    source: str = config_field(
        "synthetic",
        help='"synthetic" (the arithmetic generator) or "file" (JSONL/JSON/Parquet/HF dataset dir).',
    )
    path: str = config_field(
        "",
        help="training prompts (source=file); JSONL, JSON array, Parquet, or a saved HF dataset.",
    )
    eval_path: str = config_field("", help="held-out prompts (source=file); empty = hold out eval.size rows of path.")
    prompt_field: str = config_field("question", help="row field holding the question.")
    answer_field: str = config_field(
        "answer",
        help='row field holding the reference (bare answer, GSM8K "#### x" or \\boxed{}).',
    )
    level_field: str = config_field("", help='optional row field with a difficulty level (number; "Level 3" works).')
    prompt_template: str = config_field(
        "{prompt}",
        help="how a question becomes the prompt text; {prompt} is the question.",
    )
    missing_answers: str = config_field("skip", help='"skip" (count and report rows without an answer) or "error".')
    max_prompts: int = config_field(0, help="use at most this many training rows (0 = all).")
    synthetic: SyntheticConfig = config_field(
        default_factory=SyntheticConfig,
        help="the synthetic task (source=synthetic).",
    )

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "file"):
            raise ConfigError(f"data.source must be 'synthetic' or 'file', got {self.source!r}")
        if self.source == "file" and not self.path:
            raise ConfigError("data.source=file needs data.path (a JSONL/JSON/Parquet file or HF dataset folder)")
        if self.missing_answers not in ("skip", "error"):
            raise ConfigError(f"data.missing_answers must be 'skip' or 'error', got {self.missing_answers!r}")
        if "{prompt}" not in self.prompt_template:
            raise ConfigError(f"data.prompt_template must contain {{prompt}}, got {self.prompt_template!r}")
        if self.max_prompts < 0:
            raise ConfigError(f"data.max_prompts must be >= 0, got {self.max_prompts}")


@dataclasses.dataclass
class EvalConfig:
    """Held-out evaluation: pass@1 as the mean accuracy over n samples per problem."""

    size: int = config_field(256, help="held-out problems (0 = all of the held-out set).")
    samples: int = config_field(4, help="n completions generated per problem (1 = exactly one each).")
    temperature: float = config_field(
        1.0,
        help="sampling temperature of the evaluation; 0 = greedy decoding (the argmax token at every step, "
        "deterministic; needs samples=1), the usual setting for pass@1 reports.",
    )
    max_new_tokens: int = config_field(0, help="longest completion (0 = rollout.max_new_tokens).")
    every: int = config_field(0, help="evaluate every this many steps (0 = only at the start and the end).")
    batch_size: int = config_field(128, help="problems per generate call.")

    def __post_init__(self) -> None:
        if self.size < 0 or self.samples < 1 or self.every < 0 or self.batch_size < 1 or self.max_new_tokens < 0:
            raise ConfigError(
                "eval.size, eval.every and eval.max_new_tokens must be >= 0; eval.samples and eval.batch_size >= 1"
            )
        if not self.temperature >= 0:
            raise ConfigError(f"eval.temperature must be > 0, or 0 for greedy decoding; got {self.temperature}")
        if self.temperature == 0 and self.samples != 1:
            raise ConfigError(
                f"eval.temperature=0 (greedy) gives {self.samples} identical samples per problem; "
                "set eval.samples=1 or a temperature > 0"
            )


@dataclasses.dataclass
class TrainConfig:
    """A GRPO run."""

    output_dir: str = config_field(
        "",
        help="run folder (config.yaml, metrics.jsonl, summary.json, checkpoints, report); empty = "
        "runs/<preset>-<time>.",
    )
    steps: int = config_field(100, help="GRPO steps.")
    batch_size: int = config_field(16, help="prompts per step (each sampled rollout.group_size times).")
    seed: int = config_field(0, help="run seed (model sampling, selection).")
    save_every: int = config_field(0, help="checkpoint every this many steps (0 = only at the end).")
    keep_checkpoints: int = config_field(2, help="most recent checkpoints kept.")
    log_every: int = config_field(10, help="print a line every this many steps (the progress bar updates every step).")
    progress_bar: bool = config_field(True, help="show a tqdm progress bar.")
    tensorboard: bool = config_field(True, help="also write TensorBoard events.")
    report: bool = config_field(True, help="write plots and report.md at the end.")
    model: ModelConfig = config_field(default_factory=ModelConfig, help="the policy model (model.*).")
    data: DataConfig = config_field(default_factory=DataConfig, help="the prompt pool and the held-out set (data.*).")
    rollout: SamplingConfig = config_field(
        default_factory=SamplingConfig,
        help="how completions are sampled (rollout.*).",
    )
    reward: RewardConfig = config_field(default_factory=RewardConfig, help="how completions are scored (reward.*).")
    grpo: GRPOConfig = config_field(default_factory=GRPOConfig, help="the GRPO objective (grpo.*).")
    optim: OptimConfig = config_field(default_factory=OptimConfig, help="optimizer and DeepSpeed settings (optim.*).")
    selection: SelectionConfig = config_field(
        default_factory=SelectionConfig,
        help="which prompts each step trains on (selection.*).",
    )
    eval: EvalConfig = config_field(default_factory=EvalConfig, help="held-out evaluation (eval.*).")
    parallel: ParallelConfig = config_field(
        default_factory=ParallelConfig,
        help="data parallel across processes (rollout shards).",
    )

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.save_every < 0 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("save_every must be >= 0; log_every and keep_checkpoints >= 1")
        if not self.rollout.temperature > 0:
            raise ConfigError(
                f"rollout.temperature must be > 0 for GRPO (it samples groups; greedy decoding is for "
                f"eval.temperature=0), got {self.rollout.temperature}"
            )
        if self.batch_size * self.rollout.group_size % self.grpo.updates_per_batch:
            raise ConfigError(
                f"batch_size x rollout.group_size ({self.batch_size * self.rollout.group_size}) must divide by "
                f"grpo.updates_per_batch ({self.grpo.updates_per_batch})"
            )


def to_dict(config) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (tuples as lists, for YAML)."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Coerce a YAML value to a field's annotated scalar type (ints for floats and the like)."""
    kind = annotation if isinstance(annotation, type) else typing.get_origin(annotation) or annotation
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    if kind is str and not isinstance(value, str):
        if value is None:
            return ""
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def from_dict(cls_or_default, data: dict[str, Any], prefix: str = ""):
    """Build a config dataclass from a nested dict; unknown keys raise with the valid ones listed."""
    default = cls_or_default() if isinstance(cls_or_default, type) else cls_or_default
    cls = type(default)
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys here: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        current = getattr(default, name)
        if name not in data:
            kwargs[name] = current
        elif dataclasses.is_dataclass(current):
            kwargs[name] = from_dict(current, data[name], prefix + name + ".")
        else:
            kwargs[name] = _convert(data[name], hints.get(name), prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"{prefix or 'config: '}{error}" if not prefix else f"invalid {prefix.rstrip('.')}: {error}"
        ) from error


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) onto a nested dict, in order."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key.subkey=value (e.g. rollout.group_size=8)")
        key, raw = override.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A validated ``TrainConfig`` from a YAML file (or the defaults) plus dotted overrides."""
    data: dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.exists():
            presets = sorted(p.stem for p in preset_dir().glob("*.yaml"))
            raise ConfigError(f"config file {str(file)!r} not found; presets in configs/: {presets}")
        data = yaml.safe_load(file.read_text()) or {}
    return from_dict(TrainConfig, apply_overrides(data, list(overrides or [])))


def preset_dir() -> Path:
    """The presets folder: the package's ``scalingrl.configs``.

    The source tree keeps the presets in the top-level ``configs/`` (as it keeps ``kernels/``);
    pyproject.toml's wheel mapping ships that folder as ``scalingrl/configs`` (and ``kernels/`` as
    ``scalingrl.kernels``), in a wheel and in an editable install alike. That mapping is the only
    place that knows where the folders live: this asks the import system for the subpackage.

    Raises:
        ConfigError: scalingrl is not installed (a bare checkout on ``sys.path`` has no mapping).
    """
    spec = importlib.util.find_spec("scalingrl.configs")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    raise ConfigError(
        "the presets (scalingrl.configs) are not installed: install scalingrl "
        "(python -m pip install -e .) or pass --config FILE.yaml"
    )


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (``quickstart``) or a YAML path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    return preset_dir() / f"{name_or_path}.yaml"


def field_help(config, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """``{dotted key: (value, documentation)}`` for every leaf field of ``config``.

    The documentation is the field's ``config_field(help=...)`` metadata; "" where a field has none.
    """
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out.update(field_help(value, prefix + field.name + "."))
        else:
            out[prefix + field.name] = (value, field.metadata.get(HELP, ""))
    return out


def describe_fields(config, prefix: str = "") -> list[str]:
    """``key = default  # doc`` lines for every leaf field (for ``--help``); tuples print as YAML lists, the
    form an override takes (``optim.betas=[0.9,0.99]``)."""
    return [
        f"  {key} = {list(value) if isinstance(value, tuple) else value!r}  # {doc}"
        for key, (value, doc) in field_help(config, prefix).items()
    ]


_OVERRIDE = re.compile(r"^\s*[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*\s*=")


def is_override(word: str) -> bool:
    """Whether a command-line word is a dotted override (``eval.size=200``), not a path or a name."""
    return bool(_OVERRIDE.match(word))


def add_config_arguments(
    parser: argparse.ArgumentParser, default: str | None = "quickstart", config_help: str = ""
) -> None:
    """Add ``--config`` (preset name in configs/ or a YAML file) and the ``key=value`` overrides to ``parser``."""
    try:
        presets = f" ({', '.join(sorted(p.stem for p in preset_dir().glob('*.yaml')))})"
    except ConfigError:
        presets = ""
    parser.add_argument(
        "--config",
        default=default,
        help=config_help
        or (f"preset name in configs/{presets} or a YAML file" + (f" (default: {default})" if default else "")),
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, value parsed as YAML (e.g. eval.size=200 rollout.group_size=8); "
        "in any order, before or after the options",
    )


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` (None: ``sys.argv[1:]``) with options and positionals in any order.

    ``argparse.parse_intermixed_args`` is what lets ``MODEL --config X eval.size=200`` work: plain
    ``parse_args`` stops filling a ``nargs="*"`` positional at the first option.
    """
    return parser.parse_intermixed_args(argv)


def config_from_args(args: argparse.Namespace, fallback: str | Path | None = None) -> tuple[Path | None, TrainConfig]:
    """(YAML file used or None, validated config) for parsed ``--config`` and ``overrides``.

    ``args.config`` is a preset name or a YAML path; when it is empty, ``fallback`` (a YAML path) is
    read, and without either the dataclass defaults. Raises ``ConfigError`` for a missing file, an
    unknown key or a bad value.
    """
    path = resolve_preset(args.config) if args.config else (Path(fallback) if fallback else None)
    return path, load_config(path, args.overrides)
