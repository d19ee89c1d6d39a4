"""Configuration: presets load, dotted overrides apply with YAML typing, and bad values fail early
with messages that name the key and the fix."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from scalingrl.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    describe_fields,
    field_help,
    load_config,
    preset_dir,
    to_dict,
)
from scalingrl.config_field import config_field


def test_presets_load_and_round_trip(tmp_path):
    names = sorted(p.stem for p in preset_dir().glob("*.yaml"))
    assert {"quickstart", "smollm2_gsm8k", "gpu_math_7b"} <= set(names)
    for name in names:
        config = load_config(preset_dir() / f"{name}.yaml")
        path = tmp_path / f"{name}.yaml"
        import yaml

        path.write_text(yaml.safe_dump(to_dict(config)))
        assert to_dict(load_config(path)) == to_dict(config)


def test_overrides_apply_with_types():
    config = load_config(
        None,
        [
            "rollout.group_size=4",
            "optim.lr=1e-4",
            "steps=7",
            "eval.temperature=1",
            "grpo.aggregation=sequence_mean",
            "model.use_chat_template=false",
        ],
    )
    assert config.rollout.group_size == 4 and config.optim.lr == 1e-4 and config.steps == 7
    assert isinstance(config.eval.temperature, float) and config.grpo.aggregation == "sequence_mean"
    assert config.model.use_chat_template is False


@pytest.mark.parametrize(
    "override, message",
    [
        ("rollout.group_size=1", "group_size must be >= 2"),
        ("rollout.temperature=0", "temperature must be > 0"),
        ("optim.lr=2", "optim.lr must be in"),
        ("optim.zero_stage=4", "zero_stage"),
        ("steps=0", "steps must be >= 1"),
        ("steps=ten", "steps must be an integer"),
        ("progress_bar=maybe", "progress_bar must be true or false"),
        ("rollout.groupsize=4", r"unknown config key\(s\) \['rollout.groupsize'\]"),
        ("data.source=file", "data.source=file needs data.path"),
        ("data.missing_answers=drop", "missing_answers must be 'skip' or 'error'"),
        ("data.prompt_template=Question", "must contain {prompt}"),
        ("grpo.aggregation=sum", "aggregation must be one of"),
        ("model.dtype=int8", "model.dtype must be"),
        ("batch_size=3", "must divide by grpo.updates_per_batch"),
        ("steps", "must look like key.subkey=value"),
    ],
)
def test_bad_values_fail_with_fix(override, message):
    overrides = [override] + (["grpo.updates_per_batch=5"] if override == "batch_size=3" else [])
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_config_file_lists_presets(tmp_path):
    with pytest.raises(ConfigError, match="presets in configs/"):
        load_config(tmp_path / "nope.yaml")


def test_help_lists_every_field():
    lines = describe_fields(TrainConfig())
    text = "\n".join(lines)
    # Tuples print as the YAML list an override takes, not as a Python tuple YAML would read as a string.
    assert "  optim.betas = [0.9, 0.99]  #" in text and "  data.synthetic.level_weights = []  #" in text
    for key in (
        "rollout.group_size",
        "optim.zero_stage",
        "grpo.clip_high",
        "data.synthetic.size",
        "selection.method",
        "eval.samples",
        "model.tiny.hidden_size",
        "selection.des.sharpness",
    ):
        assert key in text
    assert apply_overrides({}, ["a.b=1"]) == {"a": {"b": 1}}


def _leaf_count(config) -> int:
    return sum(
        _leaf_count(getattr(config, f.name)) if dataclasses.is_dataclass(getattr(config, f.name)) else 1
        for f in dataclasses.fields(config)
    )


def test_every_field_is_documented():
    help_by_key = field_help(TrainConfig())
    assert len(help_by_key) == _leaf_count(TrainConfig()) > 50
    undocumented = sorted(key for key, (_, doc) in help_by_key.items() if len(doc.split()) < 2)
    assert undocumented == [], f"fields without documentation: {undocumented}"


@dataclasses.dataclass
class _Partly:
    documented: int = config_field(1, help="has a line.")
    missing: int = 2


def test_an_undocumented_field_is_found():
    assert field_help(_Partly()) == {"documented": (1, "has a line."), "missing": (2, "")}
    assert describe_fields(_Partly(), "x.")[1] == "  x.missing = 2  # "


def test_train_help_runs(capsys):
    from scalingrl.train import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "rollout.group_size" in capsys.readouterr().out


def test_config_and_help_need_no_extension():
    """``scalingrl.config`` (selection knobs included) loads and validates without the C++ extension."""
    code = (
        "import sys; from scalingrl.config import load_config; from scalingrl.train import build_parser; "
        "config = load_config(None, ['selection.method=mopps', 'selection.des.sharpness=2']); "
        "assert type(config.selection).__name__ == 'SelectionConfig' and config.selection.des.sharpness == 2.0; "
        "assert 'selection.des.sharpness' in build_parser().format_help(); "
        "assert 'scalingrl._native' not in sys.modules, 'the extension was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_builtin_methods_are_the_registered_ones():
    from scalingrl.selection import METHODS
    from scalingrl.selection_config import BUILTIN_METHODS

    assert tuple(METHODS)[: len(BUILTIN_METHODS)] == BUILTIN_METHODS


def test_run_fields_are_typed():
    from scalingrl.train import Run

    fields = dataclasses.fields(Run)
    assert len(fields) >= 17 and all(f.kw_only for f in fields)
    assert [f.name for f in fields if "Any" in str(f.type) or f.type in ("object", "list", "dict")] == []


def test_config_field_refuses_an_empty_help():
    with pytest.raises(ValueError, match="non-empty help"):
        config_field(1, help=" ")
    with pytest.raises(ValueError, match="exactly one of default and default_factory"):
        config_field(help="both", default=1, default_factory=list)


def test_presets_come_from_the_installed_mapping(monkeypatch):
    import importlib.util

    spec = importlib.util.find_spec("scalingrl.configs")
    assert preset_dir() in [Path(p) for p in spec.submodule_search_locations]
    assert (preset_dir() / "quickstart.yaml").is_file()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"presets \(scalingrl.configs\) are not installed"):
        preset_dir()
