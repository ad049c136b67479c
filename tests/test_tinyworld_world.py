"""TinyWorld's world: renderer, judge, captions and tokenizer (no model needed)."""

import numpy as np
import pytest

from timelab.tinyworld import spec
from timelab.tinyworld.captions import all_words, caption, sample_example, stated_attributes
from timelab.tinyworld.judge import OracleJudge, shares
from timelab.tinyworld.render import Scene, all_scenes, render
from timelab.tinyworld.tokenizer import build_tokenizer


def test_judge_reads_every_rendered_scene_exactly():
    scenes = all_scenes()
    assert len(scenes) == len(spec.KINDS) * len(spec.COLOURS) * len(spec.SIZES) * len(spec.BACKGROUNDS)
    records = OracleJudge().read(np.stack([render(s) for s in scenes]))
    truth = [{"kind": s.kind, "colour": s.colour, "size": s.size, "background": s.background} for s in scenes]
    assert records == truth


def test_judge_survives_mild_noise_and_rejects_blank_images():
    rng = np.random.default_rng(0)
    scenes = all_scenes()
    noisy = np.clip(np.stack([render(s) for s in scenes]) + rng.normal(0, 0.08, (len(scenes), 16, 16, 3)), 0, 1)
    records = OracleJudge().read(noisy)
    correct = [r["kind"] == s.kind and r["colour"] == s.colour and r["size"] == s.size
               for r, s in zip(records, scenes)]
    assert np.mean(correct) >= 0.98
    blank = np.full((16, 16, 3), spec.BACKGROUNDS["black"], dtype=np.float32)
    assert OracleJudge().read(blank)[0]["kind"] == "none"


def test_matches_checks_only_stated_attributes():
    image = render(Scene("circle", "red", "big", "white"))
    judge = OracleJudge()
    assert judge.matches(image, "a photo of a circle") == [True]
    assert judge.matches(image, "a big red circle on a white background") == [True]
    assert judge.matches(image, "a blue circle") == [False]
    assert judge.matches(image, "a small circle") == [False]
    assert judge.matches(image, "a square") == [False]


def test_sampler_plants_the_colour_prior_in_captions_that_omit_colour():
    rng = np.random.default_rng(1)
    omitted: dict[str, list[str]] = {k: [] for k in spec.KINDS}
    for _ in range(20000):
        scene, text = sample_example(rng)
        stated = stated_attributes(text)
        assert all(getattr(scene, a) == v for a, v in stated.items()), (scene, text)  # always true
        if text and "colour" not in stated:
            omitted[scene.kind].append(scene.colour)
    for kind, colours in omitted.items():
        for colour, share in spec.COLOUR_PRIOR[kind].items():
            assert abs(colours.count(colour) / len(colours) - share) < 0.03, (kind, colour)


def test_caption_grammar_and_parser_agree():
    scene = Scene("cross", "purple", "small", "black")
    text = caption(scene, {"colour", "size", "background"}, "a picture of ")
    assert text == "a picture of a small purple cross on a black background"
    assert stated_attributes(text) == {"kind": "cross", "colour": "purple", "size": "small", "background": "black"}
    with pytest.raises(ValueError, match="several colours"):
        stated_attributes("a red blue circle")


def test_shares_counts_values():
    records = [{"colour": "red"}] * 3 + [{"colour": "blue"}]
    assert shares(records, "colour") == {"blue": 0.25, "red": 0.75}


def test_tokenizer_makes_every_grammar_word_one_token(tmp_path):
    tokenizer = build_tokenizer(tmp_path)
    for word in all_words():
        ids = tokenizer(word).input_ids
        assert len(ids) == 3, (word, tokenizer.convert_ids_to_tokens(ids))
    ids = tokenizer("an image of a circle", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id
    # Words outside the grammar still tokenize, letter by letter.
    assert tokenizer.convert_ids_to_tokens(tokenizer("dog").input_ids)[1:-1] == ["d", "o", "g</w>"]
