"""Shared test helpers: markers that gate on hardware (decided once, never by probing at import), and readers
of a run's records."""

import json
from pathlib import Path

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")


def training_rows(run_dir) -> list[dict]:
    """The training steps of ``run_dir/metrics.jsonl`` (rows with ``reward_mean``; evaluations left out)."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "reward_mean" in row]
