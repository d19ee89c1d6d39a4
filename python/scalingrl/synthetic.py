"""Synthetic arithmetic prompts: a deterministic generator of up to millions of graded problems.

Prompt ``i`` of a pool is a pure function of ``(seed, i)``: an integer expression such as ``37+8*6=``
whose difficulty level fixes the number of operands, the digits per operand and the operators. Each
problem carries its reference chain of thought (one ``a*b=c,`` step per operation, products first,
then left to right) and its answer, so a pool of 220K prompts costs nothing until a prompt is drawn.

Left out on purpose: division (answers stay integers) and parentheses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from scalingrl.config_field import config_field

__all__ = ["SyntheticConfig", "SyntheticTask", "ArithmeticProblem", "solve_steps", "smooth_round_robin", "ALPHABET"]

#: Every character a prompt, chain of thought or answer of this task can contain.
ALPHABET = "0123456789+-*=,# "
#: Largest sum of ``level_weights``: the length of the repeating level pattern of a weighted pool.
MAX_LEVEL_WEIGHT_TOTAL = 10_000


@dataclasses.dataclass
class SyntheticConfig:
    """The synthetic arithmetic task."""

    size: int = config_field(220_000, help="number of prompts in the pool (ids 0..size-1).")
    seed: int = config_field(0, help="task seed; equal seeds give equal pools.")
    min_operands: int = config_field(2, help="fewest operands in an expression (>= 2).")
    max_operands: int = config_field(3, help="most operands in an expression.")
    max_digits: int = config_field(2, help="most digits per operand (levels go from 1 to this).")
    operators: str = config_field(
        "+-*",
        help='operators the hardest levels use; "+" and "-" come first, "*" only at the top operator tier.',
    )
    heldout_size: int = config_field(
        256,
        help="size of the held-out evaluation split (drawn from a disjoint seed stream).",
    )
    level_weights: tuple[int, ...] = config_field(
        (),
        help="relative number of pool prompts per level, easiest level first, one integer per level "
        "(empty: every level equally). Only the training pool follows it: the held-out split and the "
        "quickstart warm start keep the equal mix.",
    )

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"synthetic.size must be >= 1, got {self.size}")
        if not 2 <= self.min_operands <= self.max_operands <= 8:
            raise ValueError(
                f"need 2 <= synthetic.min_operands <= synthetic.max_operands <= 8, "
                f"got {self.min_operands}, {self.max_operands}"
            )
        if not 1 <= self.max_digits <= 4:
            raise ValueError(f"synthetic.max_digits must be in 1..4, got {self.max_digits}")
        if not self.operators or set(self.operators) - set("+-*"):
            raise ValueError(f"synthetic.operators must be a non-empty subset of '+-*', got {self.operators!r}")
        if self.heldout_size < 0:
            raise ValueError(f"synthetic.heldout_size must be >= 0, got {self.heldout_size}")
        weights = self.level_weights
        if isinstance(weights, str) or not isinstance(weights, (list, tuple)):
            raise ValueError(f"synthetic.level_weights must be a list of integers (one per level), got {weights!r}")
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights):
            raise ValueError(f"synthetic.level_weights must be YAML integers >= 0, got {list(weights)}")
        if weights and (sum(weights) == 0 or sum(weights) > MAX_LEVEL_WEIGHT_TOTAL):
            raise ValueError(
                f"synthetic.level_weights must sum to 1..{MAX_LEVEL_WEIGHT_TOTAL}, "
                f"got {sum(weights)} from {list(weights)}"
            )
        self.level_weights = tuple(weights)
        check_level_weights(self, len(level_specs(self)))


def level_specs(config: SyntheticConfig) -> list[tuple[str, int, int]]:
    """The task's levels as (operator tier, operands, digits), easiest first (a rough hardness order:
    operations, then digits, then operator tier)."""
    levels = [
        (tier, operands, digits)
        for operands in range(config.min_operands, config.max_operands + 1)
        for digits in range(1, config.max_digits + 1)
        for tier in operator_tiers(config.operators)
    ]
    return sorted(levels, key=lambda level: (level[1] - 1) * (1 + level[2]) + 0.5 * len(level[0]))


def check_level_weights(config: SyntheticConfig, num_levels: int) -> None:
    """Raise ``ValueError`` unless ``config.level_weights`` is empty or has one entry per level."""
    weights = config.level_weights
    if weights and len(weights) != num_levels:
        raise ValueError(
            f"synthetic.level_weights has {len(weights)} entries but this task has {num_levels} levels (operands "
            f"{config.min_operands}-{config.max_operands}, digits 1-{config.max_digits}, operators "
            f"{config.operators!r}): give one weight per level"
        )


def smooth_round_robin(weights) -> np.ndarray:
    """(sum(weights),) int64: the order of smooth weighted round-robin over ``len(weights)`` items.

    Args:
        weights: (k,) integers >= 0 with a positive sum.

    Each round adds every item's weight to its running credit, emits the item with the most credit
    (lowest index on ties) and takes the total weight from it; item l appears ``weights[l]`` times, spread
    evenly (weights 5, 1, 1 give 0 0 1 0 2 0 0). Source: nginx's upstream balancer, commit
    "Upstream: smooth weighted round-robin balancing" (27e94984486058d73157038f7950a0a36ecc6e35, nginx 1.3.1).

    Raises:
        ValueError: ``weights`` is not 1-D, holds a non-integer or a negative value, or sums to 0.
    """
    raw = np.asarray(weights)
    if raw.ndim != 1 or raw.dtype.kind not in "iu" or (raw < 0).any() or raw.sum() <= 0:
        raise ValueError(f"weights must be a 1-D sequence of integers >= 0 with a positive sum, got {weights!r}")
    weights = raw.astype(np.int64)
    credit = np.zeros(len(weights), dtype=np.int64)
    order = np.empty(int(weights.sum()), dtype=np.int64)
    for position in range(len(order)):
        credit += weights
        chosen = int(np.argmax(credit))
        credit[chosen] -= len(order)
        order[position] = chosen
    return order


def operator_tiers(operators: str) -> list[str]:
    """The operator tiers of a task, easiest first: "+", then "+-" if "-" is used, then the last plus "*"."""
    tiers = ["+"] + (["+-"] if "-" in operators else [])
    if "*" in operators:
        tiers.append(tiers[-1] + "*")
    return tiers


@dataclasses.dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: ``prompt`` (e.g. ``"3+4*2="``), reference ``solution`` (chain of thought ending
    ``"####11"``), ``answer`` (``"11"``) and its difficulty ``level``."""

    prompt: str
    solution: str
    answer: str
    level: int


def solve_steps(operands: list[int], ops: list[str]) -> tuple[list[str], int]:
    """Reference chain of thought: products left to right, then sums and differences left to right.

    Returns the steps (``"4*2=8"``) and the value.
    """
    values, pending, steps = [operands[0]], [], []
    for op, right in zip(ops, operands[1:]):
        if op == "*":
            left = values.pop()
            product = left * right
            steps.append(f"{left}*{right}={product}")
            values.append(product)
        else:
            pending.append(op)
            values.append(right)
    total = values[0]
    for op, right in zip(pending, values[1:]):
        new_total = total + right if op == "+" else total - right
        steps.append(f"{total}{op}{right}={new_total}")
        total = new_total
    return steps, total


class SyntheticTask:
    """Deterministic pool of arithmetic prompts with difficulty levels.

    Levels enumerate (operator tier, operands, digits) from easiest to hardest; prompt ``i`` has level
    ``i % num_levels`` so every level is equally represented in any prefix of the pool. With
    ``level_weights`` w (sum W), the training pool repeats a pattern of W levels in which level l holds
    w[l] slots, in smooth weighted round-robin order (``smooth_round_robin``), so any prefix holds each
    level in proportion to its weight (to within one prompt per level, checked by the tests). The
    held-out split always has level ``i % num_levels``.

    Raises:
        ValueError: ``config.level_weights`` is not one integer per level (also checked by ``SyntheticConfig``).
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.levels: list[tuple[str, int, int]] = level_specs(config)
        check_level_weights(config, len(self.levels))  # the config may have been edited after validation
        self._pattern = smooth_round_robin(config.level_weights) if config.level_weights else None

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def __len__(self) -> int:
        return self.config.size

    def level_of(self, ids: np.ndarray, split: str = "train") -> np.ndarray:
        """(n,) int64 difficulty levels of (n,) int prompt ids of ``split`` ("train": the pool, or "heldout").

        Raises:
            ValueError: ``split`` is neither "train" nor "heldout".
        """
        if split not in ("train", "heldout"):
            raise ValueError(f'split must be "train" or "heldout", got {split!r}')
        ids = np.asarray(ids, dtype=np.int64)
        if split == "train" and self._pattern is not None:
            return self._pattern[ids % len(self._pattern)]
        return ids % self.num_levels

    def prior_difficulty(self) -> np.ndarray:
        """(size,) float64 in [0, 1]: level / (num_levels - 1)."""
        levels = self.level_of(np.arange(self.config.size))
        return levels / max(self.num_levels - 1, 1)

    def reference_cot_length(self) -> np.ndarray:
        """(size,) float64 number of reference chain-of-thought steps (operations)."""
        steps = np.array([operands - 1 for _, operands, _ in self.levels], dtype=np.float64)
        return steps[self.level_of(np.arange(self.config.size))]

    def problem(self, index: int, split: str = "train") -> ArithmeticProblem:
        """Problem ``index`` of the pool (``split="train"``) or of the held-out split."""
        stream = 0 if split == "train" else 1
        rng = np.random.default_rng([self.config.seed, stream, int(index)])
        level = int(self.level_of(np.array([index]), split)[0])
        tier, operands, digits = self.levels[level]
        numbers = [int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10**digits)) for _ in range(operands)]
        ops = [tier[int(rng.integers(len(tier)))] for _ in range(operands - 1)]
        if "*" in tier and "*" not in ops:
            ops[int(rng.integers(len(ops)))] = "*"
        for position, op in enumerate(ops):  # keep products small: a one-digit factor on the right
            if op == "*":
                numbers[position + 1] = int(rng.integers(2, 10))
        steps, value = solve_steps(numbers, ops)
        prompt = "".join(f"{n}{op}" for n, op in zip(numbers, ops)) + f"{numbers[-1]}="
        solution = ",".join(steps) + f"####{value}"
        return ArithmeticProblem(prompt=prompt, solution=solution, answer=str(value), level=level)

    def rows(self, ids: Any, split: str = "train") -> list[dict[str, Any]]:
        """Rows in the data-set schema (prompt, answer, solution, level) for prompt ids."""
        out = []
        for index in np.asarray(ids, dtype=np.int64).reshape(-1):
            problem = self.problem(int(index), split)
            out.append(dataclasses.asdict(problem) | {"id": int(index)})
        return out

    def heldout_rows(self) -> list[dict[str, Any]]:
        """The held-out split: ``heldout_size`` problems from a stream disjoint from the pool's."""
        return self.rows(np.arange(self.config.heldout_size), split="heldout")
