"""The additive caption code that TinyWorld's end and padding text states are trained to carry.

Each attribute value v gets a fixed unit vector e_v (orthonormal, zero-mean, drawn from a seed); a
caption's code is the scaled sum over the attributes it states, rescaled to the norm sqrt(d) that a
LayerNorm output has:

    code(caption) = sqrt(d) * u / |u|,   u = sum_{a stated} s_a e_{value(a)}   (empty caption: e_empty)

with scales s_kind = s_colour = 1 and s_size = s_background = 0.5. Unstated attributes add nothing,
so "a circle", "a photo of a circle" and "a circle on a black background" share most of their code
(cosine 1, 1 and 0.89) while "a square" is orthogonal to "a circle". That is what lets one closed-form
edit of "a circle" reach every phrasing of a circle and leave squares alone.
"""

from __future__ import annotations

import torch

from . import spec
from .captions import stated_attributes

SCALES = {"kind": 1.0, "colour": 1.0, "size": 0.5, "background": 0.5}
EMPTY = "<empty>"


def attribute_basis(width: int, seed: int) -> dict[str, torch.Tensor]:
    """Orthonormal, zero-mean unit vectors, one per attribute value and one for the empty caption."""
    values = list(spec.KINDS) + list(spec.COLOURS) + list(spec.SIZES) + list(spec.BACKGROUNDS) + [EMPTY]
    if len(values) + 1 > width:
        raise ValueError(f"text width {width} is too small for {len(values)} orthogonal attribute codes")
    generator = torch.Generator().manual_seed(seed)
    columns = torch.cat([torch.ones(width, 1), torch.randn(width, len(values), generator=generator)], dim=1)
    q, _ = torch.linalg.qr(columns.double())
    return {v: q[:, i + 1].float() for i, v in enumerate(values)}  # column 0 spans the mean direction


def caption_code(prompt: str, basis: dict[str, torch.Tensor]) -> torch.Tensor:
    """The code vector (norm sqrt(d)) of a caption."""
    stated = stated_attributes(prompt)
    if not stated:
        u = basis[EMPTY]
    else:
        u = sum(SCALES[a] * basis[v] for a, v in stated.items())
    return u * (u.numel() ** 0.5 / u.norm())
