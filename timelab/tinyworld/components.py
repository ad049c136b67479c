"""TinyWorld's architecture: Stable Diffusion 1.x's component classes, sized for a 32x32 world.

    tokenizer     CLIPTokenizer, 77 tokens, padded with the end token (see ``tokenizer``)
    tiny CLIP     CLIPModel: a CLIPTextModel text tower (causal attention, the UNet's conditioning)
                  and a ViT image tower (4x4 patches), trained contrastively; the image tower is
                  TinyWorld's CLIP judge
    VAE           AutoencoderKL with three blocks: 32x32 RGB <-> 8x8x4 latent (downsampling factor 4)
    UNet          UNet2DConditionModel, 8x8x4 latents, cross-attention at 8x8 and 4x4
    scheduler     DDPM's scaled-linear betas of SD for training, DDIM for sampling

Sizes are data (``Sizes``), so quick trials and the full model share one builder.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from ..schedulers import ddim
from . import spec

LATENT_CHANNELS = 4
PATCH_SIZE = 4
TEXT_HEADS = 4  # attention heads of the text tower: its width must be a multiple


@dataclass(frozen=True)
class Sizes:
    text_width: int = 64
    text_layers: int = 3
    image_width: int = 64
    image_layers: int = 3
    vae_channels: tuple[int, ...] = (16, 32, 64)
    unet_channels: tuple[int, ...] = (64, 128)
    unet_layers_per_block: int = 1
    unet_heads: int = 4


def clip(tokenizer: CLIPTokenizer, sizes: Sizes) -> CLIPModel:
    """A tiny CLIP for ``tokenizer``'s vocabulary: SD's text-tower class and attention mask, ViT image tower."""
    text = dict(
        vocab_size=len(tokenizer), hidden_size=sizes.text_width, intermediate_size=4 * sizes.text_width,
        num_hidden_layers=sizes.text_layers, num_attention_heads=TEXT_HEADS,
        max_position_embeddings=tokenizer.model_max_length, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=sizes.image_width, intermediate_size=4 * sizes.image_width,
        num_hidden_layers=sizes.image_layers, num_attention_heads=4, image_size=spec.IMAGE_SIZE,
        patch_size=PATCH_SIZE, hidden_act="quick_gelu",
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=sizes.text_width)
    return CLIPModel(config)


def unet(sizes: Sizes) -> UNet2DConditionModel:
    n = len(sizes.unet_channels)
    return UNet2DConditionModel(
        sample_size=spec.IMAGE_SIZE // 4, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=sizes.unet_channels, layers_per_block=sizes.unet_layers_per_block,
        norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D",) * n,
        up_block_types=("CrossAttnUpBlock2D",) * n, cross_attention_dim=sizes.text_width,
        attention_head_dim=sizes.unet_heads,
    )


def vae(sizes: Sizes) -> AutoencoderKL:
    n = len(sizes.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=sizes.vae_channels, layers_per_block=1,
        latent_channels=LATENT_CHANNELS, norm_num_groups=8, sample_size=spec.IMAGE_SIZE,
        mid_block_add_attention=False,
    )


def pipeline(tokenizer, text_encoder, unet, vae) -> StableDiffusionPipeline:
    """Assemble the parts into a standard Stable Diffusion pipeline (no safety checker)."""
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=ddim(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
