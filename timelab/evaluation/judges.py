"""Judges: given images and, per image, two candidate captions, say which caption each image shows.

A judge is anything with ``choose(images, candidates) -> array of 0/1``: ``images`` is an
``(n, H, W, 3)`` float array in [0, 1] (what a diffusers pipeline returns with ``output_type="np"``)
and ``candidates[i] = (first, second)``; the answer is 1 where image ``i`` is judged strictly closer
to ``second``. :class:`ClipJudge` does the paper's CLIP zero-shot choice. A judge that can also read
attributes has ``records(images)`` and ``kept(...)`` (TinyWorld's exact judge does, see
:mod:`timelab.evaluation.tinyworld.oracle`): :func:`timelab.evaluation.edits.evaluate_edit_item` then
measures the attributes kept.
Loading a judge never loads the text-to-image model.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..clip_pixels import normalise
from ..devices import pick_device
from ..quiet import quiet_loading

DEFAULT_CLIP = "openai/clip-vit-large-patch14"


class Judge(Protocol):
    def choose(self, images: np.ndarray, candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        """1 where image ``i`` matches ``candidates[i][1]`` better than ``candidates[i][0]``, else 0."""
        ...


def check_candidates(images: np.ndarray, candidates: Sequence[tuple[str, str]]) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be an (n, H, W, 3) array, got shape {images.shape}")
    if len(candidates) != len(images):
        raise ValueError(f"need one candidate pair per image: {len(images)} images, {len(candidates)} pairs")


def _pooled(output) -> torch.Tensor:
    """Projected features from ``get_*_features`` (a tensor in transformers 4, an output object in 5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipJudge:
    """CLIP zero-shot choice: the candidate caption with the higher cosine similarity to the image.

    ``cos(E_img(x), E_txt(t)) = <e_x, e_t> / (|e_x| |e_t|)``; the logit scale does not change the choice.
    """

    def __init__(self, model, tokenizer, device: str | torch.device | None = None, batch_size: int = 32):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.image_size = model.config.vision_config.image_size

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_CLIP, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, batch_size: int = 32) -> "ClipJudge":
        """Load a CLIP model and its tokenizer by hub id or folder (default: ViT-L/14, as the paper)."""
        from transformers import CLIPModel, CLIPTokenizer

        with quiet_loading():  # no "Loading weights" bar or library chatter (TIMELAB_VERBOSE=1 shows them)
            model = CLIPModel.from_pretrained(name, dtype=dtype) if dtype else CLIPModel.from_pretrained(name)
            tokenizer = CLIPTokenizer.from_pretrained(name)
        return cls(model, tokenizer, device, batch_size)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """Resize the short side to the model's input size (bicubic), centre-crop, normalise. Images
        already at the input size (TinyWorld's 32x32 for its tiny CLIP) are only normalised."""
        x = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32).permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        if h == w == self.image_size:
            return normalise(x)
        scale = self.image_size / min(h, w)
        size = (max(self.image_size, round(h * scale)), max(self.image_size, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        return normalise(x[..., top:top + self.image_size, left:left + self.image_size])

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt").to(self.device)
        features = _pooled(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                        attention_mask=tokens["attention_mask"]))
        return F.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def image_embeddings(self, images: np.ndarray) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocess(images[start:start + self.batch_size]).to(self.device, dtype)
            chunks.append(F.normalize(_pooled(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1))
        return torch.cat(chunks)

    def choose(self, images: np.ndarray, candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        check_candidates(images, candidates)
        texts = sorted({t for pair in candidates for t in pair})
        index = {t: i for i, t in enumerate(texts)}
        similarity = (self.image_embeddings(images) @ self.text_embeddings(texts).T).cpu()  # (images, texts)
        rows = torch.arange(len(images))
        first = similarity[rows, torch.tensor([index[a] for a, _ in candidates])]
        second = similarity[rows, torch.tensor([index[b] for _, b in candidates])]
        return (second > first).numpy().astype(np.int64)
