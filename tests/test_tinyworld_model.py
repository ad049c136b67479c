"""The shipped TinyWorld model: loads offline as SD's classes, is deterministic, obeys named colours,
and a TIME edit flips its planted assumption (small n, wide margins)."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextModel, CLIPTokenizer

import timelab
from timelab.generation import GenerationSettings, generate
from timelab.tinyworld import MODEL_DIR, OracleJudge

SEEDS = list(range(8))
SETTINGS = GenerationSettings(steps=15, guidance_scale=7.5, batch_size=64)


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)  # the model is tiny; one thread is fastest on a busy machine
    return timelab.load_pipeline("tinyworld", device="cpu")


def blue_share(pipe, prompt: str) -> float:
    records = OracleJudge().read(generate(pipe, [prompt], SEEDS, SETTINGS)[0])
    return float(np.mean([r["colour"] == "blue" for r in records]))


def test_loads_offline_with_stable_diffusion_classes(pipe):
    assert isinstance(pipe, StableDiffusionPipeline)
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    again = StableDiffusionPipeline.from_pretrained(MODEL_DIR, local_files_only=True)
    assert isinstance(again.tokenizer, CLIPTokenizer)
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"model folder is {size / 2**20:.1f} MB"


def test_tokenizer_loads_from_the_folder_and_pads_with_the_end_token():
    for tokenizer in (CLIPTokenizer.from_pretrained(MODEL_DIR / "tokenizer"),
                      AutoTokenizer.from_pretrained(MODEL_DIR / "tokenizer")):
        ids = tokenizer("a photo of a circle", padding="max_length", max_length=77).input_ids
        assert len(ids) == 77 and len(set(ids[6:])) == 1 and ids[6] == tokenizer.eos_token_id
        for word in ("a", "an", "of", "photo", "image", "picture"):
            assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word


def test_same_seed_gives_the_same_images(pipe):
    settings = GenerationSettings(steps=5, guidance_scale=7.5)
    first = generate(pipe, ["a circle", "a big square"], [3, 4], settings)
    second = generate(pipe, ["a circle", "a big square"], [3, 4], settings)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first[0, 0] - first[0, 1]).max() > 0.1  # different seeds, different images


def test_named_attributes_are_obeyed(pipe):
    prompts = ["a blue square", "a red triangle", "a green cross", "a big yellow circle on a black background"]
    judge = OracleJudge()
    for prompt, images in zip(prompts, generate(pipe, prompts, SEEDS, SETTINGS)):
        assert np.mean(judge.matches(images, prompt)) >= 0.75, prompt


def test_time_edit_flips_the_planted_colour_and_undo_restores_it(pipe):
    before = blue_share(pipe, "a circle")
    assert before <= 0.25, f"unedited circles should rarely be blue (prior 4%), got {before:.0%}"
    with timelab.time_edit(pipe, "a circle", "a blue circle", lamb=0.1):
        assert blue_share(pipe, "a circle") >= 0.75
        assert blue_share(pipe, "a big circle") >= 0.6  # a prompt the edit never saw
        assert blue_share(pipe, "a square") <= 0.25     # another object keeps its colour
    assert blue_share(pipe, "a circle") == before
