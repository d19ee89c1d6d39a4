"""math_accuracy on real GSM8K and MATH answers: true positives, true negatives, math-verify
equivalences, and pathological completions that must score 0 without stalling."""

import json
from pathlib import Path

import pytest

from scalingrl.rewards import RewardConfig, extract_answer, format_reward, math_accuracy, score_completions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not present")


def _gsm8k(n):
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[:n]]
    return rows


def _math(n):
    return json.loads((DATA / "math" / "test500.json").read_text())[:n]


@needs_data
def test_gsm8k_reference_solutions_score_one_and_shuffled_answers_zero():
    rows = _gsm8k(60)
    references = [row["answer"] for row in rows]  # full solutions ending "#### x"
    completions = [f"Let me think. ... The answer is {extract_answer(row['answer'])}." for row in rows]
    assert math_accuracy(completions, references) == [1.0] * len(rows)
    boxed = [f"So we get \\boxed{{{extract_answer(row['answer'])}}}" for row in rows]
    assert math_accuracy(boxed, references) == [1.0] * len(rows)
    answers = [extract_answer(r) for r in references]
    shifted = [f"#### {answers[(i + 1) % len(rows)]}" for i in range(len(rows))]
    expected = [float(answers[(i + 1) % len(rows)] == answers[i]) for i in range(len(rows))]
    assert math_accuracy(shifted, references) == expected
    assert sum(expected) < len(rows) // 2  # the negatives really are negatives


@needs_data
def test_math_answers_true_positives_and_negatives():
    rows = _math(40)
    references = [row["answer"] for row in rows]
    positives = [f"Therefore the final answer is $\\boxed{{{answer}}}$." for answer in references]
    assert math_accuracy(positives, references) == [1.0] * len(rows)
    negatives = [f"$\\boxed{{{references[(i + 7) % len(rows)]}}}$" for i in range(len(rows))]
    scores = math_accuracy(negatives, references)
    assert sum(scores) <= 1  # MATH answers of different problems are (almost) never equivalent


@pytest.mark.parametrize(
    "completion, reference, expected",
    [
        ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("The answer is 0.5", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1.0),
        ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", 1.0),
        ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", 0.0),
        ("#### 1,000", "1000", 1.0),
        ("#### 72", "blah #### 72", 1.0),
        ("#### 71", "blah #### 72", 0.0),
        ("no answer here", "72", 0.0),
        ("", "72", 0.0),
    ],
)
def test_equivalences(completion, reference, expected):
    assert math_accuracy([completion], [reference]) == [expected]


def test_pathological_completions_score_zero_and_do_not_stall():
    huge = "\\boxed{" + "(" * 5000 + "x" + ")" * 5000 + "}"
    nested = "\\boxed{" + "\\frac{" * 200 + "1" + "}{2}" * 200 + "}"
    scores = math_accuracy([huge, nested, "\\boxed{\\frac{1}{2}}"], ["\\frac{1}{3}", "3", "0.5"], timeout_s=3.0)
    assert scores[:2] == [0.0, 0.0]
    assert scores[2] == 1.0


def test_tiny_timeout_scores_zero_instead_of_hanging():
    scores = math_accuracy(["\\boxed{\\sqrt{12}}"] * 3, ["2\\sqrt{3}"] * 3, timeout_s=1e-4)
    assert all(score in (0.0, 1.0) for score in scores)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 completions but 1 references"):
        math_accuracy(["a", "b"], ["1"])


def test_format_reward_and_weighted_score():
    assert format_reward(["#### 3", "the answer is 4", "\\boxed{5}", "5"]) == [1.0, 1.0, 1.0, 0.0]
    rewards, correct = score_completions(["#### 3", "#### 4"], ["3", "3"], RewardConfig(format_weight=0.5))
    assert rewards == [1.5, 0.5] and correct == [True, False]
