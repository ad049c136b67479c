"""The closed-form solver against independent formulations of the same ridge problem."""

import pytest
import torch

from timelab import closed_form
from timelab.editing import ridge_factor

F64 = torch.float64


def problem(n, d, out, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, d, generator=g, dtype=F64)
    C = torch.randn(n, d, generator=g, dtype=F64)
    V = torch.randn(n, out, generator=g, dtype=F64)
    return W.to(dtype), C.to(dtype), V.to(dtype)


def normal_equation_solution(W, C, V, lamb, P=None, s=1.0):
    """W' solves W' A = lambda W + V^T C + s W P^T P, A = lambda I + C^T C + s P^T P (row form)."""
    d = W.shape[1]
    A = lamb * torch.eye(d, dtype=F64) + C.T @ C
    B = lamb * W + V.T @ C
    if P is not None:
        A = A + s * P.T @ P
        B = B + s * W @ P.T @ P
    return torch.linalg.solve(A.T, B.T).T  # A symmetric: W' = B A^{-1}


def loss(Wp, W, C, V, lamb, P=None, s=1.0):
    value = ((C @ Wp.T - V) ** 2).sum() + lamb * ((Wp - W) ** 2).sum()
    if P is not None:
        value = value + s * ((P @ Wp.T - P @ W.T) ** 2).sum()
    return value


@pytest.mark.parametrize("n,d", [(12, 40), (60, 16)], ids=["fewer-keys-than-dims", "more-keys"])
def test_matches_normal_equations(n, d):
    W, C, V = problem(n, d, out=24)
    expected = normal_equation_solution(W, C, V, 0.1)
    got = closed_form(W, C, V, lamb=0.1)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n,d", [(12, 40), (60, 16)])
def test_gradient_vanishes_at_solution(n, d):
    W, C, V = problem(n, d, out=8, seed=1)
    P = torch.randn(5, d, dtype=F64)
    Wp = closed_form(W, C, V, lamb=0.3, preserve_keys=P, preserve_scale=2.0).clone().requires_grad_(True)
    loss(Wp, W, C, V, 0.3, P, 2.0).backward()
    scale = (C.norm() ** 2 + 1) * Wp.detach().norm()
    assert Wp.grad.norm() < 1e-10 * scale, f"gradient {Wp.grad.norm():.3g} is not ~0"
    # ...and the loss is higher at nearby points (a minimum, not a saddle or maximum)
    with torch.no_grad():
        base = loss(Wp, W, C, V, 0.3, P, 2.0)
        for _ in range(5):
            assert loss(Wp + 1e-3 * torch.randn_like(Wp), W, C, V, 0.3, P, 2.0) > base


def test_preservation_matches_normal_equations():
    W, C, V = problem(10, 30, out=12, seed=2)
    P = torch.randn(25, 30, dtype=F64)
    expected = normal_equation_solution(W, C, V, 0.1, P, 3.0)
    torch.testing.assert_close(closed_form(W, C, V, 0.1, P, 3.0), expected, rtol=1e-9, atol=1e-9)


def test_large_lambda_returns_original_weights():
    W, C, V = problem(10, 20, out=6, seed=3)
    torch.testing.assert_close(closed_form(W, C, V, lamb=1e12), W, rtol=0, atol=1e-9)
    assert not torch.allclose(closed_form(W, C, V, lamb=0.1), W, atol=1e-3)


def test_preserved_outputs_move_less_as_their_scale_grows():
    W, C, V = problem(10, 30, out=12, seed=4)
    P = torch.randn(8, 30, dtype=F64)
    drift = [((closed_form(W, C, V, 0.1, P, s) - W) @ P.T).norm().item() for s in (0.01, 1.0, 100.0, 1e4)]
    assert all(a > b for a, b in zip(drift, drift[1:])), drift
    assert drift[-1] < 1e-2 * drift[0]


def test_many_matrices_share_one_factor_and_match_separate_solves():
    _, C, _ = problem(15, 20, out=1, seed=5)
    weights = [torch.randn(out, 20, dtype=F64) for out in (4, 9, 13)]
    targets = [torch.randn(15, w.shape[0], dtype=F64) for w in weights]
    together = closed_form(weights, C, targets, lamb=0.2)
    for w, v, got in zip(weights, targets, together):
        torch.testing.assert_close(got, normal_equation_solution(w, C, v, 0.2), rtol=1e-10, atol=1e-10)


def padding_like_keys(n_pad=70, d=64, seed=6):
    """Keys like a text encoder's: a few distinct tokens, then many near-identical padding states."""
    g = torch.Generator().manual_seed(seed)
    words = 8 * torch.randn(6, d, generator=g, dtype=F64)
    pad = 8 * torch.randn(1, d, generator=g, dtype=F64) + 1e-3 * torch.randn(n_pad, d, generator=g, dtype=F64)
    return torch.cat([words, pad])


def test_float32_weights_solved_accurately_on_ill_conditioned_keys():
    C = padding_like_keys()
    A = 0.1 * torch.eye(C.shape[1], dtype=F64) + C.T @ C
    assert torch.linalg.cond(A) > 1e5  # the regime the design notes warn about
    W, C = torch.randn(32, C.shape[1], dtype=F64).float(), C.float()
    V = C @ W.T + torch.randn(C.shape[0], 32)
    exact = normal_equation_solution(W.double(), C.double(), V.double(), 0.1)  # same float32 inputs
    got = closed_form(W, C, V, lamb=0.1)
    assert got.dtype == torch.float32
    ours = ((got.double() - exact).norm() / exact.norm()).item()
    # the authors' way: a float32 inverse per matrix
    inverse = torch.linalg.inv(0.1 * torch.eye(C.shape[1]) + C.T @ C)
    theirs = (((0.1 * W + V.T @ C) @ inverse).double() - exact).norm().item() / exact.norm().item()
    assert ours < 1e-5, f"relative error {ours:.2e}"
    assert ours < theirs / 10, f"ours {ours:.2e} vs float32 inverse {theirs:.2e}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_solved_in_float_and_cast_back(dtype):
    W, C, V = problem(10, 32, out=16, seed=7)
    got = closed_form(W.to(dtype), C.to(dtype), V.to(dtype), lamb=0.1)
    assert got.dtype == dtype
    exact = normal_equation_solution(W.to(dtype).double(), C.to(dtype).double(), V.to(dtype).double(), 0.1)
    eps = torch.finfo(dtype).eps
    assert ((got.double() - exact).abs().max() / exact.abs().max()) < 4 * eps


def test_factor_is_the_same_from_either_side():
    C = torch.randn(20, 12, dtype=F64)  # n > d: the d x d system
    wide = torch.randn(8, 12, dtype=F64)  # n < d after transposition trick is exercised elsewhere
    expected = C @ torch.linalg.inv(0.5 * torch.eye(12, dtype=F64) + C.T @ C)
    torch.testing.assert_close(ridge_factor(C, 0.5), expected, rtol=1e-10, atol=1e-12)
    expected_wide = wide @ torch.linalg.inv(0.5 * torch.eye(12, dtype=F64) + wide.T @ wide)
    torch.testing.assert_close(ridge_factor(wide, 0.5), expected_wide, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lamb", [0.0, -1.0, float("nan")])
def test_rejects_non_positive_lambda(lamb):
    W, C, V = problem(5, 8, out=3)
    with pytest.raises(ValueError, match="lamb must be > 0"):
        closed_form(W, C, V, lamb=lamb)


def test_rejects_mismatched_shapes():
    W, C, V = problem(5, 8, out=3)
    with pytest.raises(ValueError, match=r"expected \(out, 8\)"):
        closed_form(W[:, :7], C, V)
    with pytest.raises(ValueError, match=r"expected \(5, 3\)"):
        closed_form(W, C, V[:4])
    with pytest.raises(ValueError, match="2 target"):
        closed_form([W], C, [V, V])
    with pytest.raises(ValueError, match="preserve_keys must be"):
        closed_form(W, C, V, preserve_keys=torch.ones(2, 7, dtype=F64))


def test_rejects_non_finite_input_and_output():
    W, C, V = problem(5, 8, out=3)
    C_bad = C.clone()
    C_bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="keys contains NaN"):
        closed_form(W, C_bad, V)
    V_bad = V.clone()
    V_bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="targets 0 contains NaN"):
        closed_form(W, C, V_bad)
    tiny_keys = torch.full((5, 8), 1e-3, dtype=torch.float16)  # fitting big targets needs a huge W'
    with pytest.raises(ValueError, match="solved weights contains NaN"):
        closed_form(W.half(), tiny_keys, torch.full((5, 3), 6e4, dtype=torch.float16), lamb=1e-8)


@pytest.mark.parametrize("n_moving", [5, 40], ids=["few-keys: through R and M", "many-keys: through Q"])
def test_targets_from_states_match_the_normal_equations_on_both_routes(n_moving):
    """solve_for_states (targets W c*_i) takes the n-route for few moving keys and the d x d route for many."""
    from timelab.editing import solve_for_states

    g = torch.Generator().manual_seed(4)
    n, d, lamb = 60, 16, 0.2
    C = torch.randn(n, d, generator=g, dtype=F64)
    Cstar = C.clone()
    Cstar[:n_moving] += torch.randn(n_moving, d, generator=g, dtype=F64)  # the rest are already met
    P = torch.randn(7, d, generator=g, dtype=F64)
    weights = [torch.randn(out, d, generator=g, dtype=F64) for out in (8, 24)]
    solved = solve_for_states(weights, C, Cstar, lamb, preserve_keys=P, preserve_scale=2.0)
    for W, Wp in zip(weights, solved):
        expected = normal_equation_solution(W, C, Cstar @ W.T, lamb, P, 2.0)
        torch.testing.assert_close(Wp, expected, rtol=1e-10, atol=1e-10)
    f32 = solve_for_states([w.float() for w in weights], C.float(), Cstar.float(), lamb)
    for W, Wp in zip(weights, f32):
        expected = normal_equation_solution(W, C, Cstar @ W.T, lamb)
        assert Wp.dtype == torch.float32
        torch.testing.assert_close(Wp.double(), expected, rtol=1e-4, atol=1e-4)
