"""The math-verify worker pool: one deadline per batch, no starvation behind slow items, workers that
die or hang are replaced, and it works from unguarded scripts and stdin.

The stand-in verify functions below run in the pool's worker processes (they are forked, so they
see this module); they emulate math-verify's contract: a score, or None when out of time.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from scalingrl import rewards
from scalingrl.rewards import math_accuracy


def _stand_in_verify(prediction, gold, limit_s):
    if prediction == "hang":  # stuck outside Python's reach: only the pool's backstop ends it
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(1000)
    if prediction == "slow":  # math-verify hitting its own limit: gives up after limit_s
        time.sleep(limit_s)
        return None
    if prediction == "needs 2 s":  # correct, but slower than the first attempt allows
        if limit_s < 2:
            time.sleep(limit_s)
            return None
        return 1.0
    if prediction == "kill":  # the worker is killed mid-task (OOM killer, SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    return float(prediction == gold)


@pytest.fixture()
def fresh_pool():
    rewards.shutdown_pool()
    yield
    rewards.shutdown_pool()


def test_slow_and_hung_items_do_not_starve_the_queue(fresh_pool):
    """One worker, slow and hung items first: every correct item behind them still scores 1, and the
    call returns instead of waiting 1000 s per hung item (the bound is a hang guard, not a timing)."""
    tasks = [(0, "hang", "1"), (1, "slow", "1"), (2, "slow", "1")] + [(i, "7", "7") for i in range(3, 60)]
    tasks += [(60, "8", "7")]
    started = time.monotonic()
    scores = rewards._verify_in_pool(tasks, timeout_s=1.5, workers=1, verify=_stand_in_verify)
    assert time.monotonic() - started < 120
    assert scores == {0: 0.0, 1: 0.0, 2: 0.0, **{i: 1.0 for i in range(3, 60)}, 60: 0.0}


def test_an_item_slower_than_its_first_attempt_gets_a_retry(fresh_pool):
    tasks = [(0, "needs 2 s", "x"), (1, "7", "7"), (2, "slow", "7")]
    assert rewards._verify_in_pool(tasks, timeout_s=3.0, workers=1, verify=_stand_in_verify) == {0: 1.0, 1: 1.0, 2: 0.0}


def test_a_killed_worker_costs_only_its_item_and_the_next_call_works(fresh_pool):
    tasks = [(0, "7", "7"), (1, "kill", "7"), (2, "7", "7"), (3, "kill", "7"), (4, "6", "7"), (5, "7", "7")]
    scores = rewards._verify_in_pool(tasks, timeout_s=5.0, workers=2, verify=_stand_in_verify)
    assert scores == {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0, 4: 0.0, 5: 1.0}
    assert math_accuracy(["\\boxed{2\\sqrt{3}}", "\\boxed{\\sqrt{3}}"], ["\\sqrt{12}", "\\sqrt{12}"], workers=2) == [
        1.0,
        0.0,
    ]


def test_workers_killed_between_calls_are_replaced(fresh_pool):
    assert math_accuracy(["\\boxed{2\\sqrt{3}}"], ["\\sqrt{12}"], workers=2) == [1.0]
    children = multiprocessing.active_children()
    assert children
    for child in children:
        os.kill(child.pid, signal.SIGKILL)
    assert math_accuracy(["\\boxed{2\\sqrt{3}}"] * 3, ["\\sqrt{12}"] * 3, workers=2) == [1.0] * 3


def test_real_pathological_items_score_zero_and_correct_ones_one(fresh_pool):
    bad = ["\\boxed{" + "(" * 5000 + "x" + ")" * 5000 + "}", "\\boxed{10^{10^{10}}}", "\\boxed{" + "1+" * 3000 + "1}"]
    good = ["\\boxed{2\\sqrt{3}}", "\\boxed{x^2+2x+1}"] * 5
    scores = math_accuracy(bad + good, ["3"] * len(bad) + ["\\sqrt{12}", "(x+1)^2"] * 5, timeout_s=2.0, workers=1)
    assert scores == [0.0] * len(bad) + [1.0] * len(good)


SCRIPT = textwrap.dedent("""
    from scalingrl.rewards import math_accuracy
    print(math_accuracy(["\\\\boxed{2\\\\sqrt{3}}", "\\\\boxed{7}"], ["\\\\sqrt{12}", "7"]))
    print(math_accuracy(["\\\\boxed{\\\\frac{\\\\pi}{2}}"], ["\\\\frac{\\\\pi}{2}+0"], workers=2))
""")


@pytest.mark.parametrize("how", ["script without a main guard", "stdin"])
def test_works_without_a_main_guard_and_from_stdin(tmp_path, how):
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    if how == "stdin":
        result = subprocess.run(
            [sys.executable, "-"], input=SCRIPT, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )
    else:
        script = tmp_path / "score.py"
        script.write_text(SCRIPT)
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["[1.0, 1.0]", "[1.0]"], result.stdout + result.stderr[-2000:]
