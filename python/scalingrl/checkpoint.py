"""Checkpoints: DeepSpeed engine state, full model weights, selector state, RNG and step, written atomically.

A checkpoint is a folder ``checkpoints/step-000120/``:

- ``deepspeed/`` written by the engine's ``save_checkpoint`` (every rank takes part; under ZeRO-1/2
  each rank writes its own optimizer partition, ``zero_pp_rank_R_mp_rank_00_optim_states.pt``),
- ``model.safetensors``: the full policy weights (rank 0; what ``python -m scalingrl.eval`` reads),
- ``trainer.pt``: step, world size, ZeRO stage and run extras (rank 0),
- ``rng/rank-NNNNN.pt``: each rank's torch/numpy/python RNG state,
- ``selection.pt``: the selector's ``state_dict`` (identical on every rank; rank 0 writes it),
- ``manifest.json``: format version, step, world size, ZeRO stage, a fingerprint of the settings that
  must match on resume, the SHA-256 of every file above, and ``selection_digests``: the SHA-256 of
  every rank's selector state (``scalingrl.distributed.state_digest``); saving raises
  ``CheckpointError`` when they differ, i.e. when data-parallel ranks have diverged.

All ranks write into one staging folder (``.step-000120.partial``), then rank 0 writes the manifest
and renames the folder into place, so a run killed at any moment leaves only complete checkpoints;
``latest_checkpoint`` ignores anything else. Multi-node runs need ``output_dir`` on a filesystem every
node sees. Loading checks the manifest, the fingerprint and the world size first (cheap, before any
model is built), then the checksums (each rank hashes its share of the files and every rank raises
the same ``CheckpointError``, naming the path and the reason).

Left out on purpose: ZeRO-3 (sharded parameters; ``model.safetensors`` would need a gather) and
resuming at another world size (refused with a clear error; DeepSpeed's universal checkpoints could
re-partition ZeRO-1/2 optimizer state).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalingrl import distributed, fileio

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "read_manifest",
    "check_resumable",
    "rng_state",
    "set_rng_state",
    "FORMAT",
    "VERSION",
]

FORMAT = "scalingrl.checkpoint"
VERSION = 2
_REQUIRED = ("model.safetensors", "trainer.pt", "selection.pt")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not belong to this configuration or world size."""


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


def save_checkpoint(
    root: str | Path,
    step: int,
    trainer,
    selection_state: dict[str, Any],
    fingerprint: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``root/step-{step:06d}`` atomically and keep the ``keep`` newest checkpoints.

    Collective: every rank calls it. ``trainer`` is a ``scalingrl.optimizer.PolicyOptimizer`` (needs
    ``module``, ``save_state``, ``world_size`` and ``zero_stage``).
    """
    from safetensors.torch import save_file

    root = Path(root)
    current_rank, size = distributed.rank(), distributed.world_size()
    digests = distributed.all_gather_object(distributed.state_digest(selection_state))
    if len(set(digests)) > 1:
        raise CheckpointError(
            f"the selector state differs across ranks (SHA-256 per rank: {digests}); data-parallel "
            "ranks must feed their selectors the same all-gathered outcomes"
        )
    final = root / f"step-{step:06d}"
    staging = root / f".{final.name}{fileio.PARTIAL_SUFFIX}"  # every rank writes into it: a fixed name
    if current_rank == 0:
        fileio.stage(final, directory=True, unique=False)
        (staging / "rng").mkdir()
    distributed.barrier()
    trainer.save_state(staging / "deepspeed")
    torch.save(rng_state(), staging / "rng" / f"rank-{current_rank:05d}.pt")
    if current_rank == 0:
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in trainer.module.state_dict().items()}
        save_file(_dedupe_shared(tensors), str(staging / "model.safetensors"))
        torch.save(
            {"step": step, "world_size": size, "zero_stage": trainer.zero_stage, "extra": extra or {}},
            staging / "trainer.pt",
        )
        torch.save(selection_state, staging / "selection.pt")
    distributed.barrier()
    if current_rank == 0:
        try:
            files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "step": step,
                "world_size": size,
                "zero_stage": trainer.zero_stage,
                "fingerprint": fingerprint,
                "selection_digests": digests,
                "sha256": {name: _sha256(staging / name) for name in files},
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            with open(staging / "manifest.json", "rb") as handle:
                os.fsync(handle.fileno())
            fileio.publish(staging, final)
        except BaseException:
            fileio.discard(staging)
            raise
        for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".step-*"):  # staging folders of a killed run
            shutil.rmtree(stale, ignore_errors=True)
    distributed.barrier()
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
        raise CheckpointError(
            f"{path} is not a complete checkpoint (no manifest.json); resume from an earlier one or start fresh"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{manifest_path} is corrupt ({error}); delete {path} to resume from the previous checkpoint"
        ) from error
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: format {manifest.get('format')!r} v{manifest.get('version')!r}; "
            f"this scalingrl reads {FORMAT!r} v{VERSION}"
        )
    return manifest


def check_resumable(
    path: str | Path, fingerprint: dict[str, Any] | None, world_size: int, zero_stage: int
) -> dict[str, Any]:
    """The manifest of ``path`` after the cheap checks a resume needs before any model is built.

    Raises:
        CheckpointError: no or bad manifest; a fingerprint differing from ``fingerprint`` (names
            the keys); a different ZeRO stage; a different world size (under ZeRO-1/2 the optimizer
            state is partitioned into one file per rank of the saving run; resuming at another
            world size is not tested here, so it is refused for every stage).
    """
    path = Path(path)
    manifest = read_manifest(path)
    if fingerprint is not None:
        saved = manifest.get("fingerprint", {})
        differing = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        if differing:
            details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {fingerprint.get(k)!r}" for k in differing)
            raise CheckpointError(
                f"{path} was written by an incompatible configuration ({details}); "
                "resume with the original settings or start a new output directory"
            )
    saved_stage, saved_size = manifest["zero_stage"], manifest["world_size"]
    if saved_stage != zero_stage:
        raise CheckpointError(
            f"{path} was written under ZeRO-{saved_stage} but this run uses ZeRO-{zero_stage}; "
            f"resume with optim.zero_stage={saved_stage}"
        )
    if saved_size != world_size:
        why = (
            f"under ZeRO-{saved_stage} its optimizer state is partitioned into {saved_size} per-rank files"
            if saved_stage
            else "its per-rank RNG streams and the default rollout sharding belong to that world size"
        )
        raise CheckpointError(
            f"{path} was written by {saved_size} process(es) but this run has {world_size}: {why}. "
            f"Resume with {saved_size} process(es) (torchrun --nproc_per_node {saved_size} ...) "
            "or start a new output directory"
        )
    return manifest


def _verify_files(path: Path, manifest: dict[str, Any]) -> str | None:
    """This rank's share of the checksum work; the first problem found, or None."""
    names = sorted(set(manifest["sha256"]) | set(_REQUIRED))
    size, current_rank = distributed.world_size(), distributed.rank()
    for index, name in enumerate(names):
        if index % size != current_rank:
            continue
        file = path / name
        if not file.exists():
            return f"{path}: {name} is missing; the checkpoint is incomplete"
        if _sha256(file) != manifest["sha256"].get(name):
            return (
                f"{file} does not match its checksum (corrupt or truncated); "
                f"delete {path} to resume from the previous checkpoint"
            )
    return None


def load_checkpoint(
    path: str | Path, fingerprint: dict[str, Any] | None = None, world_size: int = 1, zero_stage: int = 0
) -> dict[str, Any]:
    """Verify a checkpoint and load what lives outside the engine (collective under a launcher).

    Returns {"path", "step", "selection", "rng" (this rank's, rank 0's when the saving run had
    fewer ranks), "extra", "world_size", "zero_stage"}. The engine's own state (module, optimizer,
    scheduler) is restored with ``trainer.load_state(path / "deepspeed")``.

    Raises:
        CheckpointError: see ``check_resumable``; a missing file or checksum mismatch; an unreadable file.
    """
    path = Path(path)
    manifest = check_resumable(path, fingerprint, world_size, zero_stage)
    problems = [p for p in distributed.all_gather_object(_verify_files(path, manifest)) if p]
    if problems:
        raise CheckpointError(problems[0])
    rng_file = path / "rng" / f"rank-{distributed.rank():05d}.pt"
    if not rng_file.exists():
        rng_file = path / "rng" / "rank-00000.pt"
    try:
        trainer = torch.load(path / "trainer.pt", weights_only=False)
        selection = torch.load(path / "selection.pt", weights_only=False)
        rng = torch.load(rng_file, weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{path}: could not read the checkpoint ({error})") from error
    return {
        "path": path,
        "step": manifest["step"],
        "selection": selection,
        "rng": rng,
        "extra": trainer.get("extra", {}),
        "world_size": manifest["world_size"],
        "zero_stage": manifest["zero_stage"],
    }
