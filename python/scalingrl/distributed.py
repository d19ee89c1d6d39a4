"""Data parallel across processes: who does which part of a GRPO step, and the collectives that join them.

A step's selected prompts (B groups of G samples, in selection order) are cut into S contiguous
*rollout shards* (``parallel.rollout_shards``; 0 = one per process). Shard s is rolled out as one
``generate`` call seeded from (seed, step, s) by rank ``s % world_size``; every rank scores its own
shards, and the rewards, correctness and CoT statistics are all-gathered back into selection order
before ``selector.update``, so every rank's selector state stays identical. Update minibatch k is the
union over shards of the k-th of ``grpo.updates_per_batch`` parts of each shard: which rows form a
minibatch depends on S, never on the number of processes, so with the same S a 1-process and an
N-process run roll out the same completions and take the same optimizer steps.

The token-mean normaliser of a minibatch is its global token count (``all_reduce_sum``); DeepSpeed
averages gradients over ranks, so each rank scales its loss by the world size (``dp_loss_scale``)
and the averaged gradient equals the 1-process gradient of the whole minibatch.

Left out on purpose: tensor/pipeline parallel, and anything that would need ranks to disagree on the
selection (each rank runs the identical, seeded selector).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from scalingrl.config_field import config_field

__all__ = [
    "ParallelConfig",
    "rank",
    "world_size",
    "is_main",
    "init",
    "barrier",
    "all_gather_object",
    "all_reduce_sum",
    "resolve_shards",
    "shard_groups",
    "rank_shards",
    "minibatch_parts",
    "combine_eval",
    "state_digest",
]


@dataclasses.dataclass
class ParallelConfig:
    """Data parallel across processes (``torchrun``/``deepspeed`` launchers)."""

    rollout_shards: int = config_field(
        0,
        help="S, the rollout shards a step's selected prompts are cut into (contiguous in selection order; shard s "
        "goes to rank s % world size and is one seeded ``generate`` call). 0 = the world size. Must be a "
        "multiple of the world size. Runs with the same S make the same rollouts and optimizer steps at any "
        "world size; S changes the random stream (S = 1 is the historical single-process stream).",
    )

    def __post_init__(self) -> None:
        if self.rollout_shards < 0:
            raise ValueError(f"parallel.rollout_shards must be >= 0 (0 = the world size), got {self.rollout_shards}")


def rank() -> int:
    """This process's global rank (``RANK``, 0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes in the job (``WORLD_SIZE``, 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on rank 0, the only rank that writes run records."""
    return rank() == 0


def init() -> tuple[int, int]:
    """Start torch.distributed (gloo on CPU, NCCL on CUDA) once; returns (rank, world size).

    Without a launcher it sets single-process defaults (a free port on 127.0.0.1).
    """
    import torch

    from scalingrl.optimizer import setup_distributed_env

    current_rank, size = setup_distributed_env()
    if not torch.distributed.is_initialized():
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo", verbose=False)
        barrier()  # every rank has mapped every other rank's all-reduce buffer: the names can go
        release_shm_buffer()
    return current_rank, size


def release_shm_buffer(shm_dir: str = "/dev/shm") -> list[str]:
    """Unlink this rank's DeepSpeed CPU all-reduce buffer; returns the paths removed (``[]`` if none).

    DeepSpeed's shared-memory all-reduce on CPU (``deepspeed/ops/csrc/cpu/comm/shm.cpp``, ``shm_initialize``)
    creates one buffer per rank, ``deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>``
    (~58 MB each here), and never unlinks it: every run left its buffers in RAM-backed ``/dev/shm`` after it
    exited, and a killed run too. ``init`` calls it once the process group has started: each rank maps every
    other rank's buffer inside ``deepspeed.init_distributed`` (``shm_initialize`` opens them by name), a
    barrier after it means all have, and a mapping outlives its name, so the run keeps its buffers and no
    exit, clean or killed, leaves them behind.
    """
    address, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if address is None or port is None:
        return []
    path = pathlib.Path(shm_dir) / f"deepspeed_allreduce_buffer_{os.getuid()}_{address}_{port}_{rank()}"
    try:
        path.unlink()
    except FileNotFoundError:
        return []
    return [str(path)]


def _active() -> bool:
    import torch

    return world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def barrier() -> None:
    import torch

    if _active():
        torch.distributed.barrier()


def all_gather_object(value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (``[value]`` on one process)."""
    import torch

    if not _active():
        return [value]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def all_reduce_sum(value: float) -> float:
    """Sum of a float over ranks, in float64 (the value itself on one process)."""
    import torch

    if not _active():
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        tensor = tensor.cuda()
    torch.distributed.all_reduce(tensor)
    return float(tensor.item())


def resolve_shards(config: ParallelConfig, size: int, num_groups: int) -> int:
    """S for this run; raises ValueError when it cannot be split evenly over ``size`` ranks."""
    shards = config.rollout_shards or size
    if shards % size:
        raise ValueError(
            f"parallel.rollout_shards ({shards}) must be a multiple of the world size ({size}); "
            f"set parallel.rollout_shards={size} or 0"
        )
    if shards > num_groups:
        raise ValueError(
            f"parallel.rollout_shards ({shards}) exceeds batch_size ({num_groups}): every shard needs a "
            "prompt; lower it or raise batch_size"
        )
    return shards


def shard_groups(num_groups: int, shards: int) -> list[np.ndarray]:
    """Group indices (positions in selection order) of each of ``shards`` contiguous shards (np.array_split)."""
    return np.array_split(np.arange(num_groups), shards)


def rank_shards(shards: int, current_rank: int, size: int) -> list[int]:
    """The shards rank ``current_rank`` of ``size`` rolls out: s with s % size == rank."""
    return [s for s in range(shards) if s % size == current_rank]


def minibatch_parts(rows: int, updates: int) -> list[np.ndarray]:
    """Row positions of a shard's part of each of ``updates`` minibatches (np.array_split over rows)."""
    return np.array_split(np.arange(rows), updates)


def dp_loss_scale() -> float:
    """Factor on a rank's loss so DeepSpeed's gradient average over ranks equals the global sum."""
    return float(world_size())


def combine_eval(results: Sequence[dict[str, Any]], level_counts: Sequence[dict[str, int]]) -> dict[str, Any]:
    """One ``evaluate`` result from per-rank results on disjoint problem shards.

    Accuracy and pass@n are means over problems (each has the same number of samples), so the
    combination weights each rank by its problem count; per-level accuracy by its per-level count.
    """
    problems = [int(r["n_problems"]) for r in results]
    total = sum(problems)
    weighted = lambda key: sum(r[key] * n for r, n in zip(results, problems)) / total if total else 0.0  # noqa: E731
    by_level: dict[str, float] = {}
    for level in sorted({level for counts in level_counts for level in counts}):
        count = sum(counts.get(level, 0) for counts in level_counts)
        by_level[level] = (
            sum(r["accuracy_by_level"].get(level, 0.0) * c.get(level, 0) for r, c in zip(results, level_counts)) / count
        )
    return {
        "accuracy": weighted("accuracy"),
        "pass_at_1": weighted("accuracy"),
        "pass_at_n": weighted("pass_at_n"),
        "accuracy_by_level": by_level,
        "n_problems": total,
        "n_samples": results[0]["n_samples"],
        **({"decoding": results[0]["decoding"]} if "decoding" in results[0] else {}),  # the same on every rank
    }


def state_digest(state: Any) -> str:
    """SHA-256 of a nested state (dicts, sequences, numpy arrays, tensors, scalars), stable across processes.

    Arrays hash their dtype, shape and bytes; dicts hash their items in sorted-key order. Used to prove
    that every rank's selector state is identical.
    """
    import hashlib

    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            digest.update(f"array{array.dtype.str}{array.shape}".encode())
            digest.update(array.data if array.dtype != object else repr(array.tolist()).encode())  # no copy
        elif isinstance(value, dict):
            digest.update(f"dict{len(value)}".encode())
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}".encode())
            for item in value:
                visit(item)
        else:
            digest.update(repr(value).encode())

    visit(state)
    return digest.hexdigest()
