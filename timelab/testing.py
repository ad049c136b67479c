"""Random-weight Stable Diffusion pipelines built from configs, for offline tests and benchmarks.

Nothing here downloads. ``tiny_pipeline`` builds small SD 1.x / SD 2.x / SDXL look-alikes with Stable
Diffusion's real tokenizer (from the CLIP merge table) and deliberately unusual text widths, so that
code which hard-codes 768 fails. ``sd14_shaped_pipeline`` has Stable Diffusion 1.4's exact
architecture (CLIP ViT-L/14 text encoder, 860M-parameter UNet) with random weights.
``tiny_transformer_pipeline`` builds tiny PixArt-alpha, Sana, SD3, FLUX and HunyuanDiT pipelines (diffusion transformers),
and Kandinsky 3 (a UNet reading T5 states like them), with the stand-in T5 and Gemma tokenizers of
:mod:`timelab.stand_in_tokenizers` and CLIP's real one.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Literal

import torch
from diffusers import (AutoencoderDC, AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler, FluxPipeline,
                       FluxTransformer2DModel, HunyuanDiT2DModel, HunyuanDiTPipeline, Kandinsky3Pipeline, Kandinsky3UNet, PixArtAlphaPipeline,
                       PixArtTransformer2DModel, SanaPipeline, SanaTransformer2DModel, SD3Transformer2DModel,
                       StableDiffusion3Pipeline, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel, VQModel)
from transformers import (BertConfig, BertModel, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, Gemma2Config, Gemma2Model,
                          T5Config, T5EncoderModel)

from .clip_tokenizer import END_TOKEN, build_clip_tokenizer
from .schedulers import ddim
from .stand_in_tokenizers import stand_in_bert_tokenizer, stand_in_gemma_tokenizer, stand_in_t5_tokenizer

Flavour = Literal["sd1", "sd2", "sdxl"]
TransformerFlavour = Literal["pixart", "sana", "sd3", "flux", "kandinsky3", "hunyuan"]

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


def _tiny_vae(**extra) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(16,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
        **extra,
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


# Widths of the tiny transformers' text states (T5/Gemma) and of the layers that read them: unusual on purpose.
TINY_CAPTION_WIDTH = 40
TINY_TRANSFORMER_WIDTH = 24


def _tiny_t5(vocab_size: int, width: int = TINY_CAPTION_WIDTH) -> T5EncoderModel:
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=width, d_kv=8, d_ff=2 * width, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0))


def tiny_transformer_pipeline(flavour: TransformerFlavour = "pixart", seed: int = 0):
    """A tiny random-weight PixArt-alpha, Sana, SD3, FLUX, Kandinsky 3 or HunyuanDiT pipeline, built offline.

    PixArt reads T5 states and Sana Gemma-2 states (stand-in tokenizers, see
    :mod:`timelab.stand_in_tokenizers`) through a caption projection and cross-attention; SD3 reads
    CLIP-L, CLIP-G (CLIP's real tokenizer) and T5 (the stand-in) through joint attention; FLUX reads T5
    (the stand-in) through joint attention and CLIP's pooled vector (real tokenizer); Kandinsky 3's UNet
    reads T5 states (the stand-in) through a projection and masked cross-attention; HunyuanDiT reads BERT
    (stand-in) and projected T5 (stand-in, for mT5) states through cross-attention. The weights
    depend on ``seed`` only; torch's global random state is left as the caller had it.
    """
    builders = {"pixart": _tiny_pixart, "sana": _tiny_sana, "sd3": _tiny_sd3, "flux": _tiny_flux,
                "kandinsky3": _tiny_kandinsky3, "hunyuan": _tiny_hunyuan}
    if flavour not in builders:
        raise ValueError(f"unknown flavour {flavour!r}; choose one of {', '.join(map(repr, builders))}")
    with _seeded(seed):
        return _evaluating(builders[flavour]())


def _evaluating(pipe):
    """``pipe`` with every component in eval mode, as ``from_pretrained`` leaves them (T5's dropout would
    otherwise make every encoding of a prompt differ)."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe


def _tiny_pixart() -> PixArtAlphaPipeline:
    tokenizer = stand_in_t5_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=3,
        caption_channels=TINY_CAPTION_WIDTH, in_channels=4, cross_attention_dim=TINY_TRANSFORMER_WIDTH,
        out_channels=8, attention_bias=True, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
    )
    return PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=_tiny_t5(len(tokenizer)), vae=_tiny_vae(),
                               transformer=transformer, scheduler=ddim())


def _tiny_sana() -> SanaPipeline:
    tokenizer = stand_in_gemma_tokenizer()
    text_encoder = Gemma2Model(Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=TINY_CAPTION_WIDTH, intermediate_size=2 * TINY_CAPTION_WIDTH,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        max_position_embeddings=4096, pad_token_id=0, bos_token_id=2, eos_token_id=1,
    ))
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"), decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1), downsample_block_type="conv",
        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
    )
    heads, head_dim = 2, TINY_TRANSFORMER_WIDTH // 2
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=heads,
        attention_head_dim=head_dim, num_cross_attention_heads=heads, cross_attention_head_dim=head_dim,
        cross_attention_dim=TINY_TRANSFORMER_WIDTH, caption_channels=TINY_CAPTION_WIDTH, sample_size=8,
    )
    return SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def _tiny_sd3() -> StableDiffusion3Pipeline:
    clip_width, t5_width = 16, 48  # CLIP-L and CLIP-G are concatenated (32) and zero-padded to T5's width
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=4, attention_head_dim=8, num_attention_heads=3,
        caption_projection_dim=TINY_TRANSFORMER_WIDTH, joint_attention_dim=t5_width,
        pooled_projection_dim=4 * clip_width, out_channels=4, pos_embed_max_size=16,
    )
    tokenizer_3 = stand_in_t5_tokenizer()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae(shift_factor=0.0),
        text_encoder=CLIPTextModelWithProjection(_text_config(clip_width, projection_dim=2 * clip_width)),
        tokenizer=build_clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(clip_width, act="gelu", projection_dim=2 * clip_width)),
        tokenizer_2=build_clip_tokenizer(pad_token="!"),
        text_encoder_3=_tiny_t5(len(tokenizer_3), t5_width), tokenizer_3=tokenizer_3,
    )


def _tiny_flux() -> FluxPipeline:
    clip_width, t5_width = 16, 48  # CLIP's pooled vector modulates the blocks; T5's states are the text tokens
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=8, num_attention_heads=3,
        joint_attention_dim=t5_width, pooled_projection_dim=clip_width, axes_dims_rope=(2, 2, 4),
    )  # in_channels: the tiny autoencoder's 4 latent channels packed 2 x 2
    tokenizer_2 = stand_in_t5_tokenizer()
    return FluxPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae(shift_factor=0.0), text_encoder=CLIPTextModel(_text_config(clip_width)),
        tokenizer=build_clip_tokenizer(), text_encoder_2=_tiny_t5(len(tokenizer_2), t5_width), tokenizer_2=tokenizer_2,
    )


def _tiny_kandinsky3() -> Kandinsky3Pipeline:
    tokenizer = stand_in_t5_tokenizer()
    unet = Kandinsky3UNet(  # diffusers' Kandinsky 3 blocks need 2 or more layers per block
        in_channels=4, time_embedding_dim=32, groups=8, attention_head_dim=8, layers_per_block=2,
        block_out_channels=(16, 32), cross_attention_dim=TINY_TRANSFORMER_WIDTH, encoder_hid_dim=TINY_CAPTION_WIDTH,
    )
    # diffusers starts the LayerNorm's shift at zero, which would make padded positions (zeroed T5 states)
    # project to exactly zero; a trained model's shift is not zero, and neither is this random one's
    torch.nn.init.normal_(unet.encoder_hid_proj.projection_norm.bias, std=0.5)
    movq = VQModel(block_out_channels=(32,), down_block_types=("DownEncoderBlock2D",),
                   up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8, num_vq_embeddings=16,
                   vq_embed_dim=4, sample_size=16, norm_type="spatial")
    return Kandinsky3Pipeline(tokenizer=tokenizer, text_encoder=_tiny_t5(len(tokenizer)), unet=unet, movq=movq,
                              scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False))


def _tiny_hunyuan() -> HunyuanDiTPipeline:
    bert_width = 32  # the BERT states and the projected mT5 states share the attn2 input width
    tokenizer, tokenizer_2 = stand_in_bert_tokenizer(), stand_in_t5_tokenizer()
    transformer = HunyuanDiT2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=3,
        cross_attention_dim=bert_width, cross_attention_dim_t5=TINY_CAPTION_WIDTH, pooled_projection_dim=16,
        hidden_size=TINY_TRANSFORMER_WIDTH, text_len=77, text_len_t5=256, use_style_cond_and_image_meta_size=False,
    )
    text_encoder = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=bert_width, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=2 * bert_width,
                                        max_position_embeddings=77), add_pooling_layer=False)
    return HunyuanDiTPipeline(
        vae=_tiny_vae(), text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
        scheduler=DDPMScheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        text_encoder_2=_tiny_t5(len(tokenizer_2)), tokenizer_2=tokenizer_2,
    )


def _t5_xxl_shaped(vocab_size: int, layers: int) -> T5EncoderModel:
    """T5 v1.1-XXL's encoder widths (4096, 64 heads of 64, gated-GELU 10240) at ``layers`` of its 24 layers."""
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=4096, d_kv=64, d_ff=10240, num_layers=layers,
                                   num_heads=64, feed_forward_proj="gated-gelu", decoder_start_token_id=0))


def pixart_shaped_pipeline(seed: int = 0, t5_layers: int = 1):
    """PixArt-alpha XL-2's transformer (28 blocks of width 1152, 611M parameters) with random weights.

    The text encoder has T5-XXL's widths but ``t5_layers`` of its 24 layers, and the stand-in T5
    tokenizer; the autoencoder is the tiny one: what an edit touches and reads is full-sized, text
    encoding is cheaper than the real model's.
    """
    with _seeded(seed):
        tokenizer = stand_in_t5_tokenizer()
        transformer = PixArtTransformer2DModel(
            sample_size=64, num_layers=28, patch_size=2, attention_head_dim=72, num_attention_heads=16,
            caption_channels=4096, in_channels=4, cross_attention_dim=1152, out_channels=8, attention_bias=True,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
            norm_elementwise_affine=False, norm_eps=1e-6,
        )
        pipe = PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=_t5_xxl_shaped(len(tokenizer), t5_layers),
                                   vae=_tiny_vae(), transformer=transformer, scheduler=ddim())
    return _evaluating(pipe)


def sd3_shaped_pipeline(seed: int = 0, t5_layers: int = 1, blocks: int = 2):
    """Stable Diffusion 3 Medium's text path with random weights: CLIP-L and CLIP-G at their real shapes,
    T5-XXL's widths at ``t5_layers`` of 24 layers, and the transformer's ``context_embedder`` (4096 ->
    1536) with ``blocks`` of its 24 joint blocks. An edit touches only ``context_embedder``, full-sized."""
    with _seeded(seed):
        tokenizer_3 = stand_in_t5_tokenizer()
        transformer = SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, num_layers=blocks, attention_head_dim=64,
            num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
            pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192,
        )
        pipe = StableDiffusion3Pipeline(
            transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_tiny_vae(shift_factor=0.0),
            text_encoder=CLIPTextModelWithProjection(_text_config(768, layers=12, heads=12, projection_dim=768)),
            tokenizer=build_clip_tokenizer(),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(1280, layers=32, heads=20, act="gelu",
                                                                    projection_dim=1280)),
            tokenizer_2=build_clip_tokenizer(pad_token="!"),
            text_encoder_3=_t5_xxl_shaped(len(tokenizer_3), t5_layers), tokenizer_3=tokenizer_3,
        )
    return _evaluating(pipe)
