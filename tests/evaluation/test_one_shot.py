"""N-way one-shot classification against hand-computed values."""

from __future__ import annotations

import pytest

from sbert_siamese.evaluation.one_shot import OneShotEvaluator
from tests.evaluation.fakes import FakeEncoder, at_angles


def test_one_shot_hand_computed():
    references = {"cat": "a cat", "dog": "a dog", "bird": "a bird"}
    ref_vectors = at_angles(0, 90, 180)
    # queries at 10 (cat), 100 (dog), 170 (bird), 80 (dog), 45 (tie cat/dog -> the first, cat)
    queries = at_angles(10, 100, 170, 80, 45)
    labels = ["cat", "dog", "cat", "cat", "dog"]
    evaluator = OneShotEvaluator(references, ["q"] * 5, labels, name="os")
    assert evaluator.predict(ref_vectors, queries) == ["cat", "dog", "bird", "dog", "cat"]
    assert evaluator.compute(ref_vectors, queries) == {"os_accuracy": 2 / 5, "os_ways": 3.0}
    assert evaluator.primary_metric == "os_accuracy"


def test_one_shot_call():
    vectors = {"a cat": [1.0, 0.0], "a dog": [0.0, 1.0], "kitten": [0.9, 0.2], "puppy": [0.3, 0.8]}
    encoder = FakeEncoder(vectors)
    evaluator = OneShotEvaluator({1: "a cat", 2: "a dog"}, ["kitten", "puppy", "kitten"], [1, 2, 2])
    assert evaluator(encoder) == {"one-shot_accuracy": pytest.approx(2 / 3), "one-shot_ways": 2.0}
    assert [texts for texts, _ in encoder.calls] == [["a cat", "a dog"], ["kitten", "puppy", "kitten"]]


@pytest.mark.parametrize(
    "args, match",
    [
        (({"a": "x"}, ["q"], ["a"]), "at least 2 references"),
        (({"a": "x", "b": "y"}, ["q"], []), "same length"),
        (({"a": "x", "b": "y"}, [], []), "no queries"),
        (({"a": "x", "b": "y"}, ["q", "r"], ["a", "c"]), "without a reference: 'c'"),
    ],
)
def test_one_shot_input_errors(args, match):
    with pytest.raises(ValueError, match=match):
        OneShotEvaluator(*args)
