"""Test-wide settings. TRITON_INTERPRET must be set before any @triton.jit decorator runs, so it is
set here, before the test modules (and through them scalingrl.kernels) are imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
