"""Checkpoints: atomic round trip, and clear errors for corrupt, incomplete or incompatible ones."""

import json

import numpy as np
import pytest
import torch

from scalingrl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint


def _model():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def _save(root, step=3, fingerprint=None, keep=2):
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    selection = {"scores": np.arange(5.0), "nested": {"k": [1, 2]}, "method": "des"}
    path = save_checkpoint(root, step, model, {"optimizer": optimizer.state_dict()}, selection,
                           fingerprint or {"pool_size": 5}, extra={"wall_clock_s": 1.5}, keep=keep)
    return path, model


def test_round_trip_and_rng(tmp_path):
    torch.manual_seed(123)
    path, model = _save(tmp_path)
    expected_draw = torch.rand(3)
    torch.manual_seed(999)
    state = load_checkpoint(path, {"pool_size": 5})
    assert state["step"] == 3 and state["extra"]["wall_clock_s"] == 1.5
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(state["model"][name], tensor, rtol=0, atol=0)
    np.testing.assert_array_equal(state["selection"]["scores"], np.arange(5.0))
    from scalingrl.checkpoint import set_rng_state

    set_rng_state(state["rng"])
    torch.testing.assert_close(torch.rand(3), expected_draw)


def test_keeps_newest_and_ignores_incomplete(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000003"]
    (tmp_path / "step-000009").mkdir()  # a folder without manifest (as if renamed halfway: impossible, but safe)
    (tmp_path / ".step-000010-abc").mkdir()  # staging folder of a killed run
    assert latest_checkpoint(tmp_path).name == "step-000003"
    assert latest_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("damage, message", [
    ("truncate_model", "does not match its checksum"),
    ("flip_trainer", "does not match its checksum"),
    ("delete_selection", "selection.pt is missing"),
    ("bad_manifest", "manifest.json is corrupt"),
    ("no_manifest", "not a complete checkpoint"),
    ("old_version", "this scalingrl reads"),
])
def test_corrupt_checkpoints_raise_clear_errors(tmp_path, damage, message):
    path, _ = _save(tmp_path)
    if damage == "truncate_model":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "flip_trainer":
        data = bytearray((path / "trainer.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (path / "trainer.pt").write_bytes(bytes(data))
    elif damage == "delete_selection":
        (path / "selection.pt").unlink()
    elif damage == "bad_manifest":
        (path / "manifest.json").write_text("{not json")
    elif damage == "no_manifest":
        (path / "manifest.json").unlink()
    elif damage == "old_version":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["version"] = 0
        (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_incompatible_configuration(tmp_path):
    path, _ = _save(tmp_path, fingerprint={"pool_size": 5, "selection": "des"})
    with pytest.raises(CheckpointError, match="incompatible configuration.*pool_size: checkpoint 5 vs now 6"):
        load_checkpoint(path, {"pool_size": 6, "selection": "des"})
