"""TinyWorld's architecture: Stable Diffusion 1.x's component classes, sized for a 16x16 world.

    tokenizer     CLIPTokenizer, 77 tokens, padded with the end token (see ``tokenizer``)
    text encoder  CLIPTextModel, causal attention, width 64, 2 layers, 4 heads
    UNet          UNet2DConditionModel, 8x8x4 latents, channels (32, 64), cross-attention everywhere
    VAE           AutoencoderKL with two blocks: 16x16 RGB <-> 8x8x4 latent (scale factor 2)
    scheduler     DDPM's scaled-linear betas of SD for training, DDIM for sampling
"""

from __future__ import annotations

from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..schedulers import sampling_scheduler
from . import spec

TEXT_WIDTH = 64
LATENT_CHANNELS = 4


def text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A small CLIP text encoder for ``tokenizer``'s vocabulary (same class and attention mask as SD's)."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length,
        hidden_act="quick_gelu", projection_dim=TEXT_WIDTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=spec.IMAGE_SIZE // 2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4,
    )


def vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 32), layers_per_block=1,
        latent_channels=LATENT_CHANNELS, norm_num_groups=8, sample_size=spec.IMAGE_SIZE,
        mid_block_add_attention=False,
    )


def pipeline(tokenizer, text_encoder, unet, vae) -> StableDiffusionPipeline:
    """Assemble the parts into a standard Stable Diffusion pipeline (no safety checker)."""
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=sampling_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
