"""Property over real data: a completion that ends in the exact reference answer always scores 1, for
every answer of MATH-500 and GSM8K test (../shared/data beside the checkout), in the three ways a
model states it; and a wrong answer (another problem's, where it differs) scores 0."""

import json
from pathlib import Path

import pytest

from scalingrl.rewards import exact_value, extract_answer, math_accuracy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (DATA / "math" / "test500.json").exists() or not (DATA / "gsm8k" / "test.jsonl").exists(),
    reason="needs ../shared/data/math/test500.json and ../shared/data/gsm8k/test.jsonl beside the checkout",
)


def _references() -> list[tuple[str, str]]:
    """(reference as the data set stores it, its bare answer) for MATH-500 then GSM8K test."""
    math_rows = json.loads((DATA / "math" / "test500.json").read_text())
    gsm8k_rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines() if line.strip()]
    out = [(row["answer"], row["answer"]) for row in math_rows]
    out += [(row["answer"], row["answer"].rsplit("####", 1)[1].strip()) for row in gsm8k_rows]
    assert len(out) == 500 + 1319
    return out


@pytest.mark.parametrize(
    "form", ["The final answer is $\\boxed{{{}}}$", "So, step by step, the answer is ${}$.", "#### {}"]
)
def test_the_exact_reference_always_scores_one(form):
    references = _references()
    completions = [f"Let me work through it. 1 + 1 = 2, then 17.\n{form.format(answer)}" for _, answer in references]
    if form.startswith("####"):  # GSM8K's own marker: numbers only, as in GSM8K
        keep = [i for i, (_, answer) in enumerate(references) if exact_value(answer) is not None]
        assert len(keep) > 1319
        completions, references = [completions[i] for i in keep], [references[i] for i in keep]
    scores = math_accuracy(completions, [reference for reference, _ in references], workers=2)
    failures = [answer for (_, answer), score in zip(references, scores) if score != 1.0]
    assert not failures


def test_gsm8k_solutions_extract_their_answer():
    for reference, answer in _references()[500:]:
        assert extract_answer(reference) == answer.replace(",", "") or exact_value(
            extract_answer(reference)
        ) == exact_value(answer)


def test_another_problems_answer_scores_zero():
    """Every GSM8K answer and the first 100 MATH-500 ones (the rest would cost ~40 s of math-verify)."""
    references = _references()[400:]
    shift = 7
    others = [references[(i + shift) % len(references)][1] for i in range(len(references))]
    completions = [f"The final answer is $\\boxed{{{other}}}$" for other in others]
    scores = math_accuracy(completions, [reference for reference, _ in references], workers=2)
    same = [
        i
        for i, (_, answer) in enumerate(references)
        if answer == others[i] or (exact_value(answer) is not None and exact_value(answer) == exact_value(others[i]))
    ]
    wrong = [(references[i][1], others[i]) for i, score in enumerate(scores) if score != float(i in same)]
    assert not wrong
