r"""Predicted leakage: how far an edit moves each prompt's keys and values, without drawing an image.

An edit changes each projection ``W`` to ``W' = W + Delta``. For a prompt with text states ``c_1..c_L``
(every position the edit sites read: on Stable Diffusion padding included, on models that mask padding
the unmasked positions only) its leakage is the relative change of the
projected states over all positions and all edited matrices,

    leakage = sqrt( sum_W sum_i ||Delta c_i||^2 / sum_W sum_i ||W c_i||^2 ),

computed through two ``d x d`` Gram matrices summed over the matrices, ``G_Delta = sum_W Delta^T Delta``
and ``G = sum_W W^T W``: ``sum_W ||Delta c||^2 = c^T G_Delta c``. One text encoding per prompt and
two quadratic forms per state: thousands of prompts take seconds.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .edit import Edit
from .sites import site_inputs


def _gram(matrices) -> Tensor:
    return sum(m.double().T @ m.double() for m in matrices)


@torch.no_grad()
def leakage(edit: Edit, prompts: Sequence[str], batch_size: int = 256) -> Tensor:
    """Relative change of ``W c`` over positions and edited matrices, one value per prompt (float64)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise ValueError("leakage needs at least one prompt")
    moved = _gram(edit.edited[n].cpu() - edit.original[n].cpu() for n in edit.edited)
    whole = _gram(edit.original[n].cpu() for n in edit.edited)
    out = []
    for start in range(0, len(prompts), batch_size):
        states, mask = site_inputs(edit.pipe, list(prompts[start:start + batch_size]))
        states = states.double().cpu()
        if mask is not None:  # masked positions are read by no layer: they count as zero states
            states = states * mask.cpu().unsqueeze(-1)
        change = torch.einsum("bld,de,ble->b", states, moved, states)
        size = torch.einsum("bld,de,ble->b", states, whole, states)
        out.append((change / size).sqrt())
    return torch.cat(out)
