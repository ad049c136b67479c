"""Stable Diffusion's noise schedule and the samplers timelab draws with, defined once.

SD 1.x/2.x train with 1000 DDPM steps of "scaled linear" betas, ``beta_t = (sqrt(b0) + t/999 (sqrt(b1) -
sqrt(b0)))^2`` with ``b0 = 0.00085``, ``b1 = 0.012``, and sample with DDIM (no clipping, the final
alpha kept, timesteps offset by one). TinyWorld and the random-weight test pipelines train on the same
schedule. DPM-Solver++ (2M: second order, multistep; Lu et al., 2022) is offered beside DDIM; on
TinyWorld it draws another world at 8-15 steps, where DDIM at 20 draws the same world as at 25
(``benchmarks/results/tinyworld_speed_judged.md``).

Every sampler is built on a pipeline's own noise schedule (its scheduler's config) with its options
written out here, so a sampler's name means the same steps on any pipeline.
"""

from __future__ import annotations

from typing import Callable

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.configuration_utils import FrozenDict

SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
# The options that make each sampler what its name says, whatever scheduler the config came from.
DDIM_OPTIONS = dict(clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
# Timesteps spread evenly from the noisiest (999) to 0.
DPM_SOLVER_OPTIONS = dict(algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="linspace", steps_offset=0)


def training_scheduler() -> DDPMScheduler:
    """The DDPM noise schedule Stable Diffusion is trained with."""
    return DDPMScheduler(**SD_SCHEDULE, clip_sample=False)


def ddim(config: dict | FrozenDict = SD_SCHEDULE) -> DDIMScheduler:
    """DDIM with Stable Diffusion's settings on ``config``'s noise schedule."""
    return DDIMScheduler.from_config({**_schedule(config), **DDIM_OPTIONS})


def dpm_solver(config: dict | FrozenDict = SD_SCHEDULE) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ 2M on ``config``'s noise schedule."""
    return DPMSolverMultistepScheduler.from_config({**_schedule(config), **DPM_SOLVER_OPTIONS})


SAMPLERS: dict[str, Callable] = {"ddim": ddim, "dpm-solver++": dpm_solver}


def sampler_name(scheduler) -> str:
    """The :data:`SAMPLERS` name that ``scheduler`` is (same class and options), else its class name."""
    for name, build in SAMPLERS.items():
        same = build(scheduler.config)
        if type(same) is type(scheduler) and _options(same.config) == _options(scheduler.config):
            return name
    return type(scheduler).__name__


def _options(config: dict | FrozenDict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _schedule(config: dict | FrozenDict) -> dict:
    """The noise schedule alone: betas (or trained betas), their count and what the model predicts."""
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    return {k: config[k] for k in keys if k in config}
