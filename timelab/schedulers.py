"""Stable Diffusion's noise schedule and samplers, defined once.

SD 1.x/2.x train with 1000 DDPM steps of "scaled linear" betas, ``beta_t = (sqrt(b0) + t/999 (sqrt(b1) -
sqrt(b0)))^2`` with ``b0 = 0.00085``, ``b1 = 0.012``, and sample with DDIM (no clipping, the final
alpha kept, timesteps offset by one). TinyWorld and the random-weight test pipelines use the same.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def training_scheduler() -> DDPMScheduler:
    """The DDPM noise schedule Stable Diffusion is trained with."""
    return DDPMScheduler(**SD_SCHEDULE, clip_sample=False)


def sampling_scheduler() -> DDIMScheduler:
    """Stable Diffusion's DDIM sampler settings."""
    return DDIMScheduler(**SD_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
