"""Distances: hand-computed values, brute-force loops, pairwise == matrix, gradcheck, finite gradients."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_siamese.distances import (
    DISTANCES,
    MATRIX,
    PAIRWISE,
    distance_matrix,
    pairwise_distance,
    similarity,
    weighted_manhattan,
)
from sbert_siamese.errors import ConfigError

ALL = ["cosine", "dot", "euclidean", "squared_euclidean", "manhattan", "rbf"]


def test_registry_lists_every_distance_in_both_forms():
    assert set(DISTANCES) == set(ALL)
    assert set(PAIRWISE) == set(MATRIX) == set(ALL)


# ---------------------------------------------------------------------------------------------------------
# brute force in plain Python (float arithmetic, no torch)
# ---------------------------------------------------------------------------------------------------------


def py_distance(name: str, u: list[float], v: list[float], sigma: float = 1.0) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    sq = sum((x - y) ** 2 for x, y in zip(u, v, strict=True))
    if name == "cosine":
        return 1.0 - dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))
    if name == "dot":
        return -dot
    if name == "euclidean":
        return math.sqrt(sq)
    if name == "squared_euclidean":
        return sq
    if name == "manhattan":
        return sum(abs(x - y) for x, y in zip(u, v, strict=True))
    if name == "rbf":
        return 1.0 - math.exp(-sq / sigma**2)
    raise AssertionError(name)


def rand(*shape: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# hand-computed values
# ---------------------------------------------------------------------------------------------------------

# u = [1, 2], v = [4, -2]:
#   u.v = 4 - 4 = 0            -> cos = 0, cosine distance 1, dot distance -0 = 0
#   u - v = [-3, 4]            -> squared L2 = 9 + 16 = 25, L2 = 5, L1 = 3 + 4 = 7
#   rbf (sigma 1) = 1 - exp(-25)
# u = [1, 0], v = [1, 1]:
#   u.v = 1, |u| = 1, |v| = sqrt2  -> cos = 1/sqrt2, cosine distance 1 - 1/sqrt2 ~ 0.29289; dot distance -1
#   u - v = [0, -1]            -> squared L2 = 1, L2 = 1, L1 = 1, rbf = 1 - exp(-1) ~ 0.63212
# u = [2, 3], v = [2, 3] (identical):
#   cos = 1 -> cosine 0; u.v = 4 + 9 = 13 -> dot -13; all others 0
HAND_U = [[1.0, 2.0], [1.0, 0.0], [2.0, 3.0]]
HAND_V = [[4.0, -2.0], [1.0, 1.0], [2.0, 3.0]]
HAND = {
    "cosine": [1.0, 1.0 - 1.0 / math.sqrt(2.0), 0.0],
    "dot": [0.0, -1.0, -13.0],
    "euclidean": [5.0, 1.0, 0.0],
    "squared_euclidean": [25.0, 1.0, 0.0],
    "manhattan": [7.0, 1.0, 0.0],
    "rbf": [1.0 - math.exp(-25.0), 1.0 - math.exp(-1.0), 0.0],
}


@pytest.mark.parametrize("name", ALL)
def test_pairwise_hand_computed(name):
    u = torch.tensor(HAND_U, dtype=torch.float64)
    v = torch.tensor(HAND_V, dtype=torch.float64)
    got = pairwise_distance(name, u, v)
    # euclidean of identical vectors is sqrt(1e-12) = 1e-6 (safe sqrt), hence atol 1e-6.
    torch.testing.assert_close(got, torch.tensor(HAND[name], dtype=torch.float64), rtol=1e-12, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_matrix_hand_computed(name):
    # Row i of HAND_U against every row of HAND_V: the diagonal is the pairwise hand value above.
    a = torch.tensor(HAND_U, dtype=torch.float64)
    b = torch.tensor(HAND_V, dtype=torch.float64)
    got = distance_matrix(name, a, b)
    torch.testing.assert_close(
        got.diagonal(), torch.tensor(HAND[name], dtype=torch.float64), rtol=0, atol=1e-6
    )


def test_hand_computed_matrix_entries_off_diagonal():
    a = torch.tensor([[1.0, 2.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[4.0, -2.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    # manhattan: [1,2]-[4,-2]=[-3,4] -> 7; [1,2]-[1,1]=[0,1] -> 1; [1,2]-[0,0] -> 3
    #            [1,0]-[4,-2]=[-3,2] -> 5; [1,0]-[1,1]=[0,-1] -> 1; [1,0]-[0,0] -> 1
    expected = torch.tensor([[7.0, 1.0, 3.0], [5.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(distance_matrix("manhattan", a, b), expected, rtol=0, atol=1e-12)
    # dot: -(a.b): [1,2].[4,-2]=0, [1,2].[1,1]=3, 0; [1,0].[4,-2]=4, [1,0].[1,1]=1, 0
    expected = -torch.tensor([[0.0, 3.0, 0.0], [4.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(distance_matrix("dot", a, b), expected, rtol=0, atol=1e-12)
    # squared euclidean: 25, 1, 1+4=5; 9+4=13, 1, 1
    expected = torch.tensor([[25.0, 1.0, 5.0], [13.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(distance_matrix("squared_euclidean", a, b), expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# brute-force loops and pairwise == matrix
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ALL)
def test_pairwise_matches_python_loop(name, seed):
    u, v = rand(7, 5, seed=seed), rand(7, 5, seed=seed + 100)
    expected = torch.tensor(
        [py_distance(name, ui, vi) for ui, vi in zip(u.tolist(), v.tolist(), strict=True)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(pairwise_distance(name, u, v), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ALL)
def test_matrix_matches_python_loop(name, seed):
    a, b = rand(5, 4, seed=seed), rand(3, 4, seed=seed + 100)  # N != M
    expected = torch.tensor(
        [[py_distance(name, ai, bj) for bj in b.tolist()] for ai in a.tolist()], dtype=torch.float64
    )
    torch.testing.assert_close(distance_matrix(name, a, b), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("name", ALL)
def test_matrix_equals_pairwise_on_every_pair(name, dtype, tol):
    a, b = rand(6, 8, seed=3, dtype=dtype), rand(4, 8, seed=4, dtype=dtype)  # N=6 != M=4
    matrix = distance_matrix(name, a, b)
    assert matrix.shape == (6, 4)
    # Every (i, j) as a pairwise call on the expanded rows.
    ii, jj = torch.meshgrid(torch.arange(6), torch.arange(4), indexing="ij")
    pairwise = pairwise_distance(name, a[ii.reshape(-1)], b[jj.reshape(-1)]).reshape(6, 4)
    torch.testing.assert_close(matrix, pairwise, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ALL)
def test_matrix_without_b_is_matrix_of_a_with_itself(name):
    a = rand(5, 3, seed=7)
    torch.testing.assert_close(distance_matrix(name, a), distance_matrix(name, a, a), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["euclidean", "squared_euclidean"])
def test_euclidean_self_matrix_zero_diagonal_and_symmetric(name):
    a = rand(6, 5, seed=11)
    d = distance_matrix(name, a)
    # float64: the expanded form leaves ~1e-15 on the diagonal; safe sqrt turns that into at most 1e-6.
    torch.testing.assert_close(d.diagonal(), torch.zeros(6, dtype=torch.float64), rtol=0, atol=2e-6)
    torch.testing.assert_close(d, d.T, rtol=0, atol=1e-12)
    assert (d >= 0).all()


@pytest.mark.parametrize("name", ["euclidean", "squared_euclidean"])
def test_euclidean_self_matrix_float32_unit_vectors(name):
    # Normalised float32 embeddings (the usual case): rounding in ||a||^2 + ||a||^2 - 2 a.a is ~1e-7,
    # so the euclidean diagonal is at most ~sqrt(1e-6) = 1e-3.
    a = torch.nn.functional.normalize(rand(16, 32, seed=12, dtype=torch.float32), dim=-1)
    d = distance_matrix(name, a)
    torch.testing.assert_close(d.diagonal(), torch.zeros(16), rtol=0, atol=1e-3)
    torch.testing.assert_close(d, d.T, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# weighted manhattan, rbf, similarity
# ---------------------------------------------------------------------------------------------------------


def test_weighted_manhattan_hand_computed():
    # u - v = [-3, 4], |.| = [3, 4]; weights [0.5, 2] -> 1.5 + 8 = 9.5
    u = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[4.0, -2.0]], dtype=torch.float64)
    w = torch.tensor([0.5, 2.0], dtype=torch.float64)
    assert weighted_manhattan(u, v, w).item() == pytest.approx(9.5, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_manhattan_matches_loop(seed):
    u, v, w = rand(6, 5, seed=seed), rand(6, 5, seed=seed + 1), rand(5, seed=seed + 2)
    expected = [
        sum(wj * abs(x - y) for x, y, wj in zip(ui, vi, w.tolist(), strict=True))
        for ui, vi in zip(u.tolist(), v.tolist(), strict=True)
    ]
    torch.testing.assert_close(
        weighted_manhattan(u, v, w), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )


def test_weighted_manhattan_with_unit_weights_is_manhattan():
    u, v = rand(6, 5, seed=3), rand(6, 5, seed=4)
    torch.testing.assert_close(
        weighted_manhattan(u, v, torch.ones(5, dtype=torch.float64)),
        pairwise_distance("manhattan", u, v),
        rtol=0,
        atol=1e-12,
    )


def test_rbf_in_unit_interval():
    a, b = rand(8, 4, seed=5), rand(6, 4, seed=6)
    for d in (distance_matrix("rbf", a, b), pairwise_distance("rbf", a[:6], b)):
        assert (d >= 0).all() and (d < 1).all()
    # identical points: exactly 0; the farther apart, the closer to 1 (monotone in the L2 distance)
    assert pairwise_distance("rbf", a, a).abs().max().item() == 0.0
    sq = distance_matrix("squared_euclidean", a, b).flatten()
    rbf = distance_matrix("rbf", a, b).flatten()
    order = sq.argsort()
    assert (rbf[order].diff() >= 0).all()


def test_similarity_is_cos_dot_or_negated_distance():
    u, v = rand(5, 4, seed=8), rand(5, 4, seed=9)
    cos = torch.nn.functional.cosine_similarity(u, v, dim=-1)
    torch.testing.assert_close(
        similarity("cosine", pairwise_distance("cosine", u, v)), cos, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        similarity("dot", pairwise_distance("dot", u, v)), (u * v).sum(-1), rtol=0, atol=1e-12
    )
    for name in ["euclidean", "squared_euclidean", "manhattan", "rbf"]:
        d = pairwise_distance(name, u, v)
        torch.testing.assert_close(similarity(name, d), -d, rtol=0, atol=0)


def test_similarity_matrix_form_cosine_and_dot():
    a, b = rand(4, 3, seed=10), rand(5, 3, seed=11)
    cos = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T
    torch.testing.assert_close(similarity("cosine", distance_matrix("cosine", a, b)), cos, rtol=0, atol=1e-12)
    torch.testing.assert_close(similarity("dot", distance_matrix("dot", a, b)), a @ b.T, rtol=0, atol=1e-12)


UNKNOWN_CALLS = [
    lambda: pairwise_distance("hamming", torch.zeros(1, 2), torch.zeros(1, 2)),
    lambda: distance_matrix("L2", torch.zeros(1, 2)),
]


@pytest.mark.parametrize("call", UNKNOWN_CALLS)
def test_unknown_distance_is_config_error_listing_valid_names(call):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    for name in ALL:
        assert name in message


# ---------------------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_pairwise(name):
    u = rand(4, 3, seed=20).requires_grad_()
    v = rand(4, 3, seed=21).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: pairwise_distance(name, x, y), (u, v))


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_matrix(name):
    a = rand(4, 3, seed=22).requires_grad_()
    b = rand(3, 3, seed=23).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: distance_matrix(name, x, y), (a, b))


def test_gradcheck_weighted_manhattan():
    u = rand(4, 3, seed=24).requires_grad_()
    v = rand(4, 3, seed=25).requires_grad_()
    w = rand(3, seed=26).requires_grad_()
    assert torch.autograd.gradcheck(weighted_manhattan, (u, v, w))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_finite_gradients_when_u_equals_v(name, dtype):
    base = rand(3, 4, seed=27, dtype=dtype)
    # two leaves with the same values
    u, v = base.clone().requires_grad_(), base.clone().requires_grad_()
    pairwise_distance(name, u, v).sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(v.grad).all()
    # the very same tensor on both sides
    w = base.clone().requires_grad_()
    pairwise_distance(name, w, w).sum().backward()
    assert torch.isfinite(w.grad).all()
    # matrix form: the diagonal of d(a, a) is u == v
    a = base.clone().requires_grad_()
    distance_matrix(name, a).sum().backward()
    assert torch.isfinite(a.grad).all()
    a, b = base.clone().requires_grad_(), base.clone().requires_grad_()
    distance_matrix(name, a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_euclidean_gradient_is_zero_at_u_equals_v():
    # safe sqrt: the (sub)gradient at the kink is 0, not NaN.
    u = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    v = u.detach().clone().requires_grad_()
    pairwise_distance("euclidean", u, v).sum().backward()
    torch.testing.assert_close(u.grad, torch.zeros_like(u), rtol=0, atol=0)
    torch.testing.assert_close(v.grad, torch.zeros_like(v), rtol=0, atol=0)


def test_finite_gradients_weighted_manhattan_when_u_equals_v():
    u = rand(3, 4, seed=28).requires_grad_()
    v = u.detach().clone().requires_grad_()
    w = rand(4, seed=29).requires_grad_()
    weighted_manhattan(u, v, w).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (u, v, w))
