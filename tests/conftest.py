"""Test-wide settings.

TRITON_INTERPRET must be set before any @triton.jit decorator runs, so it is set here, before the test
modules (and through them scalingrl.kernels) are imported.

Random tests draw fresh inputs on every run, yet every failure reproduces: each test starts with
``torch``, ``numpy`` and ``random`` seeded from a per-run base seed and the test's node id (the ``rng``
fixture is a numpy ``Generator`` on the same seed). The base seed
is printed in the header and with every failure; ``SCALINGRL_TEST_SEED=<base> python -m pytest <node id>``
re-runs a failure with the identical inputs. Hypothesis property tests take the base seed as their
``--hypothesis-seed``, so they reproduce the same way.
"""

import os
import random
import secrets
import zlib

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_SEED_VARIABLE = "SCALINGRL_TEST_SEED"


def _base_seed() -> int:
    text = os.environ.get(_SEED_VARIABLE)
    if text is None:
        return secrets.randbelow(2**31)
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(f"{_SEED_VARIABLE} must be an integer, got {text!r}") from None


BASE_SEED = _base_seed()


def test_seed(nodeid: str) -> int:
    """The seed one test runs under: a function of the run's base seed and the test's node id."""
    return (BASE_SEED * 1_000_003 + zlib.crc32(nodeid.encode())) % 2**31


test_seed.__test__ = False  # a helper, not a test


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Hypothesis draws from the same base seed (unless --hypothesis-seed is given), so
    # SCALINGRL_TEST_SEED=<base> re-runs a property test with the identical examples too.
    if hasattr(config.option, "hypothesis_seed") and config.option.hypothesis_seed is None:
        config.option.hypothesis_seed = BASE_SEED


def pytest_report_header(config):
    return f"random inputs: {_SEED_VARIABLE}={BASE_SEED} (set it to reproduce this run's inputs)"


@pytest.fixture(autouse=True)
def _seed_random_sources(request):
    import numpy as np
    import torch

    seed = test_seed(request.node.nodeid)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    yield


@pytest.fixture
def rng(request):
    """A numpy ``Generator`` seeded with this test's seed (fresh inputs per base seed, reproducible)."""
    import numpy as np

    return np.random.default_rng(test_seed(request.node.nodeid))


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """A fresh ``SCALINGRL_CACHE`` (quickstart model builds) shared by one test module, restored after it."""
    previous = os.environ.get("SCALINGRL_CACHE")
    os.environ["SCALINGRL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield os.environ["SCALINGRL_CACHE"]
    if previous is None:
        os.environ.pop("SCALINGRL_CACHE")
    else:
        os.environ["SCALINGRL_CACHE"] = previous


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(
            (
                "random inputs",
                f"reproduce with {_SEED_VARIABLE}={BASE_SEED} "
                f"python -m pytest '{item.nodeid}' (test seed {test_seed(item.nodeid)})",
            )
        )
