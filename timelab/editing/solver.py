r"""The closed-form ridge solver at the heart of TIME.

For a projection ``W`` (``out x d``), keys ``c_i`` (rows of ``C``, ``n x d``) and targets ``v_i`` (rows of
``V``, ``n x out``), TIME solves

    min_W'  sum_i ||W' c_i - v_i||^2 + lambda ||W' - W||_F^2 + s sum_j ||W' p_j - W p_j||^2

(the last term, with preservation keys ``p_j``, is the Unified Concept Editing generalisation). Setting
the gradient to zero gives the normal equations

    W' A = lambda W + V^T C + s W P^T P,      A = lambda I + C^T C + s P^T P,

whose unique solution, written as a correction of ``W``, is

    W' = W + (V - C W^T)^T  C A^{-1}.

``M = C A^{-1}`` (``n x d``) depends on the keys only, so one factorisation serves every matrix of an
edit. With the stacked keys ``K = [C; sqrt(s) P]`` (``N x d``), ``A = lambda I + K^T K`` and the
push-through identity ``K A^{-1} = (lambda I_N + K K^T)^{-1} K`` let us factor whichever of the
``d x d`` or ``N x N`` systems is smaller. ``A`` is symmetric positive definite for ``lambda > 0`` but
badly conditioned (many near-identical padding keys), so it is Cholesky-factored in float64 (on the
CPU when the keys' device has no float64, as Apple's MPS); the per-matrix products run in float32 (or
the weight's own precision if wider) and the result is cast back.

TIME's targets are the weights applied to other states, ``v_i = W c*_i``: then ``R = (C* - C) W^T``
(:func:`solve_for_states`), and keys whose state does not move (a prefix that source and destination
share: the text encoder is causal) have zero residual rows, so they are dropped before the products.
"""

from __future__ import annotations

import math
from typing import Sequence, overload

import torch
from torch import Tensor

PAPER_LAMBDA = 0.1  # the TIME paper's ridge strength: every default lambda in timelab is this one

FACTOR_DTYPE = torch.float64
# Device types whose kernels have no float64: the factorisation runs on the CPU for them.
NO_FLOAT64_DEVICES = frozenset({"mps"})


def _check_finite(name: str, tensor: Tensor) -> None:
    # min and max propagate NaN and infinity: one cheap reduction instead of a full boolean mask
    if tensor.numel() and not torch.isfinite(torch.stack(torch.aminmax(tensor))).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the model weights and prompts")


def check_positive(name: str, value: float, why: str) -> float:
    """``value`` as a float if it lies in ``(0, inf)``, else a ValueError naming it, the range and ``why``.

    The one check for the solver's weights (``lamb``, ``preserve_weight``/``preserve_scale``): NaN and
    infinity are refused like zero, since an infinite weight solves to "change nothing" without a word.
    """
    if not (value > 0 and math.isfinite(value)):  # NaN fails the first test, +-inf the second
        raise ValueError(f"{name} must be > 0 and finite, in (0, inf) ({why}), got {value}")
    return float(value)


def check_lambda(lamb: float) -> float:
    """``lamb`` as a float, or a ValueError saying why it must be positive and finite."""
    return check_positive("lamb", lamb, f"the ridge term makes the system solvable; {PAPER_LAMBDA} is the default")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Products run in float32 at least: fp16/bf16 weights are upcast, float64 stays float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def supports_float64(device: torch.device) -> bool:
    """Whether tensors on ``device`` can be float64 (not on Apple's MPS)."""
    return torch.device(device).type not in NO_FLOAT64_DEVICES


def _in_float64(tensor: Tensor) -> Tensor:
    """``tensor`` in float64: on its own device, or first moved to the CPU if that device has no float64."""
    return (tensor if supports_float64(tensor.device) else tensor.cpu()).to(FACTOR_DTYPE)


def ridge_factor(
    keys: Tensor,
    lamb: float = PAPER_LAMBDA,
    preserve_keys: Tensor | None = None,
    preserve_scale: float = 1.0,
) -> Tensor:
    r"""``M = C A^{-1}`` with ``A = lambda I + C^T C + s P^T P``, in float64 (``n x d``).

    Factors the smaller of the ``d x d`` and ``(n + m) x (n + m)`` systems with Cholesky; never inverts.
    The factor lives on the keys' device, or on the CPU if that device has no float64.
    """
    lamb = check_lambda(lamb)
    if keys.ndim != 2 or keys.shape[0] == 0:
        raise ValueError(f"keys must be a non-empty (n, d) matrix, got shape {tuple(keys.shape)}")
    _check_finite("keys", keys)
    n, d = keys.shape
    stacked = _in_float64(keys)
    if preserve_keys is not None:
        if preserve_keys.ndim != 2 or preserve_keys.shape[1] != d:
            raise ValueError(
                f"preserve_keys must be (m, {d}) like the keys, got shape {tuple(preserve_keys.shape)}"
            )
        preserve_scale = check_positive("preserve_scale", preserve_scale, "it weighs the preserved keys")
        _check_finite("preserve_keys", preserve_keys)
        scaled = _in_float64(preserve_keys).to(stacked.device) * preserve_scale**0.5
        stacked = torch.cat([stacked, scaled])
    big_n = stacked.shape[0]
    if big_n < d:  # (lambda I_N + K K^T)^{-1} K
        gram = stacked @ stacked.T
        gram.diagonal().add_(lamb)
        factor = torch.linalg.cholesky(gram)
        solved = torch.cholesky_solve(stacked, factor)
    else:  # (A^{-1} K^T)^T, A symmetric
        system = stacked.T @ stacked
        system.diagonal().add_(lamb)
        factor = torch.linalg.cholesky(system)
        solved = torch.cholesky_solve(stacked.T, factor).T
    return solved[:n]


def apply_update(weight: Tensor, residuals: Tensor, factor: Tensor) -> Tensor:
    r"""``W + R^T M`` for residuals ``R = V - C W^T`` (``n x out``) and ``M = ridge_factor(C)``.

    Computed in float32 (float64 for float64 weights) on the weight's device and returned in the
    weight's dtype. ``factor`` may sit on another device in float64: it is cast before it is moved.
    """
    work = compute_dtype(weight.dtype)
    factor = factor.to(work).to(weight.device)
    updated = torch.addmm(weight.to(work), residuals.to(device=weight.device, dtype=work).T, factor)
    updated = updated.to(weight.dtype)
    _check_finite("the solved weights", updated)
    return updated


def _update_all(weights: Sequence[Tensor], residuals_of, factor: Tensor) -> list[Tensor]:
    """``W + R^T M`` for every weight, ``residuals_of(index, weight, work_dtype)`` giving its ``R``.

    The shared factor is cast and moved once per working dtype and device (not once per matrix).
    """
    cast: dict[tuple[torch.dtype, torch.device], Tensor] = {}
    solved = []
    for index, weight in enumerate(weights):
        work = compute_dtype(weight.dtype)
        place = (work, weight.device)
        if place not in cast:
            cast[place] = factor.to(work).to(weight.device)
        shared = cast[place]
        solved.append(apply_update(weight, residuals_of(index, weight, work), shared))
    return solved


def solve_for_states(weights: Sequence[Tensor], keys: Tensor, target_states: Tensor, lamb: float = PAPER_LAMBDA,
                     preserve_keys: Tensor | None = None, preserve_scale: float = 1.0) -> list[Tensor]:
    r"""TIME's closed form for targets ``v_i = W c*_i``: ``W' = W + ((C* - C) W^T)^T M``, one ``M`` for all.

    ``keys`` ``C`` and ``target_states`` ``C*`` are both ``(n, d)``; rows where ``c*_i = c_i`` add nothing
    and are dropped before the products. Preserved keys ``P`` (targets ``W p_j``, their current outputs)
    have zero residual: they enter only through ``M = C (lambda I + C^T C + s P^T P)^{-1}``.

    Because every target is ``W`` applied to a state, ``R^T M = W (C* - C)^T M = W Q`` with the ``d x d``
    matrix ``Q = (C* - C)^T M``. Each matrix then costs ``2 n d out`` multiply-adds through ``R`` and
    ``M``, or ``d^2 out`` through ``Q``: with more than ``d / 2`` moving keys (many edits at once) ``Q`` is
    formed once and every matrix is updated as ``W + W Q``, whatever the number of keys.
    """
    if keys.shape != target_states.shape:
        raise ValueError(f"keys {tuple(keys.shape)} and target states {tuple(target_states.shape)} must match")
    work = compute_dtype(keys.dtype)
    shift = target_states.to(work) - keys.to(work)  # C* - C
    moving = shift.abs().amax(dim=1) > 0
    factor = ridge_factor(keys, lamb, preserve_keys, preserve_scale)
    factor = factor[moving.to(factor.device)]
    shift = shift[moving]
    if shift.shape[0] > keys.shape[1] // 2:  # W + W Q: "residuals" W^T (d x out) against the factor Q
        q = _in_float64(shift).to(factor.device).T @ factor
        return _update_all(weights, lambda _, w, dtype: w.to(dtype).T, q)
    return _update_all(weights, lambda _, w, dtype: shift.to(device=w.device, dtype=dtype) @ w.to(dtype).T, factor)


@overload
def closed_form(weights: Tensor, keys: Tensor, targets: Tensor, lamb: float = ...,
                preserve_keys: Tensor | None = ..., preserve_scale: float = ...) -> Tensor: ...
@overload
def closed_form(weights: Sequence[Tensor], keys: Tensor, targets: Sequence[Tensor], lamb: float = ...,
                preserve_keys: Tensor | None = ..., preserve_scale: float = ...) -> list[Tensor]: ...


def closed_form(weights, keys, targets, lamb=PAPER_LAMBDA, preserve_keys=None, preserve_scale=1.0):
    r"""Ridge minimiser ``W' = (lambda W + V^T C + s W P^T P)(lambda I + C^T C + s P^T P)^{-1}``.

    Args:
        weights: one ``(out, d)`` matrix or a sequence of them sharing the same keys.
        keys: ``(n, d)``, one key ``c_i`` per row.
        targets: ``(n, out)`` per weight (same structure as ``weights``): the wanted ``W' c_i``.
        lamb: ridge strength ``lambda > 0``, pulling ``W'`` towards ``W``.
        preserve_keys: optional ``(m, d)`` keys whose outputs ``W p_j`` should stay put.
        preserve_scale: weight ``s`` of the preservation term.

    Returns the solved matrices in the structure and dtype of ``weights``.
    """
    single = isinstance(weights, Tensor)
    weight_list = [weights] if single else list(weights)
    target_list = [targets] if single else list(targets)
    if not weight_list:
        raise ValueError("closed_form needs at least one weight matrix")
    if len(weight_list) != len(target_list):
        raise ValueError(f"got {len(weight_list)} weights but {len(target_list)} target matrices")
    n, d = keys.shape if keys.ndim == 2 else (None, None)
    for index, (weight, target) in enumerate(zip(weight_list, target_list)):
        if weight.ndim != 2 or weight.shape[1] != d:
            raise ValueError(
                f"weight {index} has shape {tuple(weight.shape)}; expected (out, {d}) to match keys "
                f"of shape {tuple(keys.shape)}"
            )
        if target.shape != (n, weight.shape[0]):
            raise ValueError(
                f"targets {index} have shape {tuple(target.shape)}; expected ({n}, {weight.shape[0]}): "
                "one target row per key, as wide as the weight's output"
            )
        _check_finite(f"weight {index}", weight)
        _check_finite(f"targets {index}", target)
    factor = ridge_factor(keys, lamb, preserve_keys, preserve_scale)

    def residuals(index: int, weight: Tensor, work: torch.dtype) -> Tensor:  # R = V - C W^T
        target = target_list[index].to(device=weight.device, dtype=work)
        return target - keys.to(device=weight.device, dtype=work) @ weight.to(work).T

    solved = _update_all(weight_list, residuals, factor)
    return solved[0] if single else solved
