"""Regression losses (cosine MSE, CoSENT): hand-computed values and gradients, brute-force loops, gradcheck,
invariances."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.losses import PAIR_SCORE_LOSSES, RegressionParams, cosent_loss, cosine_similarity_loss

LOSSES = [cosine_similarity_loss, cosent_loss]


def python_cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def brute_force_cosine_loss(u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor) -> float:
    total = 0.0
    for ui, vi, si in zip(u.tolist(), v.tolist(), scores.tolist(), strict=True):
        total += (python_cos(ui, vi) - si) ** 2
    return total / len(scores)


def brute_force_cosent_loss(
    u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor, scale: float = 20.0
) -> float:
    """log(1 + sum over (i, j) with s_i > s_j of exp(scale * (cos_j - cos_i))), as a double loop."""
    cos = [python_cos(ui, vi) for ui, vi in zip(u.tolist(), v.tolist(), strict=True)]
    s = scores.tolist()
    total = 1.0
    for i in range(len(s)):
        for j in range(len(s)):
            if s[i] > s[j]:  # ties (and i == j) contribute nothing
                total += math.exp(scale * (cos[j] - cos[i]))
    return math.log(total)


def random_batch(batch: int = 6, dim: int = 5, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, generator=generator, dtype=dtype)
    v = torch.randn(batch, dim, generator=generator, dtype=dtype)
    scores = torch.rand(batch, generator=generator, dtype=dtype)
    return u, v, scores


def test_registry_names_both_losses():
    assert PAIR_SCORE_LOSSES == {"cosine": cosine_similarity_loss, "cosent": cosent_loss}


def test_regression_params_check_the_scale():
    assert RegressionParams() == RegressionParams(20.0)
    with pytest.raises(ConfigError) as info:
        RegressionParams(scale=-1.0)
    assert (info.value.key, str(info.value)) == ("scale", "scale must be >= 0, got -1.0")


# ---------------------------------------------------------------------------------------------------------
# cosine_similarity_loss
# ---------------------------------------------------------------------------------------------------------


def hand_example(dtype=torch.float64):
    # pair 0: u=[1, 0], v=[1, 1] -> cos = 1 / (1 * sqrt2) = 1/sqrt2 ~ 0.70711, score 0.5
    # pair 1: u=[0, 2], v=[0, 3] -> cos = 6 / (2 * 3)   = 1,                score 1.0
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=dtype)
    v = torch.tensor([[1.0, 1.0], [0.0, 3.0]], dtype=dtype)
    scores = torch.tensor([0.5, 1.0], dtype=dtype)
    return u, v, scores


def test_cosine_loss_hand_computed_value():
    u, v, scores = hand_example()
    # ((1/sqrt2 - 0.5)^2 + (1 - 1)^2) / 2
    # (1/sqrt2 - 0.5)^2 = 1/2 - 1/sqrt2 + 1/4 = 0.75 - 1/sqrt2 ~ 0.0428932
    # loss = (0.75 - 1/sqrt2) / 2 ~ 0.0214466
    expected = (0.75 - 1 / math.sqrt(2)) / 2
    assert cosine_similarity_loss(u, v, scores).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert expected == pytest.approx(0.0214466, abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_loss_matches_brute_force_loop(seed):
    u, v, scores = random_batch(batch=7, dim=4, seed=seed)
    expected = brute_force_cosine_loss(u, v, scores)
    assert cosine_similarity_loss(u, v, scores).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_cosine_loss_float32_matches_float64():
    u, v, scores = random_batch(seed=3)
    loss64 = cosine_similarity_loss(u, v, scores)
    loss32 = cosine_similarity_loss(u.float(), v.float(), scores.float())
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(loss64.item(), rel=1e-5, abs=1e-6)


def test_cosine_loss_perfect_prediction_is_zero():
    u, v, _ = random_batch(seed=4)
    cos = torch.nn.functional.cosine_similarity(u, v, dim=-1)
    assert cosine_similarity_loss(u, v, cos.clone()).item() == pytest.approx(0.0, abs=1e-15)
    # the hand example with scores equal to its cosines: [1/sqrt2, 1]
    u, v, _ = hand_example()
    scores = torch.tensor([1 / math.sqrt(2), 1.0], dtype=torch.float64)
    assert cosine_similarity_loss(u, v, scores).item() == pytest.approx(0.0, abs=1e-15)


def test_cosine_loss_accepts_float32_scores_with_float64_embeddings():
    u, v, scores = hand_example()
    loss = cosine_similarity_loss(u, v, scores.float())
    assert loss.item() == pytest.approx((0.75 - 1 / math.sqrt(2)) / 2, rel=1e-7)


def test_cosine_loss_gradient_hand_computed():
    u, v, scores = hand_example()
    u.requires_grad_(True)
    cosine_similarity_loss(u, v, scores).backward()
    # L = (1/B) sum_i (cos_i - s_i)^2, so dL/du_i = 2 (cos_i - s_i) / B * d cos_i / du_i, with
    # d cos / du = v / (|u||v|) - cos * u / |u|^2.
    # pair 0: |u|=1, |v|=sqrt2, cos=1/sqrt2:
    #   d cos/du = [1, 1]/sqrt2 - (1/sqrt2) [1, 0] = [0, 1/sqrt2]
    #   2 (1/sqrt2 - 0.5) / 2 = 1/sqrt2 - 0.5
    #   dL/du_0 = [0, (1/sqrt2 - 0.5) / sqrt2] = [0, 0.5 - 1/(2 sqrt2)] ~ [0, 0.146447]
    # pair 1: cos = s = 1, so dL/du_1 = [0, 0]
    expected = torch.tensor([[0.0, 0.5 - 1 / (2 * math.sqrt(2))], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(u.grad, expected, rtol=1e-12, atol=1e-12)
    assert expected[0, 1].item() == pytest.approx(0.146447, abs=1e-6)


def test_cosine_loss_gradient_matches_analytic_formula_on_random_input():
    u, v, scores = random_batch(batch=5, dim=3, seed=5)
    u.requires_grad_(True)
    cosine_similarity_loss(u, v, scores).backward()
    with torch.no_grad():
        nu = u.norm(dim=-1, keepdim=True)  # (B, 1)
        nv = v.norm(dim=-1, keepdim=True)  # (B, 1)
        cos = (u * v).sum(dim=-1, keepdim=True) / (nu * nv)  # (B, 1)
        dcos_du = v / (nu * nv) - cos * u / nu**2  # (B, D)
        expected = 2 * (cos - scores[:, None]) / len(scores) * dcos_du
    torch.testing.assert_close(u.grad, expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# cosent_loss
# ---------------------------------------------------------------------------------------------------------


def test_cosent_loss_hand_computed_value():
    u, v, scores = hand_example()
    # cos = [1/sqrt2, 1], scores = [0.5, 1.0]; the only ordered pair is (i=1, j=0) since s_1 > s_0:
    # loss = log(1 + exp(20 * (cos_0 - cos_1))) = log(1 + exp(20 (1/sqrt2 - 1))) = log(1 + exp(-5.85786))
    #      ~ log(1 + 0.0028582) ~ 0.0028541
    expected = math.log1p(math.exp(20 * (1 / math.sqrt(2) - 1)))
    assert cosent_loss(u, v, scores).item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.0028541, abs=1e-6)
    # with the order reversed the same pair costs log(1 + exp(+5.85786)) ~ 5.86071
    reversed_expected = math.log1p(math.exp(20 * (1 - 1 / math.sqrt(2))))
    assert cosent_loss(u, v, scores.flip(0)).item() == pytest.approx(reversed_expected, rel=1e-12)


@pytest.mark.parametrize(
    "scores",
    [
        None,  # random, no ties
        [0.2, 0.8, 0.8, 0.5, 0.2, 0.9],  # ties
        [3, 1, 4, 1, 5, 9],  # ints on any scale, one tie
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # one above the rest
    ],
    ids=["random", "ties", "int-scores", "mostly-tied"],
)
@pytest.mark.parametrize("scale", [20.0, 1.0, 0.05])
def test_cosent_loss_matches_brute_force_double_loop(scores, scale):
    u, v, random_scores = random_batch(batch=6, dim=4, seed=6)
    scores = random_scores if scores is None else torch.tensor(scores)
    expected = brute_force_cosent_loss(u, v, scores, scale=scale)
    assert cosent_loss(u, v, scores, scale=scale).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_cosent_tied_pairs_contribute_nothing():
    u, v, _ = random_batch(batch=4, dim=3, seed=7)
    # pairs 1 and 2 tied: the loss must equal the loss without any (1, 2) / (2, 1) term at all
    scores = torch.tensor([0.1, 0.5, 0.5, 0.9], dtype=torch.float64)
    cos = [python_cos(a, b) for a, b in zip(u.tolist(), v.tolist(), strict=True)]
    strict_pairs = [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2)]  # every (i, j) with s_i > s_j, written out
    expected = math.log(1 + sum(math.exp(20 * (cos[j] - cos[i])) for i, j in strict_pairs))
    assert cosent_loss(u, v, scores).item() == pytest.approx(expected, rel=1e-12)
    # two pairs with tied scores: nothing is ordered, whatever the cosines
    assert cosent_loss(u[:2], v[:2], torch.tensor([0.3, 0.3])).item() == 0.0


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_cosent_all_equal_scores_is_zero_with_zero_finite_gradient(batch):
    u, v, _ = random_batch(batch=batch, dim=3, seed=8)
    u.requires_grad_(True)
    v.requires_grad_(True)
    loss = cosent_loss(u, v, torch.full((batch,), 0.7, dtype=torch.float64))
    assert loss.item() == 0.0  # log(1 + empty sum) = log(1) = 0
    loss.backward()
    for grad in (u.grad, v.grad):
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=0)


@pytest.mark.parametrize(
    "transform",
    [
        lambda s: 5 * s,
        lambda s: 100 * s - 3,
        lambda s: torch.exp(4 * s),
        lambda s: s**3,
        lambda s: torch.argsort(torch.argsort(s)).to(s.dtype),  # ranks
    ],
    ids=["scale", "affine", "exp", "cube", "ranks"],
)
def test_cosent_depends_only_on_score_order_but_cosine_loss_does_not(transform):
    u, v, scores = random_batch(batch=6, dim=4, seed=9)
    scores = scores * 2 - 1  # in [-1, 1], so the cube keeps the order but changes signs' spacing
    new_scores = transform(scores)
    assert torch.equal(torch.argsort(new_scores), torch.argsort(scores))  # strictly increasing: same order
    torch.testing.assert_close(cosent_loss(u, v, new_scores), cosent_loss(u, v, scores), rtol=1e-12, atol=0)
    assert cosine_similarity_loss(u, v, new_scores).item() != pytest.approx(
        cosine_similarity_loss(u, v, scores).item(), rel=1e-3
    )


def test_cosent_large_scale_is_finite_and_matches_the_stable_formula():
    # scale * cos differences of ~ 2 * 1000 overflow exp in any dtype; the logsumexp form must not.
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)  # cos = [-1, 1]
    scores = torch.tensor([1.0, 0.0], dtype=torch.float64)  # wrong order: pair 0 should have the higher cos
    # loss = log(1 + exp(1000 * (1 - (-1)))) = log(1 + exp(2000)) ~ 2000
    loss = cosent_loss(u, v, scores, scale=1000.0)
    assert loss.item() == pytest.approx(2000.0, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# both losses: gradcheck and the u == v case
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_fn", LOSSES, ids=["cosine", "cosent"])
def test_gradcheck_float64(loss_fn):
    u, v, scores = random_batch(batch=5, dim=3, seed=10)
    u.requires_grad_(True)
    v.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, scores), (u, v), eps=1e-6, atol=1e-6)


def test_gradcheck_cosent_small_scale_float64():
    u, v, scores = random_batch(batch=5, dim=3, seed=11)
    u.requires_grad_(True)
    v.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: cosent_loss(a, b, scores, scale=1.0), (u, v), atol=1e-7)


@pytest.mark.parametrize("loss_fn", LOSSES, ids=["cosine", "cosent"])
@pytest.mark.parametrize("same_tensor", [True, False], ids=["same-tensor", "equal-copy"])
def test_finite_gradients_when_u_equals_v(loss_fn, same_tensor):
    generator = torch.Generator().manual_seed(12)
    u = torch.randn(4, 3, generator=generator, requires_grad=True)
    v = u if same_tensor else u.detach().clone().requires_grad_(True)
    scores = torch.tensor([0.1, 0.4, 0.4, 0.9])
    loss = loss_fn(u, v, scores)
    # every cos is 1
    if loss_fn is cosine_similarity_loss:
        # mean((1 - s)^2) = (0.81 + 0.36 + 0.36 + 0.01) / 4 = 0.385
        assert loss.item() == pytest.approx(0.385, abs=1e-6)
    else:
        # every cos difference is 0; ordered pairs (i, j) with s_i > s_j: 0.4 > 0.1 (x2), 0.9 > all three
        # -> 5 terms of exp(0) = 1, loss = log(1 + 5) = log 6
        assert loss.item() == pytest.approx(math.log(6), abs=1e-6)
    loss.backward()
    grads = [u.grad] if same_tensor else [u.grad, v.grad]
    for grad in grads:
        assert grad is not None
        assert torch.isfinite(grad).all()
    # At u == v the cosine is at its maximum, so d cos / du = 0: the gradients are zero, not just finite
    # (up to float32 rounding, which cosent multiplies by its scale of 20: hence atol 1e-5).
    for grad in grads:
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-5)
