"""The shipped TinyWorld model: loads offline as SD's classes, is deterministic, obeys stated colours
(one object and two), and a TIME edit flips its planted assumption and undoes exactly (small n, wide
margins).

Thresholds sit well below what the shipped model measured with these settings (8 seeds, 15 DDIM steps,
guidance 7.5, one thread); ``python -m pytest tests/test_tinyworld_model.py -q -s`` prints every share
compared against a threshold. Measured on the shipped model (trained with ``timelab tinyworld train
--seed 0 --preset full``, UNet 9000 steps), seeds 0-7:

- one object, every stated attribute: 'a blue square' 100%, 'a red triangle' 100%, 'a green cross' 75%,
  'a big yellow circle on a black background' 100%  (OBEYED = 0.6);
- two objects: stated colours are followed less often and unevenly (the model card: 62% of objects in
  fully stated two-object prompts have their colour); 'a green circle and a blue triangle' 75% / 100%,
  where the planted prior of either colour, unstated, is 4%  (SCENE_OBEYED = 0.3);
- 'a circle' -> 'a blue circle' at lambda 10: 'a circle' blue 75% (unedited 0%), 'a big circle' 100%,
  the circle of 'a circle on the left and a square on the right' 88%, 'a square' blue 0%
  (EFFICACY = 0.6, GENERALITY = 0.25, LEAK = 0.25). Not tested, because it is a limit and not a
  property to keep: the square *beside* the edited circle turned blue in 75% of those scenes, and at
  the paper's lambda 0.1 most squares drawn alone turn blue too (notebook 03 shows both).
"""

import re

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextModel, CLIPTokenizer

import timelab
from timelab.generation import GenerationSettings, generate
from timelab.tinyworld import MODEL_DIR, OracleJudge, shares, validated_lambda
from timelab.tinyworld.captions import describe

SEEDS = list(range(8))
SETTINGS = GenerationSettings(steps=15, guidance_scale=7.5, batch_size=64)
SCENE = "a green circle and a blue triangle"  # two objects, neither in its usual colour
ONE_OBJECT = ["a blue square", "a red triangle", "a green cross", "a big yellow circle on a black background"]
LAMB = 10.0  # the demo's lambda: at the paper's 0.1 the edit also turns squares blue on this model
OBEYED, SCENE_OBEYED = 0.6, 0.3  # shares of images (see the module docstring for what was measured)
EFFICACY, GENERALITY, LEAK = 0.6, 0.25, 0.25


@pytest.fixture
def pipe(tinyworld):
    """The shared TinyWorld (conftest.py), drawn with one thread: the model is tiny, one thread is
    fastest on a busy machine. The thread count is put back after the test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tinyworld
    torch.set_num_threads(threads)


def records(pipe, prompt: str) -> list[dict]:
    return OracleJudge().read(generate(pipe, [prompt], SEEDS, SETTINGS)[0])


def colour_share(found: list[dict], kind: str, colour: str) -> float:
    """Share of images whose object of ``kind`` is there and ``colour``."""
    return shares(found, "colour", kind).get(colour, 0.0)


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
        for word in ("a", "an", "of", "photo", "image", "picture", "left", "right", "top", "bottom", "and"):
            assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word


def test_same_seed_gives_the_same_images(pipe):
    settings = GenerationSettings(steps=5, guidance_scale=7.5)
    first = generate(pipe, ["a circle", "a circle on the left and a square on the right"], [3, 4], settings)
    second = generate(pipe, ["a circle", "a circle on the left and a square on the right"], [3, 4], settings)
    np.testing.assert_array_equal(first, second)
    assert first.shape[2:] == (32, 32, 3)
    assert np.abs(first[0, 0] - first[0, 1]).max() > 0.1  # different seeds, different images


def test_stated_colours_are_obeyed(pipe):
    """Every stated attribute of a one-object prompt (exact match by the judge), and each object's colour
    in a two-object scene."""
    judge = OracleJudge()
    drawn = generate(pipe, ONE_OBJECT + [SCENE], SEEDS, SETTINGS)
    for prompt, images in zip(ONE_OBJECT, drawn):
        obeyed = np.mean(judge.matches(images, prompt))
        print(f"{prompt!r}: {obeyed:.0%} of images show it")
        assert obeyed >= OBEYED, prompt
    found = judge.read(drawn[-1])
    for thing in describe(SCENE).objects:
        share = colour_share(found, thing["kind"], thing["colour"])
        print(f"{SCENE!r}: the {thing['kind']} is {thing['colour']} in {share:.0%}")
        assert share >= SCENE_OBEYED, f"{SCENE!r}: the {thing['kind']} should be {thing['colour']}"


def test_time_edit_flips_the_planted_colour_and_undo_is_exact(pipe):
    scene = "a circle on the left and a square on the right"
    prompts = ["a circle", "a big circle", scene, "a square"]
    before = generate(pipe, prompts, SEEDS, SETTINGS)
    found = [OracleJudge().read(images) for images in before]
    unedited = colour_share(found[0], "circle", "blue")
    print(f"unedited: 'a circle' blue {unedited:.0%}")
    assert unedited <= 0.25, f"unedited circles should rarely be blue (prior 4%), got {unedited:.0%}"
    with timelab.time_edit(pipe, "a circle", "a blue circle", lamb=LAMB) as edit:
        after = generate(pipe, prompts, SEEDS, SETTINGS)
    edited = [OracleJudge().read(images) for images in after]
    circle = {p: colour_share(r, "circle", "blue") for p, r in zip(prompts[:3], edited)}
    square = {p: colour_share(r, "square", "blue") for p, r in zip(prompts[2:], edited[2:])}
    print(f"edited: circles blue {circle}; squares blue {square}")
    assert circle["a circle"] >= EFFICACY
    assert circle["a big circle"] >= GENERALITY, "a prompt the edit never saw"
    assert circle[scene] >= GENERALITY, "the circle of a two-object scene"
    assert square["a square"] <= LEAK, "a square drawn alone keeps its colour"
    assert not edit.active
    np.testing.assert_array_equal(generate(pipe, prompts, SEEDS, SETTINGS), before)  # undo is exact


def test_the_validated_lambda_is_the_one_the_model_card_states(tmp_path):
    """``validated_lambda`` (the demo's default) reads the lambda the model card names as chosen on the
    validation split, and follows the folder it is given."""
    card = (MODEL_DIR / "README.md").read_text()
    stated = re.search(r"lambda chosen on a validation split .*?: \*\*([0-9.e+]+)\*\*", card).group(1)
    assert validated_lambda() == float(stated)
    (tmp_path / "figures.json").write_text('{"time": {"chosen_lamb": 1000.0}}')
    assert validated_lambda(tmp_path) == 1000.0
