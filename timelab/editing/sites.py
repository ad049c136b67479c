r"""Edit sites: which linear maps TIME edits in each diffusers text-to-image architecture, and what they read.

TIME's closed form needs a linear map ``W`` whose every input ``c_i`` is a state of the prompt that
stays fixed while the image is drawn: then ``W' = argmin sum_i ||W' c_i - W c*_pi(i)||^2 + lambda
||W' - W||^2`` is exactly what the model will read. Where that holds, by architecture:

    unet     Stable Diffusion 1.x / 2.x / XL: ``to_k``/``to_v`` of every cross-attention layer of the UNet,
             reading the text encoder's states (all 77 positions, padding included: no mask).
    pixart   PixArt-alpha/Sigma: ``to_k``/``to_v`` of every block's ``attn2``, reading the T5 states after
             the transformer's own ``caption_projection`` (run once, before the blocks); padding is
             masked out of the attention, so only the prompt's tokens (and ``</s>``) are keys.
    sana     Sana: as PixArt, on Gemma-2 states after ``caption_projection`` and ``caption_norm``; the
             pipeline prepends an instruction and keeps ``<bos>`` and the last ``max_sequence_length - 1``
             positions, which start at the prompt's first token: the keys are ``<bos>`` and the prompt's.
    sd3      Stable Diffusion 3 (MMDiT, joint attention): the text tokens are updated by every block, so
             no attention projection reads fixed states. The one linear map that does is
             ``context_embedder``, where the text (CLIP-L + CLIP-G, zero-padded, then T5; no mask) enters
             the transformer: TIME is exact there, and what the blocks then make of the edited tokens is
             not controlled by the objective.
    flux     FLUX.1 (double- then single-stream blocks, joint attention): as SD3, ``context_embedder``,
             which reads the T5 states only (every position, no mask); CLIP gives only the pooled vector
             that modulates the blocks, which no edit site reads.
    kandinsky3  Kandinsky 3 (Kandinsky3UNet): ``to_k``/``to_v`` of every attention block given the text
             and of the attention pooling that adds the text to the time embedding, all reading the T5
             states after the UNet's own ``encoder_hid_proj`` (linear + LayerNorm, run once); padding is
             masked, so only the prompt's tokens and ``</s>`` are keys.
    hunyuan  HunyuanDiT: ``to_k``/``to_v`` of every block's ``attn2``, reading the CLIP-like BERT's 77
             states followed by mT5's 256 after the transformer's own ``text_embedder`` (run once); padding
             is not masked but replaced by learned per-position embeddings, so every position is a key.

:func:`architecture` tells them apart; :func:`select_sites`, :func:`site_projections`,
:func:`site_alignments` and :func:`site_inputs` are what ``time_edit``, ``leakage``, ``preserve=``,
undo, save/load and ``AttentionRecorder`` use; :func:`edit_sites` reports it all as a table.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from .alignment import align_ids, align_tokens
from .layers import cross_attention_layers, filter_layers, projections
from .prompts import encode_prompts, tokenizers


@dataclass(frozen=True)
class Architecture:
    """One kind of model timelab can edit: where its edit sites are and what they read."""

    name: str  # "unet", "pixart", "sana", "sd3", "flux", "kandinsky3", "hunyuan": written into edit files
    models: str  # the models of this kind
    denoiser: str  # the pipeline's attribute holding the network with the edit sites
    reads: str  # what the edit sites read
    why: str  # why these sites
    masked: bool = False  # padding positions are masked out of the attention (and out of the key system)
    joint: bool = False  # text tokens change from block to block: TIME is exact only at the entry projection
    clip: tuple[str, ...] = ()  # concatenated text: the CLIP(-like) tokenizers whose states lead the sequence
    t5: str = ""  # concatenated text: the tokenizer of the T5 states that follow them
    projection: tuple[str, ...] = ()  # masked models: the denoiser's modules the text passes once, before the sites
    length: int = 0  # T5/Gemma positions where the pipeline fixes them (0: its max_sequence_length argument)
    clip_length: int = 0  # CLIP(-like) positions where the pipeline fixes them (0: its tokenizer_max_length)


ARCHITECTURES = {
    "unet": Architecture(
        "unet", "Stable Diffusion 1.x/2.x/XL (UNet2DConditionModel)", "unet",
        "the text encoder's states, every position (start, words, end, padding)",
        "every cross-attention layer reads the same text states, fixed for the whole sampling run, "
        "through to_k and to_v: the paper's setting"),
    "pixart": Architecture(
        "pixart", "PixArt-alpha/Sigma (PixArtTransformer2DModel)", "transformer",
        "caption_projection(T5 states); padding masked",
        "caption_projection runs once before the blocks, so every attn2 reads the same fixed states; "
        "padded positions get no attention (mask), so they stay out of the key system", masked=True,
        projection=("caption_projection",)),
    "sana": Architecture(
        "sana", "Sana (SanaTransformer2DModel)", "transformer",
        "caption_norm(caption_projection(Gemma-2 states)); padding masked",
        "caption_projection and caption_norm run once before the blocks, so every attn2 reads the same "
        "fixed states; padded positions get no attention (mask), so they stay out of the key system",
        masked=True, projection=("caption_projection", "caption_norm")),
    "sd3": Architecture(
        "sd3", "Stable Diffusion 3 (SD3Transformer2DModel, MMDiT)", "transformer",
        "[CLIP-L, CLIP-G zero-padded; T5] states, every position (no mask)",
        "joint attention updates the text tokens in every block, so no to_k/to_v reads fixed states; "
        "context_embedder is the one linear map that does (where text enters): TIME is exact there, "
        "what the blocks make of the edited tokens is not part of the objective", joint=True,
        clip=("tokenizer", "tokenizer_2"), t5="tokenizer_3"),
    "flux": Architecture(
        "flux", "FLUX.1 (FluxTransformer2DModel)", "transformer",
        "T5 states, every position (no mask)",
        "double- and single-stream blocks update the text tokens with joint attention, so no to_k/to_v reads "
        "fixed states; context_embedder is the one linear map that does (where the T5 states enter): TIME is "
        "exact there, what the blocks make of the edited tokens is not part of the objective, and CLIP's "
        "pooled vector (which modulates every block) is not edited", joint=True, t5="tokenizer_2"),
    "kandinsky3": Architecture(
        "kandinsky3", "Kandinsky 3 (Kandinsky3UNet)", "unet",
        "encoder_hid_proj(T5 states); padding masked",
        "encoder_hid_proj runs once before the UNet's blocks, so every attention block given the text, and the "
        "attention pooling that adds it to the time embedding, read the same fixed states through to_k and "
        "to_v; padded positions get no attention (mask), so they stay out of the key system", masked=True,
        projection=("encoder_hid_proj",), length=128),
    "hunyuan": Architecture(
        "hunyuan", "HunyuanDiT (HunyuanDiT2DModel)", "transformer",
        "[BERT states; text_embedder(mT5 states)], padding replaced by learned embeddings, every position (no mask)",
        "text_embedder runs once before the blocks and padding is swapped for fixed learned embeddings, so every "
        "attn2 reads the same fixed states; nothing is masked, so every position is a key", projection=("text_embedder",),
        clip=("tokenizer",), t5="tokenizer_2", length=256, clip_length=77),
}
# The denoiser classes each architecture is; any other UNet is "unet".
UNET_CLASSES = {"Kandinsky3UNet": "kandinsky3"}
TRANSFORMER_CLASSES = {
    "PixArtTransformer2DModel": "pixart", "SanaTransformer2DModel": "sana", "SD3Transformer2DModel": "sd3",
    "FluxTransformer2DModel": "flux",
    "HunyuanDiT2DModel": "hunyuan",
}
# Denoisers timelab recognises but does not edit, and why (named in the error).
UNSUPPORTED = {
    "LuminaNextDiT2DModel": (
        "Lumina-Next's text states are fixed, but every block's attn2 reads them through that block's own "
        "RMSNorm (norm1_context, with a learned per-block scale), so its sites read different states; timelab "
        "solves one key system per edit for sites that read the same states, and Lumina-Next would need one "
        "per block"),
}
JOINT_SITE = "context_embedder"


def _supported() -> str:
    return "; ".join(a.models for a in ARCHITECTURES.values())


def architecture(pipe) -> Architecture:
    """The :class:`Architecture` of ``pipe``; a clear error for a model timelab cannot edit."""
    unet, transformer = getattr(pipe, "unet", None), getattr(pipe, "transformer", None)
    if unet is not None and transformer is not None:
        raise ValueError(f"{type(pipe).__name__} has both a UNet and a transformer, so its edit sites are "
                         "ambiguous; timelab edits pipelines with one of them")
    if unet is not None:
        return ARCHITECTURES[UNET_CLASSES.get(type(unet).__name__, "unet")]
    name = TRANSFORMER_CLASSES.get(type(transformer).__name__) if transformer is not None else None
    if name is None:
        what = type(transformer).__name__ if transformer is not None else "no UNet or transformer"
        reason = f": {UNSUPPORTED[what]}" if what in UNSUPPORTED else ""
        raise NotImplementedError(f"timelab does not know where to edit {type(pipe).__name__} ({what}){reason}; "
                                  f"it supports: {_supported()}")
    return ARCHITECTURES[name]


def denoiser(pipe) -> nn.Module:
    """The network holding the edit sites (``pipe.unet`` or ``pipe.transformer``)."""
    return getattr(pipe, architecture(pipe).denoiser)


def _caption_width(model: nn.Module, arch: Architecture) -> int:
    """Width of the projected text states: the last linear map of the model's text projection."""
    linears = [m for m in getattr(model, arch.projection[0]).modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features)


def _kandinsky3_layers(unet: nn.Module) -> dict[str, nn.Module]:
    """Kandinsky 3's attention modules given the text: the pooling into the time embedding, and in every
    block with a text width the attention blocks after the first (the first is self-attention or none)."""
    found = {"add_time_condition.attention": unet.add_time_condition.attention}
    for kind in ("down_blocks", "up_blocks"):
        for i, block in enumerate(getattr(unet, kind)):
            if block.context_dim is not None:
                found.update({f"{kind}.{i}.attentions.{j}.attention": a.attention
                              for j, a in enumerate(block.attentions) if j > 0})
    return found


def edit_layers(pipe) -> dict[str, nn.Module]:
    """Name (in the denoiser) -> module of every edit site: cross-attention layers, or SD3's context_embedder.

    Raises when the sites are ambiguous: a cross-attention layer that reads something other than the
    caption projection's output, or a context_embedder that is not one linear map of the text width.
    """
    arch, model = architecture(pipe), denoiser(pipe)
    if arch.name == "unet":
        return cross_attention_layers(model)
    if arch.joint:
        site = getattr(model, JOINT_SITE, None)
        width = model.config.joint_attention_dim
        if not isinstance(site, nn.Linear) or site.in_features != width:
            raise ValueError(f"the edit site of {arch.models} is ambiguous: {JOINT_SITE} should be one linear "
                             f"map reading the {width}-d text states, found {site!r}")
        return {JOINT_SITE: site}
    kandinsky = arch.name == "kandinsky3"
    layers = _kandinsky3_layers(model) if kandinsky else cross_attention_layers(model)
    width = _caption_width(model, arch)
    odd = [n for n, m in layers.items() if m.to_k.in_features != width or not (kandinsky or n.endswith("attn2"))]
    if odd:
        raise ValueError(f"the edit sites of {arch.models} are ambiguous: {', '.join(odd)} do not read the "
                         f"{width}-d output of {arch.projection[0]} as every text attention should")
    return layers


def select_sites(pipe, layers: Iterable[str] | None = None) -> dict[str, nn.Module]:
    """Every edit site, or those named (a name may be a prefix such as ``"transformer_blocks.0"``)."""
    what = "edit site" if architecture(pipe).joint else "cross-attention layer"
    return filter_layers(edit_layers(pipe), layers, what)


def site_projections(pipe, layers: Iterable[str] | None = None, edit_keys: bool = True,
                     edit_values: bool = True) -> dict[str, nn.Linear]:
    """Name -> linear map that an edit changes: ``"<layer>.to_k"``/``"<layer>.to_v"``, or ``"context_embedder"``."""
    chosen = select_sites(pipe, layers)
    if not architecture(pipe).joint:
        return projections(chosen, edit_keys, edit_values)
    if not (edit_keys and edit_values):
        raise ValueError(f"{JOINT_SITE} feeds both keys and values of every block, so edit_keys and "
                         "edit_values cannot be chosen apart on this model: leave both True")
    return dict(chosen)


def _call_default(pipe, name: str):
    return inspect.signature(type(pipe).__call__).parameters[name].default


def text_length(pipe) -> int:
    """How many text positions the edit sites read for one prompt."""
    arch = architecture(pipe)
    if arch.name == "unet":
        return int(tokenizers(pipe)[0].model_max_length)
    length = arch.length or int(_call_default(pipe, "max_sequence_length"))
    return _clip_length(pipe) + length


def _clip_length(pipe) -> int:
    """How many CLIP(-like) positions lead the text sequence (0 where there are none, or CLIP gives only a
    pooled vector)."""
    arch = architecture(pipe)
    return (arch.clip_length or int(pipe.tokenizer_max_length)) if arch.clip else 0


def _masked_ids(pipe, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Token ids and attention mask ``(b, L)`` of PixArt/Sana/Kandinsky 3 prompts, made as the pipeline makes them."""
    arch, length = architecture(pipe), text_length(pipe)
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompts must be non-empty text, got {prompt!r}")
    texts = (pipe._text_preprocessing(list(prompts), clean_caption=False) if hasattr(pipe, "_text_preprocessing")
             else list(prompts))  # PixArt and Sana lowercase the prompt; Kandinsky 3 takes it as it is
    total, select = length, None
    if arch.name == "sana":
        instruction = _call_default(pipe, "complex_human_instruction")
        if instruction:
            prefix = "\n".join(instruction)
            texts = [prefix + t for t in texts]
            total = len(pipe.tokenizer.encode(prefix)) + length - 2
        select = [0] + list(range(-length + 1, 0))
    for prompt, text in zip(prompts, texts):
        if len(pipe.tokenizer(text).input_ids) > total:
            raise ValueError(f"the prompt {prompt!r} is longer than the {length} text positions "
                             f"{arch.models} reads (the pipeline would cut it); shorten it")
    encoded = pipe.tokenizer(texts, padding="max_length", max_length=total, truncation=True, return_tensors="pt")
    ids, mask = encoded.input_ids, encoded.attention_mask.bool()
    return (ids, mask) if select is None else (ids[:, select], mask[:, select])


def site_alignments(pipe, pairs: Sequence[tuple[str, str]]) -> list[tuple[Tensor, Tensor]]:
    """For each (source, destination) pair: the source positions that are keys, and their aligned
    destination positions (TIME's rule, :mod:`.alignment`). Raises before anything is encoded.

    UNet: all positions, aligned by every tokenizer (which must agree). PixArt/Sana/Kandinsky 3: the unmasked
    positions only, aligned on the tokens the pipeline makes. SD3: CLIP's 77 positions aligned by its
    tokenizers, then T5's (by its tokenizer; left in place when the pipeline has no T5, whose states are
    then zeros). FLUX: T5's positions only. HunyuanDiT: BERT's 77 positions, then mT5's.
    """
    arch, found = architecture(pipe), []
    if arch.masked:
        ids, mask = _masked_ids(pipe, [s for s, _ in pairs] + [d for _, d in pairs])
        for p, (source, destination) in enumerate(pairs):
            kept, target = mask[p].nonzero()[:, 0], mask[len(pairs) + p].nonzero()[:, 0]
            walk = align_ids(pipe.tokenizer, ids[p, kept].tolist(), ids[len(pairs) + p, target].tolist(),
                             source, destination)
            found.append((kept, target[walk]))
        return found
    if not arch.t5:
        clip, length = tokenizers(pipe), int(tokenizers(pipe)[0].model_max_length)
    else:
        clip, length = [getattr(pipe, name) for name in arch.clip], _clip_length(pipe)
    for source, destination in pairs:
        maps = [align_tokens(tok, source, destination, length) for tok in clip]
        if any(m != maps[0] for m in maps[1:]):
            raise ValueError(f"the pipeline's tokenizers align {source!r} -> {destination!r} differently")
        positions = torch.tensor(maps[0] if maps else [], dtype=torch.long)
        if arch.t5:
            t5_length, t5 = text_length(pipe) - length, getattr(pipe, arch.t5)
            t5 = (torch.arange(t5_length) if t5 is None else
                  torch.tensor(align_tokens(t5, source, destination, t5_length)))
            positions = torch.cat([positions, t5 + length])
        found.append((torch.arange(len(positions)), positions))
    return found


@torch.no_grad()
def site_inputs(pipe, prompts: Sequence[str]) -> tuple[Tensor, Tensor | None]:
    """What the edit sites read for ``prompts``: states ``(b, L, d)`` and the mask ``(b, L)`` of the
    positions the attention uses (None: all of them), computed as the model computes them."""
    arch = architecture(pipe)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if arch.name == "unet":
        return encode_prompts(pipe, prompts), None
    device = getattr(pipe, "_execution_device", None) or pipe.device
    length = text_length(pipe) - _clip_length(pipe)  # the T5 (or Gemma) positions
    if arch.joint:
        extra = {"prompt_2": None, "prompt_3": None, "do_classifier_free_guidance": False} if arch.clip else {}
        states = pipe.encode_prompt(prompt=prompts, device=device, max_sequence_length=length, **extra)[0]
        return states, None
    model = denoiser(pipe)
    if arch.name == "hunyuan":  # [BERT; text_embedder(mT5)], learned embeddings where padding was
        site_alignments(pipe, [(p, p) for p in prompts])  # the length check
        (bert, _, bert_mask, _), (t5, _, t5_mask, _) = (
            pipe.encode_prompt(prompts, device=device, dtype=model.dtype, do_classifier_free_guidance=False,
                               text_encoder_index=i) for i in (0, 1))
        states = torch.cat([bert, model.text_embedder(t5.to(model.dtype))], dim=1)
        mask = torch.cat([bert_mask, t5_mask], dim=-1).bool()
        return torch.where(mask[..., None], states, model.text_embedding_padding), None
    _masked_ids(pipe, prompts)  # the length check
    if arch.name == "kandinsky3":  # cut to the batch's longest prompt + 1, as its pipeline does
        states, _, mask, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, device=device,
                                                _cut_context=True)
    else:
        extra = ({"complex_human_instruction": _call_default(pipe, "complex_human_instruction")}
                 if arch.name == "sana" else {})
        states, mask = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, device=device,
                                          max_sequence_length=length, **extra)[:2]
    states = states.to(model.dtype)
    for name in arch.projection:
        states = getattr(model, name)(states)
    return states, mask.bool()


@dataclass(frozen=True)
class SiteReport:
    """What :func:`edit_sites` found: the architecture, one row per edited matrix, and why."""

    architecture: Architecture
    rows: tuple[tuple[str, str, str, float], ...]  # (site, shape, input, share of the denoiser's parameters)
    text_positions: int

    @property
    def share(self) -> float:
        """Share of the denoiser's parameters that an edit of every site changes."""
        return sum(row[3] for row in self.rows)

    def __str__(self) -> str:
        arch = self.architecture
        width = max(len(r[0]) for r in self.rows)
        count = f"{len(self.rows)} matri{'x' if len(self.rows) == 1 else 'ces'}"
        lines = [f"{arch.models}: {count}, {self.share:.2%} of the {arch.denoiser}'s parameters",
                 f"input ({self.text_positions} positions): {arch.reads}", f"why: {arch.why}", "",
                 f"{'site':<{width}}  {'shape':>11}  share"]
        lines += [f"{site:<{width}}  {shape:>11}  {share:.3%}" for site, shape, _, share in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def edit_sites(pipe) -> SiteReport:
    """The edit sites of ``pipe`` as a table (site, shape, input, share of parameters) and why; print it."""
    arch, model = architecture(pipe), denoiser(pipe)
    total = sum(p.numel() for p in model.parameters())
    rows = tuple((name, f"{linear.out_features} x {linear.in_features}", arch.reads, linear.weight.numel() / total)
                 for name, linear in site_projections(pipe).items())
    return SiteReport(arch, rows, text_length(pipe))
