"""The SBERT softmax objective: the head's features and logits against a hand-written linear layer, the
cross-entropy by hand, the head's state dict round trip."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses.softmax import SoftmaxParams, softmax_loss
from sbert_siamese.models.heads import SoftmaxHead

from .helpers import check_state_dict_round_trip, rand


def test_softmax_head_features_are_u_v_absdiff():
    u = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[3.0, 1.0]])
    head = SoftmaxHead(2, 3)
    # [u, v, |u - v|] = [1, -2, 3, 1, |1-3|, |-2-1|] = [1, -2, 3, 1, 2, 3]
    assert head.features(u, v).tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0]]
    # with u * v appended: [1*3, -2*1] = [3, -2]
    head = SoftmaxHead(2, 3, use_product=True)
    assert head.features(u, v).tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0, 3.0, -2.0]]
    assert head.classifier.in_features == 8


@pytest.mark.parametrize("use_product", [False, True])
def test_softmax_head_logits_equal_manual_linear_layer(use_product):
    torch.manual_seed(0)
    head = SoftmaxHead(4, 3, use_product=use_product).double()
    u, v = rand(5, 4, seed=80), rand(5, 4, seed=81)
    parts = [u, v, (u - v).abs()] + ([u * v] if use_product else [])
    features = torch.cat(parts, dim=1)
    w, b = head.classifier.weight.detach(), head.classifier.bias.detach()
    expected = [
        [sum(f * wk for f, wk in zip(row, w[k].tolist(), strict=True)) + b[k].item() for k in range(3)]
        for row in features.tolist()
    ]
    torch.testing.assert_close(
        head(u, v), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )


def test_softmax_head_rejects_fewer_than_two_labels():
    with pytest.raises(ValueError, match="num_labels"):
        SoftmaxHead(4, 1)
    # and the objective's parameters do so when the recipe is validated, before the head is built
    assert SoftmaxParams() == SoftmaxParams(2, False)
    with pytest.raises(ConfigError) as info:
        SoftmaxParams(num_labels=1)
    assert info.value.key == "num_labels" and str(info.value).startswith("num_labels must be >= 2")


def test_softmax_loss_is_cross_entropy_by_hand():
    # logits [2, 0, -1], label 0: -log(e^2 / (e^2 + 1 + e^-1)); logits [0, 1], ... 3 classes
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    row1 = -math.log(1 / (math.exp(0.5) + math.exp(1.5) + 1))
    assert softmax_loss(logits, labels).item() == pytest.approx((row0 + row1) / 2, rel=1e-12)
    # float labels are accepted as class indices
    assert softmax_loss(logits, labels.double()).item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.parametrize("make", [lambda: SoftmaxHead(4, 2), lambda: SoftmaxHead(4, 3, use_product=True)])
def test_softmax_head_state_dict_round_trip(make):
    check_state_dict_round_trip(make)
