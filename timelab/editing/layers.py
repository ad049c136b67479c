"""Finding the cross-attention projections that TIME edits.

A cross-attention module is recognised by what it is, not by its class name (which diffusers has
renamed before): it has ``to_k``/``to_v`` linear projections, diffusers marks it ``is_cross_attention``
(or, for modules without that flag, it is the ``attn2`` of a transformer block), and its keys read the
text width that the UNet is conditioned on.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn


def text_width(unet: nn.Module) -> int:
    """Width of the text states the UNet's cross-attention reads (768 for SD 1.x, 2048 for SDXL)."""
    width = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    if isinstance(width, (list, tuple)):
        width = width[0]
    if width is None:
        raise ValueError("the UNet's config has no cross_attention_dim: is it a text-conditioned UNet?")
    return int(width)


def _is_cross_attention(name: str, module: nn.Module) -> bool:
    if not (isinstance(getattr(module, "to_k", None), nn.Linear)
            and isinstance(getattr(module, "to_v", None), nn.Linear)):
        return False
    flag = getattr(module, "is_cross_attention", None)
    return bool(flag) if flag is not None else name.rsplit(".", 1)[-1] == "attn2"


def cross_attention_layers(unet: nn.Module) -> dict[str, nn.Module]:
    """Name -> module of every cross-attention layer of ``unet`` that reads the text states."""
    width = text_width(unet)
    layers = {}
    for name, module in unet.named_modules():
        if _is_cross_attention(name, module):
            if module.to_k.in_features != width:
                raise ValueError(
                    f"cross-attention layer {name} reads {module.to_k.in_features}-d states but the "
                    f"model's cross_attention_dim is {width}, so its edit sites are ambiguous: this model is "
                    "not one timelab can edit"
                )
            layers[name] = module
    if not layers:
        raise ValueError(
            "found no cross-attention layers in this UNet, so an edit would change nothing; timelab "
            "edits diffusers UNet2DConditionModel-style text-to-image models"
        )
    return layers


def select_layers(unet: nn.Module, layers: Iterable[str] | None = None) -> dict[str, nn.Module]:
    """All cross-attention layers, or those named (a name may be a prefix such as ``"up_blocks"``)."""
    return filter_layers(cross_attention_layers(unet), layers)


def filter_layers(found: dict[str, nn.Module], layers: Iterable[str] | None = None,
                  what: str = "cross-attention layer") -> dict[str, nn.Module]:
    """``found``, or the entries named (a name may be a prefix); a name matching nothing raises."""
    if layers is None:
        return found
    wanted = [layers] if isinstance(layers, str) else list(layers)
    chosen = {}
    for pattern in wanted:
        matches = {n: m for n, m in found.items() if n == pattern or n.startswith(pattern.rstrip(".") + ".")}
        if not matches:
            raise ValueError(
                f"no {what} matches {pattern!r}; available: {', '.join(found)}"
            )
        chosen.update(matches)
    return {n: found[n] for n in found if n in chosen}


def projections(layers: dict[str, nn.Module], edit_keys: bool = True,
                edit_values: bool = True) -> dict[str, nn.Linear]:
    """``"<layer>.to_k"`` / ``"<layer>.to_v"`` -> linear projection, for the parts being edited."""
    if not (edit_keys or edit_values):
        raise ValueError("nothing to edit: set edit_keys and/or edit_values to True")
    parts = (["to_k"] if edit_keys else []) + (["to_v"] if edit_values else [])
    return {f"{name}.{part}": getattr(module, part) for name, module in layers.items() for part in parts}
