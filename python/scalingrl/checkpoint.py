"""Checkpoints: model (safetensors), optimizer, selector state, RNG and step, written atomically.

A checkpoint is a folder ``checkpoints/step-000120/`` with ``model.safetensors``, ``trainer.pt``
(optimizer + scheduler + RNG + step), ``selection.pt`` (the selector's ``state_dict``) and
``manifest.json`` (format version, step, a fingerprint of the settings that must match on resume,
and the SHA-256 of every file). It is built in a temporary sibling folder and renamed into place, so
a run killed at any moment leaves only complete checkpoints; ``latest_checkpoint`` ignores anything
else. Loading verifies the manifest and checksums first and raises ``CheckpointError`` with the
path and the reason.

Left out on purpose: sharded (ZeRO-3) model states; on one process the module's full state is saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "latest_checkpoint", "FORMAT", "VERSION"]

FORMAT = "scalingrl.checkpoint"
VERSION = 1
_FILES = ("model.safetensors", "trainer.pt", "selection.pt")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not belong to this configuration."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(root: str | Path, step: int, model, optimizer_state: dict[str, Any], selection_state: dict[str, Any],
                    fingerprint: dict[str, Any], extra: dict[str, Any] | None = None, keep: int = 2) -> Path:
    """Write ``root/step-{step:06d}`` atomically and keep the ``keep`` newest checkpoints."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    staging = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
        save_file(_dedupe_shared(tensors), str(staging / "model.safetensors"))
        torch.save({"step": step, "optimizer": optimizer_state, "rng": rng_state(), "extra": extra or {}}, staging / "trainer.pt")
        torch.save(selection_state, staging / "selection.pt")
        manifest = {"format": FORMAT, "version": VERSION, "step": step, "fingerprint": fingerprint,
                    "sha256": {name: _sha256(staging / name) for name in _FILES}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        with open(staging / "manifest.json", "rb") as handle:
            os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):  # staging folders of a killed run
        if stale != staging:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tied weights share storage; safetensors refuses that, so clone the duplicates."""
    seen, out = set(), {}
    for name, tensor in tensors.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        out[name] = tensor.clone() if key in seen else tensor
        seen.add(key)
    return out


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (one with a manifest), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    complete = sorted(p for p in root.glob("step-*") if (p / "manifest.json").exists())
    return complete[-1] if complete else None


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CheckpointError(f"{path} is not a complete checkpoint (no manifest.json); resume from an earlier one or start fresh")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{manifest_path} is corrupt ({error}); delete {path} to resume from the previous checkpoint") from error
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: format {manifest.get('format')!r} v{manifest.get('version')!r}; "
                              f"this scalingrl reads {FORMAT!r} v{VERSION}")
    return manifest


def load_checkpoint(path: str | Path, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Verify and load a checkpoint: {"step", "model" (state dict), "optimizer", "rng", "selection", "extra"}.

    Raises:
        CheckpointError: no manifest, a checksum mismatch (corrupt or truncated file), an unreadable
            file, or a fingerprint that differs from ``fingerprint`` (names the differing keys).
    """
    from safetensors.torch import load_file

    path = Path(path)
    manifest = read_manifest(path)
    for name in _FILES:
        file = path / name
        if not file.exists():
            raise CheckpointError(f"{path}: {name} is missing; the checkpoint is incomplete")
        if _sha256(file) != manifest["sha256"].get(name):
            raise CheckpointError(f"{file} does not match its checksum (corrupt or truncated); "
                                  f"delete {path} to resume from the previous checkpoint")
    if fingerprint is not None:
        saved = manifest.get("fingerprint", {})
        differing = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        if differing:
            details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {fingerprint.get(k)!r}" for k in differing)
            raise CheckpointError(f"{path} was written by an incompatible configuration ({details}); "
                                  "resume with the original settings or start a new output directory")
    try:
        model_state = load_file(str(path / "model.safetensors"))
        trainer = torch.load(path / "trainer.pt", weights_only=False)
        selection = torch.load(path / "selection.pt", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{path}: could not read the checkpoint ({error})") from error
    return {"step": manifest["step"], "model": model_state, "optimizer": trainer["optimizer"], "rng": trainer["rng"],
            "selection": selection, "extra": trainer.get("extra", {})}
