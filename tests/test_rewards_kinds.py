"""Every kind of answer form from issue 11 (graders' public bug reports on GSM8K/MATH), with the right
score, plus the hedging rule, format_reward's agreement with extraction, bad input, the truncation
policy, and a cut-off real sample (issue 13)."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scalingrl.rewards import (
    RewardConfig,
    apply_truncation_policy,
    exact_value,
    extract_answer,
    final_answer,
    format_reward,
    math_accuracy,
    score_completions,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# (completion, reference, right score), grouped by the kinds; each kind has inputs that
# failed before the fix and inputs that passed (kept so they keep passing).
KINDS = {
    "escaped dollar": [
        ("\\boxed{\\$29}", "29", 1.0),
        ("\\boxed{18.90}", "\\$18.90", 1.0),
        ("The answer is $\\$18$.", "18", 1.0),
        ("\\boxed{\\$36}", "\\$36", 1.0),
        ("The answer is $\\$18$.", "19", 0.0),
        ("#### $1,250", "1250", 1.0),
    ],
    "commas": [
        ("\\boxed{1,2}", "12", 0.0),
        ("\\boxed{8,000}", "8000", 1.0),
        ("\\boxed{9\\,500}", "9500", 1.0),
        ("\\boxed{9\\,500}", "509", 0.0),
        ("\\boxed{1{,}234{,}567}", "1234567", 1.0),
        ("\\boxed{12,34}", "1234", 0.0),
        ("#### 1,000", "1000", 1.0),
        ("\\boxed{1, 2}", "1,2", 1.0),
    ],
    "exact numbers": [
        ("\\boxed{12345678901234567891}", "12345678901234567890", 0.0),
        ("\\boxed{12345678901234567890}", "12345678901234567890", 1.0),
        ("\\boxed{" + "7" * 400 + "}", "7" * 400, 1.0),
        ("\\boxed{" + "7" * 400 + "}", "7" * 399 + "8", 0.0),
        ("\\boxed{\\frac{1}{2^{98}}}", "\\frac{1}{2^{99}}", 0.0),
        ("\\boxed{\\frac{1}{2^{98}}}", "\\frac{1}{2^{98}}", 1.0),
        ("\\boxed{0.1234567}", "0.1234568", 0.0),
        ("\\boxed{0.5}", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\frac 34}", "0.75", 1.0),
    ],
    "answer is": [
        ("The answer is 5.\nWait...\nThe answer is 72.", "72", 1.0),
        ("The answer is 72.\nWait...\nThe answer is 5.", "72", 0.0),
        ("The answer is \\frac{1}{2}, since half of it is left.", "\\frac{1}{2}", 1.0),
        ("So the answer is **73**.", "73", 1.0),
        ("The answer is: 540.", "540", 1.0),
        ("The final answer is $\\frac{\\sqrt{3}}{2}$.", "\\frac{\\sqrt{3}}{2}", 1.0),
    ],
    "#### lines": [
        ("#### Step 1: Add\n3 + 4 = 7, so she pays 72 in total.", "72", 1.0),
        ("#### 72 dollars", "72", 1.0),
        ("#### Step 1: Add\nThe answer is 72.\n#### Step 2: Check", "72", 1.0),
        ("#### 71", "blah #### 72", 0.0),
        ("#### 72", "Some solution.\n#### 72", 1.0),
    ],
    "last number": [
        ("So the probability equals 3/4", "\\frac{3}{4}", 1.0),
        ("So the probability equals 3/4", "4", 0.0),
        ("so x = .5", "5", 0.0),
        ("so x = .5", "0.5", 1.0),
        ("the change is \u22123", "-3", 1.0),
        ("the change is \u22123", "3", 0.0),
        ("the probability is \\frac{2}{3}", "\\frac{2}{3}", 1.0),
        ("she pays 9\\,500 in total", "9500", 1.0),
    ],
    "boxed forms": [
        ("\\boxed {72}", "72", 1.0),
        ("So \\boxed{72}. (Final answer goes in \\boxed{}.)", "72", 1.0),
        ("\\fbox{72}", "72", 1.0),
        ("The answer is $\\boxed{72}$.", "72", 1.0),
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1.0),
    ],
    "hedging": [
        ("The answer is $70$ or $72$.", "72", 0.0),
        ("\\boxed{70} or \\boxed{72}", "72", 0.0),
        ("\\boxed{70 \\text{ or } 72}", "72", 0.0),
        ("#### 70 or 72", "72", 0.0),
        ("It is 70 or 72", "72", 0.0),
        ("The answer is $72$ or $72.0$.", "72", 1.0),  # one value offered twice is not a hedge
        ("\\boxed{70}.\nNo, wait: \\boxed{72}", "72", 1.0),  # a later statement corrects an earlier one
    ],
    "math-verify equivalences": [
        ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", 1.0),
        ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", 0.0),
        ("\\boxed{(1, 2)}", "(1,2)", 1.0),
        ("no answer here", "72", 0.0),
        ("", "72", 0.0),
    ],
}
CASES = [(kind, *case) for kind, cases in KINDS.items() for case in cases]


def test_every_kind_scores_right_in_one_batch():
    """One batch with every case (the batch API, 2 workers): the scores are exactly the right values."""
    scores = math_accuracy([c for _, c, _, _ in CASES], [r for _, _, r, _ in CASES], workers=2)
    wrong = [
        (kind, completion[:60], reference[:30], right, got)
        for (kind, completion, reference, right), got in zip(CASES, scores)
        if got != right
    ]
    assert not wrong


@pytest.mark.parametrize(
    "kind, completion, reference, right", [c for c in CASES if len(c[1]) < 200], ids=lambda value: str(value)[:30]
)
def test_each_case_alone(kind, completion, reference, right):
    assert math_accuracy([completion], [reference]) == [right]


@pytest.mark.parametrize(
    "text, answer, marker",
    [
        ("The answer is 5.\nWait...\nThe answer is 72.", "72", "answer is"),
        ("\\boxed{5}\nThen the answer is 6.", "6", "answer is"),  # the last marker by position, whatever its kind
        ("The answer is 6.\n#### 7", "7", "####"),
        ("#### 7\nThe answer is 6.", "6", "answer is"),
        ("#### Step 1: Add\nso we have 7 apples", "7", "last number"),
        ("since the answer is less than 1, we stop at 2.", "2", "last number"),  # prose after "answer is"
        ("The answer is $70$ or $72$.", None, "answer is"),
        ("nothing here", None, None),
    ],
)
def test_extraction_order(text, answer, marker):
    found = final_answer(text)
    assert (found.answer, found.marker) == (answer, marker)
    assert extract_answer(text) == answer


def test_format_reward_agrees_with_extraction():
    texts = [
        "#### Step 1: Add",
        "\\fbox{3}",
        "The answer is 4",
        "\\boxed{70} or \\boxed{72}",
        "it is 5",
        "#### 18",
        "\\boxed{}",
        "The answer is **73**.",
    ]
    assert format_reward(texts) == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    for text, score in zip(texts, format_reward(texts)):
        found = final_answer(text)
        assert score == float(found.answer is not None and found.marker != "last number")


def test_weighted_score():
    rewards, correct = score_completions(
        ["#### 3", "#### 4", "it is 3"], ["3", "3", "3"], RewardConfig(format_weight=0.5)
    )
    assert rewards == [1.5, 0.5, 1.0] and correct == [True, False, True]


# ---------------------------------------------------------------------------------------------
# exact numbers against references we did not write: Fraction and sympy
# ---------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**60), 10**60), st.integers(1, 10**30), st.sampled_from(["frac", "dfrac", "slash", "plain"]))
def test_exact_value_matches_fraction(numerator, denominator, form):
    if form == "plain":
        text, expected = f"{numerator:,}", Fraction(numerator)
    elif form == "slash":
        text, expected = f"{numerator}/{denominator}", Fraction(numerator, denominator)
    else:
        sign = "-" if numerator < 0 else ""
        text, expected = f"{sign}\\{form}{{{abs(numerator)}}}{{{denominator}}}", Fraction(numerator, denominator)
    assert exact_value(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=7, min_value=-(10**9), max_value=10**9))
def test_exact_value_of_decimals_matches_fraction(value):
    text = format(value, "f")  # fixed-point, as a model writes it (str() may give 0E-7)
    assert exact_value(text) == Fraction(text)


@pytest.mark.parametrize(
    "text, sympy_value",
    [
        ("\\frac{1}{2^{98}}", sympy.Rational(1, 2**98)),
        ("2^{10}", sympy.Integer(1024)),
        ("-\\frac{3}{4}", sympy.Rational(-3, 4)),
        ("2\\cdot 10^{3}", sympy.Integer(2000)),
        ("10^{-3}", sympy.Rational(1, 1000)),
        ("\\frac{\\frac{1}{2}}{3}", sympy.Rational(1, 6)),
    ],
)
def test_exact_value_matches_sympy(text, sympy_value):
    value = exact_value(text)
    assert sympy.Rational(value.numerator, value.denominator) == sympy_value


@pytest.mark.parametrize(
    "text",
    ["x", "\\sqrt{2}", "1,2", "(1, 2)", "2^{10^{10}}", "10^{100000}", "\\frac{1}{0}", "(" * 5000 + "1" + ")" * 5000],
)
def test_exact_value_refuses_non_numbers_and_huge_powers(text):
    assert exact_value(text) is None


# ---------------------------------------------------------------------------------------------
# bad input: a clear error naming the index and type, before any work
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completions, references, error, message",
    [
        (["a", None], ["1", "2"], TypeError, r"completions\[1\] must be str, got NoneType"),
        (["a", b"b"], ["1", "2"], TypeError, r"completions\[1\] must be str, got bytes"),
        (["a", "b"], ["1", 2], TypeError, r"references\[1\] must be str, got int"),
        ("ab", ["1", "2"], TypeError, r"completions must be a sequence of str, got str"),
        (["a", "b"], ["1"], ValueError, "2 completions but 1 references"),
    ],
)
def test_bad_input_is_named(completions, references, error, message):
    with pytest.raises(error, match=message):
        math_accuracy(completions, references)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeout_s": 0}, "timeout_s must be a number > 0"),
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"truncated": [True]}, "truncated must be 2 bools"),
        ({"truncated": [1, 0]}, "truncated must be 2 bools"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        math_accuracy(["1", "2"], ["1", "2"], **kwargs)


def test_config_rejects_unknown_truncation_policy():
    with pytest.raises(ValueError, match="reward.truncated must be one of score|zero|mask"):
        RewardConfig(truncated="drop")
    assert RewardConfig().truncated == "zero"


# ---------------------------------------------------------------------------------------------
# truncation: policy and extraction of cut-off completions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, rewards, correct, keep",
    [
        ("score", [1.0, 1.0, 0.0], [True, True, False], [True, True, True]),
        ("zero", [1.0, 0.0, 0.0], [True, False, False], [True, True, True]),
        ("mask", [1.0, 1.0, 0.0], [True, True, False], [True, False, False]),
    ],
)
def test_truncation_policy(policy, rewards, correct, keep):
    truncated = torch.tensor([False, True, True])
    out = apply_truncation_policy([1.0, 1.0, 0.0], [True, True, False], truncated, policy)
    assert out[0] == rewards and out[1] == correct and out[2].tolist() == keep and out[2].dtype == np.bool_


def test_truncation_policy_checks_its_input():
    with pytest.raises(ValueError, match="policy must be one of"):
        apply_truncation_policy([1.0], [True], [False], "drop")
    with pytest.raises(ValueError, match="truncated must be 1 bools"):
        apply_truncation_policy([1.0], [True], [False, True], "zero")


# A real GSM8K solution (test set, first problem, gold 18) in a completion that states its answer and
# then loops, re-deriving the solution under markdown headings, cut off mid-way at the token limit.
_SOLUTION = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s market.\n"
)
MID_LOOP = (
    _SOLUTION
    + "The answer is 18.\n\n#### Step 1: Eggs left\n"
    + _SOLUTION.replace("\n", "\n#### Step 2: Money\n", 1)[:130]
)
CUT_IN_ANSWER = _SOLUTION + "The answer is 18.\n\n" + _SOLUTION + "#### 1"  # "#### 18" cut after one digit
# A real SmolLM2-135M-Instruct completion for that problem (HF generate, temperature 0.7, seed 0,
# max_new_tokens=200): no EOS, cut off mid-sentence; its final complete sentence ends in 2.83.
SMOLLM2_CUT = (
    "To solve this problem, we need to determine the total amount of money Janet has to sell each day. "
    "So, Janet makes $1.40 per day.\n\nThis can be expressed as 1.40 / 4 = 0.0283, which is rounded to "
    "2.83 cents.\n\nTo get all of the money she makes per day, we need to multiply 2"
)


def test_cut_off_mid_loop_keeps_the_stated_answer():
    assert MID_LOOP.endswith("every day at the farmer")  # really cut mid-way through the repeated solution
    assert extract_answer(MID_LOOP) == "18"  # headings after "The answer is" are not answers
    assert extract_answer(MID_LOOP, truncated=True) == "18"
    assert extract_answer(CUT_IN_ANSWER) == "1"  # as complete text, the last marker wins...
    assert extract_answer(CUT_IN_ANSWER, truncated=True) == "18"  # ...but a cut-off last line is no answer
    assert extract_answer(SMOLLM2_CUT) == "2"
    assert extract_answer(SMOLLM2_CUT, truncated=True) == "2.83"


def test_truncated_completions_score_by_policy_end_to_end():
    completions, references = [CUT_IN_ANSWER, MID_LOOP, "#### 18"], ["18"] * 3
    truncated = [True, True, False]
    accuracy = math_accuracy(completions, references, truncated=truncated)
    assert accuracy == [1.0, 1.0, 1.0]
    assert math_accuracy(completions, references) == [0.0, 1.0, 1.0]
    rewards, correct = score_completions(completions, references, RewardConfig(), truncated)
    assert apply_truncation_policy(rewards, correct, truncated, "zero")[0] == [0.0, 0.0, 1.0]
    assert apply_truncation_policy(rewards, correct, truncated, "mask")[2].tolist() == [False, False, True]


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data (GSM8K) is not present beside the checkout")
def test_mid_loop_sample_is_built_from_the_real_solution():
    first = json.loads((DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    assert first["answer"].startswith(_SOLUTION.rstrip("\n")) and extract_answer(first["answer"]) == "18"
