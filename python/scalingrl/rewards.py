"""Math rewards: extract a completion's final answer and verify it against the reference.

``math_accuracy(completions, references) -> list[float]`` is the public entry: 1.0 when the final
answer (``\\boxed{}``, ``#### x``, "answer is x", else the last number) equals the reference, else
0.0. Plain numbers are compared exactly in-process; anything else goes to math-verify in a process
pool (math-verify uses ``signal.alarm``, so it must run in a worker's main thread) with a per-item
timeout, and a completion that times out, crashes a worker or fails to parse scores 0 instead of
stalling the step. ``format_reward`` scores whether a completion ends with a recognisable answer.

Left out on purpose: learned reward models and partial credit.
"""

from __future__ import annotations

import atexit
import concurrent.futures as futures
import dataclasses
import multiprocessing
import re
from typing import Sequence

__all__ = ["RewardConfig", "extract_answer", "math_accuracy", "format_reward", "score_completions", "shutdown_pool"]

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_NUMBER_ANYWHERE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclasses.dataclass
class RewardConfig:
    """How completions are scored.

    Attributes:
        format_weight: weight of the format reward (1 if an answer can be extracted) added to the
            accuracy reward; 0 turns it off.
        timeout_s: per-item math-verify timeout in seconds; a timed-out item scores 0.
        workers: math-verify worker processes.
    """

    format_weight: float = 0.0
    timeout_s: float = 5.0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.format_weight < 0:
            raise ValueError(f"reward.format_weight must be >= 0, got {self.format_weight}")
        if not self.timeout_s > 0:
            raise ValueError(f"reward.timeout_s must be > 0, got {self.timeout_s}")
        if self.workers < 1:
            raise ValueError(f"reward.workers must be >= 1, got {self.workers}")


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    index = text.index("{", start) + 1
    depth = 1
    for position in range(index, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[index:position].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a completion or reference solution, or None when there is none.

    Order: last ``\\boxed{...}``; text after the last ``####``; after the last "answer is"; the last
    number in the text.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else None
    match = re.search(r"answer is[:\s]*(.+)", text, flags=re.IGNORECASE)
    if match:
        return match.group(1).strip().rstrip(".").strip("$ ")
    numbers = _NUMBER_ANYWHERE.findall(text)
    return numbers[-1] if numbers else None


def _normalize_number(text: str) -> str | None:
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    if _NUMBER.match(cleaned):
        value = float(cleaned)
        return str(int(value)) if value == int(value) else repr(value)
    return None


def _verify_one(prediction: str, reference: str) -> float:
    """Runs in a worker process: math-verify ``verify(parse(ref), parse(pred))``."""
    from math_verify import parse, verify

    def wrap(text: str) -> str:
        return text if ("$" in text or "\\boxed" in text) else f"${text}$"

    gold, answer = parse(wrap(reference)), parse(wrap(prediction))
    if not gold or not answer:
        return 0.0
    return 1.0 if verify(gold, answer) else 0.0


_POOL: futures.ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def _pool(workers: int) -> futures.ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        shutdown_pool()
        _POOL = futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        _POOL_WORKERS = workers
    return _POOL


def shutdown_pool() -> None:
    """Stop the math-verify workers (also done at exit)."""
    global _POOL
    if _POOL is not None:
        processes = list((getattr(_POOL, "_processes", None) or {}).values())
        _POOL.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        _POOL = None


atexit.register(shutdown_pool)


def math_accuracy(completions: Sequence[str], references: Sequence[str], timeout_s: float = 5.0, workers: int = 1) -> list[float]:
    """1.0 per completion whose final answer equals its reference answer, else 0.0.

    Args:
        completions: model outputs (free text with the answer at the end).
        references: reference answers: bare (``"72"``, ``"\\frac{1}{2}"``) or a full solution
            (``"... #### 72"``, ``"... \\boxed{72}"``).
        timeout_s: per-item math-verify limit; a slow or crashing item scores 0.
        workers: math-verify processes.
    """
    if len(completions) != len(references):
        raise ValueError(f"got {len(completions)} completions but {len(references)} references")
    scores: list[float] = [0.0] * len(completions)
    pending: list[tuple[int, str, str]] = []
    for index, (completion, reference) in enumerate(zip(completions, references)):
        prediction = extract_answer(completion)
        gold = extract_answer(reference) if any(m in reference for m in ("####", "\\boxed")) else reference.strip()
        if prediction is None or not gold:
            continue
        exact_pred, exact_gold = _normalize_number(prediction), _normalize_number(gold)
        if exact_pred is not None and exact_gold is not None:
            scores[index] = float(exact_pred == exact_gold)
        elif prediction.strip() == gold:
            scores[index] = 1.0
        else:
            pending.append((index, prediction, gold))
    if pending:
        _verify_pending(pending, scores, timeout_s, workers)
    return scores


def _verify_pending(pending, scores: list[float], timeout_s: float, workers: int) -> None:
    pool = _pool(workers)
    submitted = [(index, pool.submit(_verify_one, prediction, gold)) for index, prediction, gold in pending]
    broken = False
    for index, future in submitted:
        try:
            scores[index] = future.result(timeout=timeout_s)
        except futures.TimeoutError:
            broken = True  # the worker is stuck: replace the pool so the next items are not queued behind it
            scores[index] = 0.0
        except Exception:  # parse errors, a killed worker: score 0, never stall
            scores[index] = 0.0
    if broken:
        shutdown_pool()


def format_reward(completions: Sequence[str]) -> list[float]:
    """1.0 per completion with an extractable final answer marker (``\\boxed{}``, ``####``, "answer is")."""
    markers = ("\\boxed{", "####", "answer is")
    return [float(any(marker in text for marker in markers)) for text in completions]


def score_completions(completions: Sequence[str], references: Sequence[str], config: RewardConfig) -> tuple[list[float], list[bool]]:
    """(rewards, correct) for a rollout batch: accuracy plus ``format_weight`` x format."""
    accuracy = math_accuracy(completions, references, config.timeout_s, config.workers)
    rewards = list(accuracy)
    if config.format_weight:
        rewards = [a + config.format_weight * f for a, f in zip(accuracy, format_reward(completions))]
    return rewards, [a > 0.5 for a in accuracy]
