"""Checkpoints: atomic round trip through DeepSpeed's engine checkpoint, and clear errors for corrupt,
incomplete, incompatible or other-world-size ones."""

import json

import numpy as np
import pytest
import torch

from scalingrl.checkpoint import (
    CheckpointError,
    check_resumable,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from scalingrl.optimizer import OptimConfig, PolicyOptimizer


def _trainer(stage=0, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    return PolicyOptimizer(model, OptimConfig(lr=1e-2, zero_stage=stage, threads=0))


def _train_step(trainer):
    loss = trainer.forward_model()(torch.randn(2, 4)).pow(2).sum()
    trainer.backward(loss)
    trainer.step()


def _save(root, step=3, fingerprint=None, keep=2, stage=0):
    trainer = _trainer(stage)
    _train_step(trainer)
    selection = {"scores": np.arange(5.0), "nested": {"k": [1, 2]}, "method": "des"}
    path = save_checkpoint(
        root, step, trainer, selection, fingerprint or {"pool_size": 5}, extra={"wall_clock_s": 1.5}, keep=keep
    )
    return path, trainer


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_round_trip_restores_weights_optimizer_and_rng(tmp_path, stage):
    torch.manual_seed(123)
    path, trainer = _save(tmp_path, stage=stage)
    expected_draw = torch.rand(3)
    torch.manual_seed(999)
    state = load_checkpoint(path, {"pool_size": 5}, world_size=1, zero_stage=stage)
    assert state["step"] == 3 and state["extra"]["wall_clock_s"] == 1.5 and state["world_size"] == 1
    np.testing.assert_array_equal(state["selection"]["scores"], np.arange(5.0))
    set_rng_state(state["rng"])
    torch.testing.assert_close(torch.rand(3), expected_draw)
    restored = _trainer(stage, seed=7)  # other initial weights
    restored.load_state(path / "deepspeed")
    for (name, a), b in zip(trainer.module.state_dict().items(), restored.module.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    torch.manual_seed(5)
    batch = torch.randn(2, 4)
    for engine in (trainer, restored):  # the same next step: the optimizer moments came back too
        engine.backward(engine.forward_model()(batch).pow(2).sum())
        engine.step()
    for a, b in zip(trainer.module.parameters(), restored.module.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    from safetensors.torch import load_file

    weights = load_file(str(path / "model.safetensors"))
    assert set(weights) == set(trainer.module.state_dict())


def test_keeps_newest_and_ignores_incomplete(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000003"]
    (tmp_path / "step-000009").mkdir()  # a folder without manifest (as if renamed halfway: impossible, but safe)
    (tmp_path / ".step-000010.partial").mkdir()  # staging folder of a killed run
    assert latest_checkpoint(tmp_path).name == "step-000003"
    assert latest_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate_model", "does not match its checksum"),
        ("flip_engine", "does not match its checksum"),
        ("delete_selection", "selection.pt is missing"),
        ("bad_manifest", "manifest.json is corrupt"),
        ("no_manifest", "not a complete checkpoint"),
        ("old_version", "this scalingrl reads"),
    ],
)
def test_corrupt_checkpoints_raise_clear_errors(tmp_path, damage, message):
    path, _ = _save(tmp_path)
    if damage == "truncate_model":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "flip_engine":
        engine_file = next((path / "deepspeed").rglob("*model_states.pt"))
        data = bytearray(engine_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        engine_file.write_bytes(bytes(data))
    elif damage == "delete_selection":
        (path / "selection.pt").unlink()
    elif damage == "bad_manifest":
        (path / "manifest.json").write_text("{not json")
    elif damage == "no_manifest":
        (path / "manifest.json").unlink()
    elif damage == "old_version":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["version"] = 1
        (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_incompatible_configuration_stage_and_world_size(tmp_path):
    path, _ = _save(tmp_path, fingerprint={"pool_size": 5, "selection": "des"}, stage=1)
    with pytest.raises(CheckpointError, match="incompatible configuration.*pool_size: checkpoint 5 vs now 6"):
        check_resumable(path, {"pool_size": 6, "selection": "des"}, world_size=1, zero_stage=1)
    with pytest.raises(
        CheckpointError, match="written under ZeRO-1 but this run uses ZeRO-2; resume with optim.zero_stage=1"
    ):
        check_resumable(path, None, world_size=1, zero_stage=2)
    with pytest.raises(
        CheckpointError, match=r"written by 1 process\(es\) but this run has 4: under ZeRO-1 its optimizer"
    ):
        check_resumable(path, None, world_size=4, zero_stage=1)
    manifest = check_resumable(path, {"pool_size": 5, "selection": "des"}, world_size=1, zero_stage=1)
    assert manifest["world_size"] == 1 and len(manifest["selection_digests"]) == 1


def test_resume_refuses_another_pool_level_mix(tmp_path):
    """A skewed pool maps prompt ids to other problems: resuming it with another mix must fail, while
    fingerprints of runs without level_weights keep their old keys (older checkpoints still load)."""
    from scalingrl.config import load_config
    from scalingrl.train import _fingerprint

    weights = "[12,1,1,1,1,1,1,1,1,1,12,12]"
    plain = _fingerprint(load_config(None), 220_000)
    skewed = _fingerprint(load_config(None, [f"data.synthetic.level_weights={weights}"]), 220_000)
    assert "level_weights" not in plain and skewed == {**plain, "level_weights": [12] + [1] * 9 + [12, 12]}
    path, _ = _save(tmp_path, fingerprint=skewed, stage=0)
    with pytest.raises(CheckpointError, match="incompatible configuration.*level_weights"):
        check_resumable(path, plain, world_size=1, zero_stage=0)
    check_resumable(path, skewed, world_size=1, zero_stage=0)


def test_resume_refuses_a_run_that_screened_without_the_screen(tmp_path):
    """selection.des.screen changes the selector state: the fingerprint catches it before the model loads,
    and runs without it keep their old fingerprint keys."""
    from scalingrl.config import load_config
    from scalingrl.train import _fingerprint

    plain = _fingerprint(load_config(None), 220_000)
    screened = _fingerprint(load_config(None, ["selection.des.screen=true"]), 220_000)
    assert "des_screen" not in plain and screened == {**plain, "des_screen": True}
    path, _ = _save(tmp_path, fingerprint=screened, stage=0)
    with pytest.raises(CheckpointError, match="incompatible configuration.*des_screen: checkpoint True vs now None"):
        check_resumable(path, plain, world_size=1, zero_stage=0)
