"""Per-token cross-attention maps, recorded during generation.

In a cross-attention layer every latent pixel ``j`` (a query ``q_j = W_Q x_j``) spreads one unit of
attention over the text tokens ``i`` (keys ``k_i = W_K c_i``), separately in every head ``h``::

    P[h, j, i] = softmax_i( scale * <q_j^h, k_i^h> ),      sum_i P[h, j, i] = 1

TIME edits ``W_K`` and ``W_V``, so an edit shows up directly in these probabilities. The
:class:`AttentionRecorder` recomputes ``P`` with forward hooks on the cross-attention modules, from the
modules' own projections at call time (an edited ``to_k`` is seen at once), for the conditional half of
a classifier-free-guidance batch only. The UNet's own forward pass is left untouched (it keeps its fast
fused attention), so images are bit-identical with and without recording.

Memory does not grow with the number of steps: for each recorded layer the recorder holds one running
sum over steps of the head-averaged probabilities, a float32 tensor of shape
``(images, h * w, tokens)``, plus a step count. That is ``4 * images * h * w * tokens`` bytes per layer
(:attr:`AttentionRecorder.nbytes`); for Stable Diffusion 1.4 at 512x512 (16 layers, maps of 64x64 down
to 8x8, 77 tokens) about 8.3 MB per image.

Several denoising runs inside one recorder (two pipeline calls, or ``generate`` drawing many seeds in
several batches) each add their own images, in order: a run starts whenever the scheduler's timestep
goes up again (within a run it only falls or repeats), and each run's steps are averaged on their own, so
image ``i`` of the maps is always image ``i`` of the images drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .editing.sites import architecture, denoiser, select_sites

START_LABEL, END_LABEL, PAD_LABEL = "<start>", "<end>", "<pad>"
WORD_END = "</w>"  # CLIP's BPE marks the last piece of every word with this suffix


@dataclass(frozen=True)
class TokenSpan:
    """A label and the token positions it covers (one position, or a word's subword pieces)."""

    label: str
    positions: tuple[int, ...]


def token_labels(tokenizer, prompt: str, merge_subwords: bool = False,
                 include_padding: bool = False) -> list[TokenSpan]:
    """The labelled token positions of ``prompt`` exactly as the pipeline tokenizes it.

    Start and end tokens are labelled ``<start>`` and ``<end>``; positions beyond the end token are
    ``<pad>`` and left out unless ``include_padding``. With ``merge_subwords`` the BPE pieces of one
    word (``"ros" "es</w>"``) become one span ``"roses"`` covering both positions.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"token_labels takes one prompt string, got {type(prompt).__name__}")
    encoded = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True)
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    special = {tokenizer.bos_token: START_LABEL, tokenizer.eos_token: END_LABEL}
    spans: list[TokenSpan] = []
    word: list[int] = []  # positions of the word being merged
    for position, (piece, attended) in enumerate(zip(pieces, encoded["attention_mask"])):
        if not attended:
            if include_padding:
                spans.append(TokenSpan(PAD_LABEL, (position,)))
            continue
        if piece in special:
            spans.append(TokenSpan(special[piece], (position,)))
            continue
        if not merge_subwords:
            spans.append(TokenSpan(piece.removesuffix(WORD_END), (position,)))
            continue
        word.append(position)
        if piece.endswith(WORD_END):
            label = "".join(pieces[p] for p in word).removesuffix(WORD_END)
            spans.append(TokenSpan(label, tuple(word)))
            word = []
    return spans


def position_groups(tokenizer, prompt: str, words: bool = False) -> dict[str, list[int]]:
    """The 77 (``model_max_length``) positions of ``prompt`` sorted by role, in order of position.

    ``"start"``, ``"words"`` (every token between start and end), ``"end"`` and ``"padding"`` (everything
    after the end token); with ``words`` the words group is split into one group per word (subword
    pieces merged), named by the word, with a repeated word numbered (``"a"``, ``"a (2)"``). The groups
    cover every position exactly once, so the attention they draw sums to one.
    """
    spans = token_labels(tokenizer, prompt, merge_subwords=True, include_padding=True)
    groups: dict[str, list[int]] = {"start": []}
    middle: dict[str, list[int]] = {}
    for span in spans:
        if span.label == START_LABEL:
            groups["start"].extend(span.positions)
        elif span.label in (END_LABEL, PAD_LABEL):
            groups.setdefault("end" if span.label == END_LABEL else "padding", []).extend(span.positions)
        elif words:
            name, copy = span.label, 1
            while name in middle:
                copy += 1
                name = f"{span.label} ({copy})"
            middle[name] = list(span.positions)
        else:
            middle.setdefault("words", []).extend(span.positions)
    groups.setdefault("padding", [])
    return {"start": groups["start"], **middle, "end": groups["end"], "padding": groups["padding"]}


def group_maps(maps: torch.Tensor, groups: dict[str, list[int]]) -> torch.Tensor:
    """Sum token maps ``(..., tokens, H, W)`` over each group's positions: ``(..., groups, H, W)``."""
    return torch.stack([maps[..., positions, :, :].sum(dim=-3) for positions in groups.values()], dim=-3)


def map_shape(latent_hw: tuple[int, int], length: int) -> tuple[int, int]:
    """The ``(h, w)`` of a layer's ``length`` queries in a UNet fed latents of size ``latent_hw``.

    Every UNet downsampling (a stride-2 convolution, padding 1) maps a side ``s`` to ``ceil(s / 2)``.
    """
    h, w = latent_hw
    while h * w > length and (h > 1 or w > 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    if h * w != length:
        raise ValueError(f"a cross-attention layer has {length} queries, which is no downsampling of the "
                         f"{latent_hw[0]}x{latent_hw[1]} latent; is this a UNet2DConditionModel?")
    return h, w


def _arg(args: tuple, kwargs: dict, index: int, name: str):
    return args[index] if len(args) > index else kwargs.get(name)


class AttentionRecorder:
    """Record per-token cross-attention probabilities of a diffusers pipeline's UNet.

    Use as a context manager; hooks are attached on entry (clearing earlier recordings) and removed on
    exit, also when generation raises::

        with AttentionRecorder(pipe) as rec:
            image = pipe("a pack of roses", num_inference_steps=20).images[0]
        maps = rec.maps()                                # (images, 77, h, w)
        spans, token_maps = rec.token_maps("a pack of roses")

    Arguments:
        pipe: a Stable Diffusion style pipeline (``.unet``, ``.tokenizer``), or a PixArt or Sana one
            (cross-attention ``attn2`` in a ``.transformer``; :meth:`token_maps` is for UNets only).
        layers: names or name prefixes (``"up_blocks"``) of the cross-attention modules to record
            (default: all of them).
        resolution: record only layers whose maps are ``(h, w)`` (an int ``n`` means ``(n, n)``).
        timesteps: ``(low, high)``: record only UNet calls whose scheduler timestep ``t`` has
            ``low <= t <= high`` (``t`` near 1000 is pure noise, near 0 the finished image).
        cfg: whether the UNet batch is ``[unconditional, conditional]`` (classifier-free guidance);
            ``None`` reads ``pipe.do_classifier_free_guidance`` at every UNet call.
    """

    def __init__(self, pipe, layers: Iterable[str] | None = None,
                 resolution: int | tuple[int, int] | None = None,
                 timesteps: tuple[float, float] | None = None, cfg: bool | None = None):
        self.pipe = pipe
        arch = architecture(pipe)
        if arch.joint:
            raise NotImplementedError(f"{arch.models} has no cross-attention: its joint attention mixes text and "
                                      "image tokens that change in every block, so there is no per-token map "
                                      "over fixed text states to record")
        if arch.name == "hunyuan":
            raise NotImplementedError(f"{arch.models} rotates every cross-attention query by its image position "
                                      "(rotary embedding) before the product with the keys, which the recorder's "
                                      "maps do not reproduce; its attention maps are not supported")
        self.modules = select_sites(pipe, layers)
        if not self.modules:
            raise ValueError("layers is empty; pass None to record every cross-attention layer")
        for module in self.modules.values():
            check_supported(module)
        self.resolution = _as_hw(resolution)
        if timesteps is not None and not timesteps[0] <= timesteps[1]:
            raise ValueError(f"timesteps must be (low, high) with low <= high, got {timesteps}")
        self.timesteps = timesteps
        self.cfg = cfg
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.reset()

    # ----------------------------------------------------------------------------------- recording
    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._sums: dict[str, dict[int, torch.Tensor]] = {}  # layer -> denoising run -> sum over its steps
        self._counts: dict[str, dict[int, int]] = {}  # layer -> denoising run -> steps summed
        self.shapes: dict[str, tuple[int, int]] = {}  # layer name -> (h, w) of its maps
        self.timesteps_seen: list[float] = []  # scheduler timesteps of the recorded UNet calls
        self._run, self._last_timestep = -1, None  # the denoising run in progress, told apart by its timesteps
        self._step: dict | None = None  # what the UNet call in progress tells the layer hooks

    def __enter__(self) -> "AttentionRecorder":
        if self._handles:
            raise RuntimeError("this AttentionRecorder is already recording; nest two recorders instead")
        self.reset()
        try:
            self._handles.append(denoiser(self.pipe).register_forward_pre_hook(self._on_unet, with_kwargs=True))
            for name, module in self.modules.items():
                hook = self._layer_hook(name)
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        except BaseException:
            self._remove_hooks()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._step = None

    def _on_unet(self, unet: nn.Module, args: tuple, kwargs: dict) -> None:
        sample, timestep = _arg(args, kwargs, 0, "sample"), _arg(args, kwargs, 1, "timestep")
        t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        if self._last_timestep is None or t > self._last_timestep:  # the timestep went up: a new run starts
            self._run += 1
        self._last_timestep = t
        if self.timesteps is not None and not self.timesteps[0] <= t <= self.timesteps[1]:
            self._step = None
            return
        batch = sample.shape[0]
        cfg = self._uses_cfg()
        if cfg and batch % 2:
            raise ValueError(f"classifier-free guidance expects an even UNet batch, got {batch}; "
                             "pass cfg=False if this pipeline does not double its batch")
        self._step = {"latent_hw": tuple(sample.shape[-2:]), "cond": slice(batch // 2 if cfg else 0, None),
                      "run": self._run}
        self.timesteps_seen.append(t)

    def _uses_cfg(self) -> bool:
        if self.cfg is not None:
            return self.cfg
        try:
            return bool(self.pipe.do_classifier_free_guidance)
        except AttributeError as error:
            raise ValueError("cannot tell whether the UNet batch holds an unconditional half: the "
                             "pipeline has no usable do_classifier_free_guidance; pass cfg=True or "
                             "cfg=False") from error

    def _layer_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output) -> None:
            if self._step is None:
                return
            hidden = _arg(args, kwargs, 0, "hidden_states")
            context = _arg(args, kwargs, 1, "encoder_hidden_states")
            mask = _arg(args, kwargs, 2, "attention_mask")
            cond = self._step["cond"]
            if hidden.ndim == 4:  # (b, c, h, w) inputs are flattened by the processor too
                hidden = hidden.flatten(2).transpose(1, 2)
            shape = map_shape(self._step["latent_hw"], hidden.shape[1])
            if self.resolution is not None and shape != self.resolution:
                return
            with torch.no_grad():
                probs = attention_probabilities(module, hidden[cond], context[cond],
                                                None if mask is None else mask[cond])
            # mean over heads now, sum over a run's steps: memory stays (images, h*w, tokens) per layer
            mean = probs.mean(dim=1)
            if self.shapes.setdefault(name, shape) != shape:
                raise ValueError(f"layer {name} recorded {self.shapes[name][0]}x{self.shapes[name][1]} maps "
                                 f"and now gets {shape[0]}x{shape[1]}: use one recorder (or reset()) per image size")
            sums, counts, run = self._sums.setdefault(name, {}), self._counts.setdefault(name, {}), self._step["run"]
            if run in sums:
                if sums[run].shape != mean.shape:
                    raise ValueError(f"layer {name}: the batch changed from {sums[run].shape[0]} to {mean.shape[0]} "
                                     "images within one denoising run (the timestep did not go up); draw each "
                                     "batch as its own run, or reset() the recorder between them")
                sums[run] += mean
                counts[run] += 1
            else:
                sums[run], counts[run] = mean, 1
        return hook

    # ----------------------------------------------------------------------------------- reading
    @property
    def nbytes(self) -> int:
        """Bytes held by the running sums: ``4 * images * h * w * tokens`` per recorded layer."""
        return sum(s.numel() * s.element_size() for runs in self._sums.values() for s in runs.values())

    def layer_maps(self, name: str) -> torch.Tensor:
        """One layer's maps averaged over heads and recorded steps: ``(images, tokens, h, w)``, the images of
        every denoising run in the order they were drawn."""
        if name not in self._sums:
            raise KeyError(f"layer {name!r} recorded nothing; recorded layers: {list(self._sums)}")
        runs = sorted(self._sums[name])
        mean = torch.cat([self._sums[name][r] / self._counts[name][r] for r in runs])
        return mean.transpose(1, 2).reshape(*mean.shape[::2], *self.shapes[name])

    def maps(self, layers: Iterable[str] | None = None, resolution: int | tuple[int, int] | None = None,
             size: tuple[int, int] | None = None) -> torch.Tensor:
        """Maps averaged over heads, steps and the chosen recorded layers: ``(images, tokens, H, W)``.

        Each layer's maps are resized bilinearly to ``size`` (default: the largest chosen map) and the
        layers weigh equally. Resizing mixes pixels with weights summing to one, so every pixel's
        attention still sums to 1 over the tokens.
        """
        names = list(self._sums) if layers is None else list(layers)
        wanted = _as_hw(resolution)
        names = [n for n in names if wanted is None or self.shapes.get(n) == wanted]
        if not names:
            recorded = self.shapes or "nothing (did generation run inside the with block?)"
            raise ValueError(f"no recorded layer matches layers={layers!r}, resolution={resolution!r}; "
                             f"recorded: {recorded}")
        chosen = [self.layer_maps(n) for n in names]
        if size is None:
            size = max((m.shape[-2:] for m in chosen), key=lambda hw: hw[0] * hw[1])
        size = tuple(size)
        resized = [m if tuple(m.shape[-2:]) == size else
                   F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in chosen]
        return torch.stack(resized).mean(dim=0)

    def token_maps(self, prompt: str, image: int = 0, merge_subwords: bool = False,
                   include_padding: bool = False, **maps_kwargs) -> tuple[list[TokenSpan], torch.Tensor]:
        """The labelled tokens of ``prompt`` and their maps in image ``image``: ``(spans, (k, H, W))``.

        A merged word's map is the sum of its pieces' maps (the attention the pixel gives the word).
        ``maps_kwargs`` (``layers``, ``resolution``, ``size``) go to :meth:`maps`.
        """
        arch = architecture(self.pipe)
        if arch.name != "unet":
            raise NotImplementedError(f"token_maps labels positions as Stable Diffusion's pipeline tokenizes; "
                                      f"{arch.models} rewrites prompts before tokenizing them (lowercase, an "
                                      "instruction in front on Sana) or cuts the text after the batch's longest "
                                      "prompt (Kandinsky 3): read maps() by position instead")
        maps = self.maps(**maps_kwargs)
        if not -maps.shape[0] <= image < maps.shape[0]:
            raise IndexError(f"image {image} out of range: {maps.shape[0]} image(s) recorded")
        spans = token_labels(self.pipe.tokenizer, prompt, merge_subwords, include_padding)
        if spans[-1].positions[-1] >= maps.shape[1]:
            raise ValueError(f"the tokenizer gives {spans[-1].positions[-1] + 1} positions but the maps "
                             f"have {maps.shape[1]} tokens")
        return spans, torch.stack([maps[image, list(s.positions)].sum(dim=0) for s in spans])


def check_supported(attn: nn.Module) -> None:
    """Raise unless ``attn`` is a plain cross-attention module that :func:`attention_probabilities` covers."""
    if attn.group_norm is not None or attn.spatial_norm is not None or attn.added_kv_proj_dim is not None:
        raise NotImplementedError("recording supports plain cross-attention modules (Stable Diffusion's "
                                  "attn2); this one has group/spatial norms or added key/value projections")


def attention_probabilities(attn: nn.Module, hidden: torch.Tensor, context: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(scale * q k^T)`` of a diffusers ``Attention`` module, in float32: ``(b, heads, q, k)``.

    ``q = to_q(hidden)`` and ``k = to_k(context)`` use the module's current weights (and its optional
    ``norm_cross``, ``norm_q``, ``norm_k`` and additive ``attention_mask``, as its processor does).
    """
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    heads = attn.heads
    query = attn.to_q(hidden).unflatten(-1, (heads, -1)).transpose(1, 2)  # (b, heads, q, d)
    key = attn.to_k(context).unflatten(-1, (heads, -1)).transpose(1, 2)  # (b, heads, k, d)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    if query.dtype != torch.float32:
        query, key = query.float(), key.float()
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(attn.scale)
    if mask is not None:
        batch = hidden.shape[0]
        mask = attn.prepare_attention_mask(mask, context.shape[1], batch)
        scores += mask.view(batch, heads, -1, mask.shape[-1])
    return scores.softmax(dim=-1)


def _as_hw(resolution: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if resolution is None:
        return None
    if isinstance(resolution, int):
        return resolution, resolution
    h, w = resolution
    return int(h), int(w)
