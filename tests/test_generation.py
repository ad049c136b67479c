"""The one generation loop: images depend only on prompt, seed and settings; samplers are swapped in and
put back; bad settings are refused naming what is allowed. Checked against the pipeline called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from timelab import load_pipeline
from timelab.generation import GenerationSettings, generate

STEPS = 3
PROMPTS = ["a pack of roses", "a red circle"]


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("tiny-random", device="cpu")


def direct(pipe, prompt: str, seed: int, scheduler=None) -> np.ndarray:
    """One image from the pipeline itself (an independent path), optionally with another scheduler."""
    own = pipe.scheduler
    pipe.scheduler = scheduler or own
    try:
        return pipe([prompt], num_inference_steps=STEPS, output_type="np",
                    generator=[torch.Generator().manual_seed(seed)]).images[0]
    finally:
        pipe.scheduler = own


def test_an_image_depends_only_on_prompt_seed_and_settings(pipe):
    settings = GenerationSettings(steps=STEPS, batch_size=1)
    images = generate(pipe, PROMPTS, [4, 7], settings)
    assert images.shape[:2] == (2, 2)
    np.testing.assert_array_equal(images[1, 0], direct(pipe, PROMPTS[1], 4))
    np.testing.assert_array_equal(generate(pipe, [PROMPTS[1]], [7], settings)[0, 0], images[1, 1])
    # Another batch size sums in another order: the same image up to float rounding.
    batched = generate(pipe, PROMPTS, [4, 7], GenerationSettings(steps=STEPS, batch_size=3))
    np.testing.assert_allclose(batched, images, atol=1e-4)


def test_dpm_solver_is_the_diffusers_scheduler_on_the_pipelines_own_schedule(pipe):
    own = pipe.scheduler
    fast = generate(pipe, PROMPTS[:1], [2], GenerationSettings(steps=STEPS, sampler="dpm-solver++"))[0, 0]
    assert pipe.scheduler is own, "the pipeline's scheduler is put back"
    by_hand = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                          beta_schedule="scaled_linear", algorithm_type="dpmsolver++",
                                          solver_order=2, timestep_spacing="linspace")
    np.testing.assert_array_equal(fast, direct(pipe, PROMPTS[0], 2, by_hand))
    assert not np.array_equal(fast, direct(pipe, PROMPTS[0], 2)), "DPM-Solver++ draws otherwise than DDIM"


def test_ddim_means_stable_diffusions_ddim_whatever_scheduler_the_pipeline_ships(pipe):
    """Named on a pipeline that ships DPM-Solver++ (as TinyWorld does), "ddim" still draws SD's DDIM."""
    sd_ddim = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                            beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    own = pipe.scheduler
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(own.config)
    try:
        drawn = generate(pipe, PROMPTS[:1], [5], GenerationSettings(steps=STEPS, sampler="ddim"))[0, 0]
    finally:
        pipe.scheduler = own
    np.testing.assert_array_equal(drawn, direct(pipe, PROMPTS[0], 5, sd_ddim))


def test_the_scheduler_comes_back_after_an_error(pipe, monkeypatch):
    own = pipe.scheduler

    def broken(*args, **kwargs):
        raise RuntimeError("the UNet failed")

    monkeypatch.setattr(pipe.unet, "forward", broken)
    with pytest.raises(RuntimeError, match="the UNet failed"):
        generate(pipe, PROMPTS, [0], GenerationSettings(steps=STEPS, sampler="dpm-solver++"))
    assert pipe.scheduler is own


@pytest.mark.parametrize("bad, message", [
    (dict(steps=0), "steps must be at least 1"),
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(sampler="euler"), "choose one of 'ddim', 'dpm-solver\\+\\+'"),
])
def test_bad_settings_name_what_is_allowed(bad, message):
    with pytest.raises(ValueError, match=message):
        GenerationSettings(**bad)
