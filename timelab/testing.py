"""Random-weight Stable Diffusion pipelines built from configs, for offline tests and benchmarks.

Nothing here downloads. ``tiny_pipeline`` builds small SD 1.x / SD 2.x / SDXL look-alikes with Stable
Diffusion's real tokenizer (from the CLIP merge table) and deliberately unusual text widths, so that
code which hard-codes 768 fails. ``sd14_shaped_pipeline`` has Stable Diffusion 1.4's exact
architecture (CLIP ViT-L/14 text encoder, 860M-parameter UNet) with random weights.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Literal

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from .clip_tokenizer import END_TOKEN, build_clip_tokenizer
from .schedulers import ddim

Flavour = Literal["sd1", "sd2", "sdxl"]

# Widths of the tiny text encoders: SD 1.x-like, SD 2.x-like, and SDXL's two (concatenated to 64).
TINY_TEXT_WIDTH = {"sd1": 32, "sd2": 48, "sdxl": (32, 32)}


def _text_config(hidden: int, layers: int = 2, heads: int = 4, act: str = "quick_gelu",
                 projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection_dim or hidden,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(16,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )


def _tiny_unet(cross_attention_dim: int, **extra) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        **extra,
    )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed``, restoring the caller's state afterwards.

    The weights are made on the CPU, so only the CPU generator is seeded (and restored); any GPU
    generator is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def tiny_pipeline(flavour: Flavour = "sd1", seed: int = 0, bpe_path: str | os.PathLike | None = None):
    """A tiny random-weight pipeline of the given flavour with Stable Diffusion's real tokenizer.

    The weights depend on ``seed`` only; torch's global random state is left as the caller had it.
    """
    with _seeded(seed):
        return _tiny_pipeline(flavour, bpe_path)


def _tiny_pipeline(flavour: Flavour, bpe_path: str | os.PathLike | None):
    scheduler = ddim()
    if flavour in ("sd1", "sd2"):
        width = TINY_TEXT_WIDTH[flavour]
        pad = END_TOKEN if flavour == "sd1" else "!"
        act = "quick_gelu" if flavour == "sd1" else "gelu"
        extra = {} if flavour == "sd1" else {"use_linear_projection": True}
        return StableDiffusionPipeline(
            vae=_tiny_vae(),
            text_encoder=CLIPTextModel(_text_config(width, act=act)),
            tokenizer=build_clip_tokenizer(bpe_path, pad_token=pad),
            unet=_tiny_unet(width, **extra),
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    if flavour == "sdxl":
        w1, w2 = TINY_TEXT_WIDTH["sdxl"]
        time_dim = 8
        unet = _tiny_unet(
            w1 + w2,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_dim,
            projection_class_embeddings_input_dim=6 * time_dim + w2,
        )
        return StableDiffusionXLPipeline(
            vae=_tiny_vae(),
            text_encoder=CLIPTextModel(_text_config(w1)),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(w2, act="gelu")),
            tokenizer=build_clip_tokenizer(bpe_path),
            tokenizer_2=build_clip_tokenizer(bpe_path, pad_token="!"),
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=True,
        )
    raise ValueError(f"unknown flavour {flavour!r}; choose 'sd1', 'sd2' or 'sdxl'")


def sd14_shaped_pipeline(seed: int = 0, bpe_path: str | os.PathLike | None = None,
                         vae_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)):
    """Stable Diffusion 1.4's architecture with random weights (about 1.07B parameters in fp32).

    ``vae_block_out_channels`` may be shrunk where only the text encoder and UNet matter. The weights
    depend on ``seed`` only; torch's global random state is left as the caller had it.
    """
    with _seeded(seed):
        return _sd14_shaped_pipeline(bpe_path, vae_block_out_channels)


def _sd14_shaped_pipeline(bpe_path: str | os.PathLike | None, vae_block_out_channels: tuple[int, ...]):
    text_encoder = CLIPTextModel(_text_config(768, layers=12, heads=12, act="quick_gelu"))
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    n = len(vae_block_out_channels)
    vae = AutoencoderKL(
        block_out_channels=vae_block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_clip_tokenizer(bpe_path), unet=unet,
        scheduler=ddim(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
