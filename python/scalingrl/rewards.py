"""Math rewards: extract a completion's final answer and verify it against the reference.

``math_accuracy(completions, references) -> list[float]`` is the public entry: 1.0 when the final
answer equals the reference answer, else 0.0. ``format_reward`` scores whether a completion states a
final answer with a marker. ``apply_truncation_policy`` applies ``reward.truncated`` to completions
that hit ``max_new_tokens`` (the rollout batch's ``truncated`` flags).

Extraction (one order for every path, docs/rewards.md): the *last* answer marker in the text wins
by position: ``\\boxed{..}``/``\\fbox{..}`` (non-empty), a ``####`` line that starts with an answer
(a ``#### Step 1`` markdown heading is not one), or "answer is"/"answer:" followed by an answer; with
no marker, the last number (integers, decimals, ``a/b``, ``\\frac{a}{b}``). A final statement that
offers several different answers ("70 or 72", ``\\boxed{70} or \\boxed{72}``) is hedged: it has no
answer and scores 0.

Comparison: where both sides are plain numbers (integers of any size, decimals, fractions, powers)
they are compared exactly as rationals in-process; anything else goes to math-verify in a ``pebble``
process pool (math-verify uses ``signal.alarm``, so it must run in a worker's main thread; the pool
forks, so callers need no ``__main__`` guard). Every item gets a 1 s first attempt; items that run out
of it are retried together under one batch deadline (``2 * timeout_s`` from the batch start, at least
``timeout_s / 2``), so a few pathological items cost about ``timeout_s`` in all and never starve the
items queued behind them. A worker that dies or hangs is replaced; its item scores 0. Design and
reasons: docs/rewards.md.

Left out on purpose: learned reward models, partial credit, and multiple-choice letter matching.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from fractions import Fraction
from typing import Any

import numpy as np

from scalingrl.config_field import config_field

__all__ = [
    "RewardConfig",
    "TRUNCATION_POLICIES",
    "FinalAnswer",
    "final_answer",
    "extract_answer",
    "exact_value",
    "math_accuracy",
    "format_reward",
    "score_completions",
    "apply_truncation_policy",
    "shutdown_pool",
]

TRUNCATION_POLICIES = ("score", "zero", "mask")


@dataclasses.dataclass
class RewardConfig:
    """How completions are scored."""

    format_weight: float = config_field(
        0.0,
        help="weight of the format reward (1 if the completion states a final answer with a marker) added to the "
        "accuracy reward; 0 turns it off.",
    )
    timeout_s: float = config_field(
        5.0,
        help="seconds; the batch deadline for items math-verify cannot settle in a 1 s first attempt: their "
        "retries end ``2 * timeout_s`` after the batch started (at least ``timeout_s / 2`` after the retries "
        "start); unfinished items score 0.",
    )
    workers: int = config_field(1, help="math-verify worker processes.")
    truncated: str = config_field(
        "zero",
        help='what a completion cut off at ``rollout.max_new_tokens`` (no EOS) gets: "score" (scored like any '
        'other), "zero" (reward 0, counted as incorrect) or "mask" (scored, but its row is excluded from the '
        "policy loss, as TRL's ``mask_truncated_completions``).",
    )

    def __post_init__(self) -> None:
        if self.format_weight < 0:
            raise ValueError(f"reward.format_weight must be >= 0, got {self.format_weight}")
        if not self.timeout_s > 0:
            raise ValueError(f"reward.timeout_s must be > 0, got {self.timeout_s}")
        if self.workers < 1:
            raise ValueError(f"reward.workers must be >= 1, got {self.workers}")
        if self.truncated not in TRUNCATION_POLICIES:
            raise ValueError(f"reward.truncated must be one of {'|'.join(TRUNCATION_POLICIES)}, got {self.truncated!r}")


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------

_THIN_SPACE_IN_NUMBER = re.compile(r"(?<=\d)(?:\\[,!; ]|~|\{,\}|\u2009|\u202f)(?=\d{3}(?!\d))")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"\banswer\s*(?:is|:)\s*:?", re.IGNORECASE)
_ANSWER_START = re.compile(r"^(?:[-+]?\$?[-+]?(?:\d|\.\d)|\$|\\(?!text)|\(|\[|[-+]\\)")
_NUMBER_TEXT = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?!\d)|[-+]?\.\d+"
_LAST_NUMBER = re.compile(r"\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(\d+)\s*\}|(?<![\w.])(?:" + _NUMBER_TEXT + r")")
_LEADING_NUMBER_WITH_UNITS = re.compile(r"^(" + _NUMBER_TEXT + r")\s+[A-Za-z]{2,}[A-Za-z\s]*$")
_ALTERNATIVE = re.compile(r"\s+or\s+|\\(?:text|mbox|textrm)\{\s*or\s*\}|\\lor\b|\beither\s+", re.IGNORECASE)
_PROSE_CUT = re.compile(
    r"\.(?=\s|$)|[;\n]|,\s+(?=[A-Za-z]{2,})|\s+(?:because|since|which|as|so|where|given)\b", re.IGNORECASE
)
_MATH_SEGMENT = re.compile(r"\$([^$]+)\$")
_STATEMENT_END = re.compile(r"\n|[.!?](?=\s)")


@dataclasses.dataclass(frozen=True)
class FinalAnswer:
    """The result of extraction: ``answer`` (None when there is none or it is hedged), the marker
    that gave it ("boxed", "####", "answer is", "last number" or None) and ``hedged``."""

    answer: str | None
    marker: str | None
    hedged: bool = False


def _prepare(text: str) -> str:
    """Unicode minus to '-', escaped dollars (currency) removed, LaTeX thin spaces inside numbers removed."""
    text = text.replace("\u2212", "-").replace("\\$", "")
    return _THIN_SPACE_IN_NUMBER.sub("", text)


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the '}' closing the '{' at ``open_index``, or None when unbalanced (cut off)."""
    depth = 0
    for position in range(open_index, len(text)):
        char = text[position]
        if char == "{" and text[position - 1] != "\\":
            depth += 1
        elif char == "}" and text[position - 1] != "\\":
            depth -= 1
            if depth == 0:
                return position
    return None


def _unbox(text: str) -> str:
    """``\\boxed{x}`` -> ``x`` everywhere in ``text``."""
    while (match := _BOX.search(text)) is not None:
        end = _matching_brace(text, match.end() - 1)
        if end is None:
            return text[: match.start()] + text[match.end() :]
        text = text[: match.start()] + text[match.end() : end] + text[end + 1 :]
    return text


def _cut_prose(span: str) -> str:
    """The span up to the end of its sentence (a period before a space, ';', a newline, ', since ...'),
    ignoring cut points inside braces or inline math."""
    depth, in_math = 0, False
    for position, char in enumerate(span):
        if char in "{(" and span[position - 1 : position] != "\\":
            depth += 1
        elif char in "})" and span[position - 1 : position] != "\\":
            depth = max(0, depth - 1)
        elif char == "$":
            in_math = not in_math
        elif depth == 0 and not in_math and _PROSE_CUT.match(span, position):
            return span[:position]
    return span


def _strip_wrappers(answer: str) -> str:
    answer = answer.strip().strip("*_").strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            answer = answer[len(left) : len(answer) - len(right)].strip()
    answer = answer.strip("$").strip().rstrip(".").strip()
    units = _LEADING_NUMBER_WITH_UNITS.match(answer)
    return units.group(1) if units else answer


def _alternatives(span: str) -> list[str]:
    """The answers a span offers: inline-math segments, split further at 'or'; empty ones dropped."""
    span = _unbox(span)
    segments = _MATH_SEGMENT.findall(span) if span.count("$") >= 4 else [span]
    parts = [part for segment in segments for part in _ALTERNATIVE.split(segment)]
    return [answer for answer in (_strip_wrappers(part) for part in parts) if answer]


def _markers(text: str) -> list[tuple[int, int, str, list[str]]]:
    """Every answer marker as (start, end, kind, answers it offers), sorted by start."""
    found = []
    for match in _BOX.finditer(text):
        end = _matching_brace(text, match.end() - 1)
        if end is not None:
            answers = _alternatives(text[match.end() : end])
            if answers:
                found.append((match.start(), end + 1, "boxed", answers))
    for match in _HASHES.finditer(text):
        line = match.group(1).strip().strip("*_").strip()
        if _ANSWER_START.match(line):  # "#### Step 1: Add" is a heading, not an answer line
            answers = _alternatives(_cut_prose(line))
            if answers:
                found.append((match.start(), match.end(), "####", answers))
    for match in _ANSWER_IS.finditer(text):
        span = _cut_prose(text[match.end() :].lstrip())
        answers = _alternatives(span)
        head = span.strip().strip("*_").strip()
        if answers and (_ANSWER_START.match(head) or len(head.split()) <= 2):  # "is Navin", not "is less than 1"
            found.append((match.start(), match.end() + len(span), "answer is", answers))
    return sorted(found)


def _statement_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence or line around text[start:end]."""
    before = [m.end() for m in _STATEMENT_END.finditer(text, 0, start)]
    after = _STATEMENT_END.search(text, end)
    return (before[-1] if before else 0), (after.start() if after else len(text))


def _complete_statements(text: str) -> str:
    """``text`` up to the end of its last complete sentence or line (drops a cut-off tail)."""
    ends = list(_STATEMENT_END.finditer(text))
    return text[: ends[-1].end()] if ends else ""


def final_answer(text: str, truncated: bool = False) -> FinalAnswer:
    """Extract the final answer of ``text`` with the marker that gave it (rules in the module docstring).

    ``truncated``: the text was cut off at the token limit; its unfinished last sentence or line is
    dropped first, since an answer there may be cut mid-way (``#### 1`` of ``#### 18``).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    text = _prepare(text)
    if truncated:
        text = _complete_statements(text)
    markers = _markers(text)
    if markers:
        start, end, kind, answers = markers[-1]
        low, high = _statement_bounds(text, start, end)
        offered = [a for (s, _, _, alts) in markers if low <= s < high or s == start for a in alts]
        if len(_distinct(offered)) > 1:
            return FinalAnswer(None, kind, hedged=True)
        return FinalAnswer(answers[-1], kind)
    numbers = list(_LAST_NUMBER.finditer(text))
    if not numbers:
        return FinalAnswer(None, None)
    last = numbers[-1]
    answer = f"{last.group(1)}/{last.group(2)}" if last.group(1) else last.group(0).replace(",", "")
    if len(numbers) > 1 and _ALTERNATIVE.fullmatch(text[numbers[-2].end() : last.start()]):
        previous = numbers[-2]
        other = f"{previous.group(1)}/{previous.group(2)}" if previous.group(1) else previous.group(0).replace(",", "")
        if len(_distinct([other, answer])) > 1:
            return FinalAnswer(None, "last number", hedged=True)
    return FinalAnswer(answer, "last number")


def extract_answer(text: str, truncated: bool = False) -> str | None:
    """The final answer of a completion or reference solution, or None when there is none.

    The last marker by position wins: ``\\boxed{}``/``\\fbox{}``, a ``####`` answer line, "answer is";
    with no marker, the last number. A hedged final statement (several different answers) gives None.
    ``truncated=True`` drops a cut-off last sentence first. Raises TypeError when ``text`` is not a str.
    """
    return final_answer(text, truncated).answer


# ----------------------------------------------------------------------------------------------
# Exact numbers
# ----------------------------------------------------------------------------------------------

_MAX_DIGITS = 4000  # below Python's int/str conversion limit (4300)
_MAX_EXPONENT = 4096
_EXACT_TOKEN = re.compile(
    r"\s*(\\[dt]?frac|\\cdot|\\times|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+|[-+{}()^/*])"
)


def _normalize(answer: str) -> str:
    """A canonical string for plain comparison: no spaces, wrappers, \\left/\\right, \\dfrac -> \\frac."""
    answer = _prepare(answer).replace("\\left", "").replace("\\right", "").replace("\\!", "")
    answer = re.sub(r"\\[dt]frac", r"\\frac", answer).replace("$", "")
    return re.sub(r"\s+|\\[,;: ]", "", answer).rstrip(".")


class _ExactParser:
    """Recursive descent over sign, numbers, \\frac{}{}, a/b, products and integer powers -> Fraction."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.position = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected!r}, got {token!r}")
        self.position += 1
        return token

    def expression(self) -> Fraction:
        sign = -1 if self.peek() == "-" else 1
        if self.peek() in ("-", "+"):
            self.take()
        value = sign * self.product()
        while self.peek() in ("-", "+"):
            value = value + (1 if self.take() == "+" else -1) * self.product()
        return value

    def product(self) -> Fraction:
        value = self.power()
        while self.peek() in ("\\cdot", "\\times", "*", "/"):
            operator = self.take()
            right = self.power()
            if operator == "/":
                if right == 0:
                    raise ValueError("division by zero")
                value = value / right
            else:
                value = value * right
        return value

    def power(self) -> Fraction:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.atom() if self.peek() != "{" else self.group()
        if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT:
            raise ValueError("non-integer or huge exponent")
        size = max(len(str(abs(base.numerator))), len(str(base.denominator)))
        if size * abs(exponent) > _MAX_DIGITS or (base == 0 and exponent < 0):
            raise ValueError("power too large")
        return base ** int(exponent)

    def group(self) -> Fraction:
        closing = {"{": "}", "(": ")"}[self.take()]
        value = self.expression()
        self.take(closing)
        return value

    def atom(self) -> Fraction:
        token = self.peek()
        if token in ("{", "("):
            return self.group()
        if token is not None and token.startswith("\\") and token.endswith("frac"):
            self.take()
            numerator, denominator = self.frac_argument(), self.frac_argument()
            if denominator == 0:
                raise ValueError("division by zero")
            return numerator / denominator
        if token is None or not (token[0].isdigit() or token[0] == "."):
            raise ValueError(f"unexpected {token!r}")
        self.take()
        digits = token.replace(",", "")
        if len(digits) > _MAX_DIGITS:
            raise ValueError("too many digits")
        return Fraction(digits)

    def frac_argument(self) -> Fraction:
        if self.peek() == "{":
            return self.group()
        token = self.take()  # \frac34: single-digit arguments without braces
        if not token.isdigit():
            raise ValueError(f"bad \\frac argument {token!r}")
        if len(token) > 1:  # "34" of "\frac 34" is two arguments
            self.tokens.insert(self.position, token[1:])
            token = token[0]
        return Fraction(token)


def exact_value(answer: str) -> Fraction | None:
    """The exact rational value of a plain-number answer (``-1,234.5``, ``3/4``, ``\\frac{1}{2^{98}}``,
    ``2\\cdot 10^{3}``), or None when it is not a plain number (a variable, a root, a list, ``1,2``)."""
    text = _normalize(answer)
    text = re.sub(r"\\(?:text|mbox|textrm)\{\s*[A-Za-z ]*\}$", "", text)  # trailing units: 18\text{ dollars}
    tokens, position = [], 0
    while position < len(text):
        match = _EXACT_TOKEN.match(text, position)
        if match is None:
            return None
        tokens.append(match.group(1))
        position = match.end()
    if not tokens:
        return None
    parser = _ExactParser(tokens)
    try:
        value = parser.expression()
    except (ValueError, ZeroDivisionError, KeyError, RecursionError):
        return None
    return value if parser.peek() is None else None


def _distinct(answers: list[str]) -> list[str]:
    """Answers with equal exact values or equal normalized strings collapsed."""
    seen: list[Any] = []
    out = []
    for answer in answers:
        value = exact_value(answer)
        key = value if value is not None else _normalize(answer)
        if key not in seen:
            seen.append(key)
            out.append(answer)
    return out


def _compare_in_process(prediction: str, gold: str) -> float | None:
    """1.0/0.0 when decided without math-verify (both plain numbers, or equal strings), else None."""
    predicted_value, gold_value = exact_value(prediction), exact_value(gold)
    if predicted_value is not None and gold_value is not None:
        return float(predicted_value == gold_value)
    if _normalize(prediction) == _normalize(gold):
        return 1.0
    return None


# ----------------------------------------------------------------------------------------------
# math-verify in a process pool
# ----------------------------------------------------------------------------------------------

_FIRST_ATTEMPT_S = 1  # math-verify's limits are whole seconds (signal.alarm)


def _verify_one(prediction: str, gold: str, limit_s: int | None) -> float | None:
    """Runs in a worker process: math-verify ``verify(parse(gold), parse(prediction))``, except that two
    rationals are compared exactly (math-verify rounds numbers to 6 decimals).

    ``limit_s`` is math-verify's own limit per parse/verify call (whole seconds; None = none, for the
    warm-up outside a worker's main thread). Returns 1.0 or 0.0,
    or None when the item ran out of time without a match (it may deserve a longer retry).
    """
    import sympy
    from math_verify import parse, verify

    started = time.monotonic()
    gold_parsed = parse(f"${gold}$", parsing_timeout=limit_s)
    predicted = parse(f"${prediction}$", parsing_timeout=limit_s) if gold_parsed else []
    if gold_parsed and predicted:
        if isinstance(gold_parsed[0], sympy.Rational) and isinstance(predicted[0], sympy.Rational):
            return float(gold_parsed[0] == predicted[0])
        if verify(gold_parsed, predicted, timeout_seconds=limit_s):
            return 1.0
    # math-verify returns []/False on its own timeouts: tell them apart from a real 0 by the clock
    return None if limit_s is not None and time.monotonic() - started >= limit_s else 0.0


_WARM_UP = (
    ("\\frac{1}{2}", "0.5"),
    ("x^2+2x+1", "(x+1)^2"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("(1, 2)", "(1,2)"),
    ("y = 2x + 3", "y=2x+3"),
    ("[1, 2)", "[1,2)"),
    ("\\text{Navin}", "Navin"),
)


def _warm_up_math_verify() -> None:
    """Load math-verify's grammar and sympy's caches in this process, without signals (any thread), so
    that forked workers start warm instead of spending their first timed attempts on it."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its own timeouts are expected here
    for prediction, gold in _WARM_UP:
        _verify_one(prediction, gold, None)


_POOL: Any = None
_POOL_KEY: tuple[int, int] | None = None
_POOL_LOCK = threading.Lock()
_WARMED = False


def _start_method() -> str:
    # fork: workers never re-import the caller's __main__ (no `if __name__ == "__main__"` guard or
    # stdin script needed) and inherit the imported math-verify. Elsewhere: the platform default.
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else multiprocessing.get_start_method()


def _pool(workers: int):
    """The shared pebble pool with ``workers`` processes (re-created when broken, resized or forked)."""
    global _POOL, _POOL_KEY, _WARMED
    import pebble

    with _POOL_LOCK:
        key = (workers, os.getpid())
        if _POOL is not None and (_POOL_KEY != key or not _POOL.active):
            _stop_pool()
        if _POOL is None:
            if _start_method() == "fork" and not _WARMED:
                _warm_up_math_verify()  # before forking: no worker imports under a lock or starts cold
                _WARMED = True
            _POOL = pebble.ProcessPool(max_workers=workers, context=multiprocessing.get_context(_start_method()))
            _POOL_KEY = key
        return _POOL


def _stop_pool() -> None:
    global _POOL, _POOL_KEY
    pool, _POOL, _POOL_KEY = _POOL, None, None
    if pool is not None:
        pool.stop()
        pool.join(timeout=10)


def shutdown_pool() -> None:
    """Stop the math-verify workers (also done at exit)."""
    with _POOL_LOCK:
        _stop_pool()


atexit.register(shutdown_pool)


def _collect(futures: dict, scores: dict[int, float], wait_s: float) -> tuple[list[int], list[int]]:
    """Scores of finished futures into ``scores``; returns (indices out of time, indices hit by a broken pool).

    Futures still unfinished after ``wait_s`` are cancelled (pebble stops their workers and starts
    new ones) and count as out of time; an item whose own worker died (pebble.ProcessExpired) or
    that raised scores 0.
    """
    done, not_done = concurrent.futures.wait(futures, timeout=wait_s)
    out_of_time, broken = [], []
    for future in done:
        index = futures[future]
        try:
            score = future.result()
        except TimeoutError:  # pebble's per-task backstop killed a worker stuck outside Python
            out_of_time.append(index)
            continue
        except BrokenProcessPool:  # the pool itself failed (e.g. all idle workers were killed)
            broken.append(index)
            continue
        except Exception:
            score = 0.0
        if score is None:
            out_of_time.append(index)
        else:
            scores[index] = float(score)
    for future in not_done:
        future.cancel()
        out_of_time.append(futures[future])
    return out_of_time, broken


def _run_round(
    workers: int,
    verify,
    tasks: list[tuple[int, str, str]],
    limit_s: int,
    backstop_s: float,
    wait_s: float,
    scores: dict[int, float],
) -> set[int]:
    """Schedule ``tasks`` and collect them; tasks lost to a broken pool run once more on a fresh pool.
    Returns the indices that ran out of time."""
    out_of_time: set[int] = set()
    for attempt in range(2):
        try:
            pool = _pool(workers)
            futures = {pool.schedule(verify, args=(p, g, limit_s), timeout=backstop_s): i for i, p, g in tasks}
        except RuntimeError:  # the pool stopped between the check and the call
            futures, broken = {}, [i for i, _, _ in tasks]
        else:
            late, broken = _collect(futures, scores, wait_s)
            out_of_time.update(late)
        if not broken:
            break
        shutdown_pool()
        tasks = [task for task in tasks if task[0] in set(broken)]
    else:
        out_of_time.update(broken)
    return out_of_time


def _verify_in_pool(
    tasks: list[tuple[int, str, str]],
    timeout_s: float,
    workers: int,
    verify: Callable[[str, str, int], float | None] = _verify_one,
) -> dict[int, float]:
    """Scores ``{index: score}`` of (index, prediction, gold) tasks under one batch deadline.

    Round 1 gives every task a first attempt of 1 s (math-verify's limit; pebble stops a worker
    stuck for longer outside Python). Round 2 retries the tasks that ran out of time, shortest
    first, all sharing one deadline: ``2 * timeout_s`` after the batch started, but at least
    ``timeout_s / 2`` after the retry starts. Whatever is unfinished then scores 0. With
    ``timeout_s <= 1`` there is one round.
    """
    started = time.monotonic()
    two_rounds = timeout_s > _FIRST_ATTEMPT_S
    first_limit = _FIRST_ATTEMPT_S if two_rounds else 1
    first_backstop = min(timeout_s, 3 * first_limit + 1.0)
    scores: dict[int, float] = {}
    # a safety net only: pebble ends every task within its backstop, plus a worker restart
    safety_s = 30.0 + (len(tasks) / workers + 1) * (first_backstop + 5.0)
    out_of_time = _run_round(workers, verify, tasks, first_limit, first_backstop, safety_s, scores)
    if out_of_time and two_rounds:
        remaining = max(started + 2 * timeout_s - time.monotonic(), timeout_s / 2)
        retry = sorted((t for t in tasks if t[0] in out_of_time), key=lambda t: len(t[1]) + len(t[2]))
        out_of_time = _run_round(workers, verify, retry, max(1, int(remaining)), remaining, remaining, scores)
    for index in out_of_time:
        scores[index] = 0.0
    return scores


# ----------------------------------------------------------------------------------------------
# Public scoring API
# ----------------------------------------------------------------------------------------------


def _check_texts(name: str, values: Any) -> None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(values).__name__}")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{index}] must be str, got {type(value).__name__}: {value!r:.60}")


def _gold_answer(reference: str) -> str | None:
    if "####" in reference or "\\boxed" in reference or "\\fbox" in reference:
        return extract_answer(reference)
    gold = _strip_wrappers(_prepare(reference))
    return gold or None


def _check_flags(truncated: Any, n: int) -> list[bool]:
    if truncated is None:
        return [False] * n
    flags = np.asarray(truncated.cpu() if hasattr(truncated, "cpu") else truncated)
    if flags.dtype != bool or flags.shape != (n,):
        raise ValueError(
            f"truncated must be {n} bools (one per completion), got dtype {flags.dtype} shape {flags.shape}"
        )
    return flags.tolist()


def math_accuracy(
    completions: Sequence[str],
    references: Sequence[str],
    timeout_s: float = 5.0,
    workers: int = 1,
    truncated: Any = None,
) -> list[float]:
    """1.0 per completion whose final answer equals its reference answer, else 0.0.

    Args:
        completions: N model outputs (free text with the answer at the end).
        references: N reference answers: bare (``"72"``, ``"\\frac{1}{2}"``, ``"\\$18.90"``) or a full
            solution (``"... #### 72"``, ``"... \\boxed{72}"``).
        timeout_s: the batch's math-verify deadline for slow items (module docstring); > 0.
        workers: math-verify processes, >= 1.
        truncated: None or (N,) bool (list, array or tensor): completions cut off at the token limit;
            their unfinished last sentence is ignored (``final_answer``).

    Returns:
        N floats in {0.0, 1.0}. A hedged, missing, unparsable or timed-out answer scores 0.

    Raises:
        TypeError: a sequence is not a list/tuple of str (names the index and type), before any work.
        ValueError: lengths differ, or ``timeout_s``/``workers``/``truncated`` out of range.
    """
    _check_texts("completions", completions)
    _check_texts("references", references)
    if len(completions) != len(references):
        raise ValueError(f"got {len(completions)} completions but {len(references)} references")
    cut = _check_flags(truncated, len(completions))
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    scores = [0.0] * len(completions)
    pending: list[tuple[int, str, str]] = []
    for index, (completion, reference) in enumerate(zip(completions, references)):
        prediction, gold = extract_answer(completion, cut[index]), _gold_answer(reference)
        if prediction is None or gold is None:
            continue
        decided = _compare_in_process(prediction, gold)
        if decided is None:
            pending.append((index, prediction, gold))
        else:
            scores[index] = decided
    if pending:
        for index, score in _verify_in_pool(pending, float(timeout_s), workers).items():
            scores[index] = score
    return scores


def format_reward(completions: Sequence[str], truncated: Any = None) -> list[float]:
    """1.0 per completion whose final answer comes from a marker (``\\boxed{}``/``\\fbox{}``, a ``####``
    answer line, "answer is") and is not hedged; the same extraction as ``extract_answer``.
    ``truncated``: as in ``math_accuracy``."""
    _check_texts("completions", completions)
    cut = _check_flags(truncated, len(completions))
    out = []
    for text, is_cut in zip(completions, cut):
        found = final_answer(text, is_cut)
        out.append(float(found.answer is not None and found.marker in ("boxed", "####", "answer is")))
    return out


def score_completions(
    completions: Sequence[str], references: Sequence[str], config: RewardConfig, truncated: Any = None
) -> tuple[list[float], list[bool]]:
    """(rewards, correct) for a rollout batch: accuracy plus ``format_weight`` x format.

    ``truncated`` (N,) bool or None only changes extraction (``final_answer``); the policy
    ``config.truncated`` is applied by the caller with ``apply_truncation_policy``.
    """
    accuracy = math_accuracy(completions, references, config.timeout_s, config.workers, truncated)
    rewards = list(accuracy)
    if config.format_weight:
        rewards = [a + config.format_weight * f for a, f in zip(accuracy, format_reward(completions, truncated))]
    return rewards, [a > 0.5 for a in accuracy]


def apply_truncation_policy(
    rewards: Sequence[float], correct: Sequence[bool], truncated: Any, policy: str
) -> tuple[list[float], list[bool], np.ndarray]:
    """Apply ``reward.truncated`` to completions cut off at ``max_new_tokens``.

    Args:
        rewards: N rewards; correct: N bools (same order as the rollout batch).
        truncated: (N,) bool array/tensor/list, True where the completion has no EOS; None = none.
        policy: "score" (unchanged), "zero" (reward 0 and incorrect) or "mask" (unchanged scores, rows
            dropped from the loss, as TRL's ``mask_truncated_completions``).

    Returns:
        (rewards, correct, keep): ``keep`` (N,) bool is False on rows to leave out of the loss.

    Raises:
        ValueError: unknown policy, or ``truncated`` not (N,) bool.
    """
    if policy not in TRUNCATION_POLICIES:
        raise ValueError(f"policy must be one of {'|'.join(TRUNCATION_POLICIES)}, got {policy!r}")
    n = len(rewards)
    if len(correct) != n:
        raise ValueError(f"got {n} rewards but {len(correct)} correct flags")
    flags = np.asarray(_check_flags(truncated, n), dtype=bool)
    rewards, correct = [float(r) for r in rewards], [bool(c) for c in correct]
    keep = np.ones(n, dtype=bool)
    if policy == "zero":
        rewards = [0.0 if cut else r for r, cut in zip(rewards, flags)]
        correct = [False if cut else c for c, cut in zip(correct, flags)]
    elif policy == "mask":
        keep = ~flags
    return rewards, correct, keep
