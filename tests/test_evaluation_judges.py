"""ClipJudge on small random CLIPs built from configs (never downloaded): SD's tokenizer at any image size,
and TinyWorld's layout (its own tokenizer, 32x32 images, loaded from a model folder's ``clip/``); and the
TinyWorld oracle adapter on rendered scenes of one and two objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timelab.evaluation import ClipJudge, OracleJudgeAdapter, tinyworld_clip_judge
from timelab.clip_pixels import CLIP_MEAN, CLIP_STD
from timelab.tinyworld import MODEL_DIR, spec
from timelab.tinyworld.render import Scene, Thing, render

torch.set_num_threads(1)


def tiny_clip(vocab_size: int, image_size: int, patch_size: int, **text):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, **text),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=patch_size),
        projection_dim=16,
    ))


@pytest.fixture(scope="module")
def clip_judge(clip_tokenizer):
    return ClipJudge(tiny_clip(49408, 32, 8), clip_tokenizer, device="cpu", batch_size=3)


def images(n: int, size=(32, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *size, 3), dtype=np.float32)


def normalised(x: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(x).permute(0, 3, 1, 2) - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def test_preprocess_normalises_and_crops(clip_judge):
    x = images(2)
    assert torch.allclose(clip_judge.preprocess(x), normalised(x), atol=1e-6)  # right size: normalisation only
    flat = np.full((1, 40, 64, 3), 0.5, dtype=np.float32)  # any size: short side to 32, centre 32x32
    out = clip_judge.preprocess(flat)
    assert out.shape == (1, 3, 32, 32)
    assert torch.allclose(out[0, :, 5, 20], (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD), atol=1e-5)


def test_choice_agrees_with_clip_logits(clip_judge, clip_tokenizer):
    x = images(7, size=(16, 16))
    texts = ["a red circle", "a blue circle", "a photo of a dog", "a cat", "a green square"]
    rng = np.random.default_rng(1)
    pairs = [tuple(rng.choice(texts, size=2, replace=False)) for _ in range(len(x))]
    choices = clip_judge.choose(x, pairs)
    # Independently: CLIP's own forward pass, texts padded to 77, image-text logits, higher logit wins.
    tokens = clip_tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        logits = clip_judge.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                  pixel_values=clip_judge.preprocess(x)).logits_per_image
    expected = [int(logits[i, texts.index(b)] > logits[i, texts.index(a)]) for i, (a, b) in enumerate(pairs)]
    assert choices.tolist() == expected
    assert choices.dtype == np.int64 and choices.shape == (7,)


def test_swapping_candidates_flips_every_choice(clip_judge):
    x = images(5, seed=3)
    pairs = [("a red circle", "a blue circle")] * 5
    first = clip_judge.choose(x, pairs)
    second = clip_judge.choose(x, [(b, a) for a, b in pairs])
    assert (first + second == 1).all()
    assert (clip_judge.choose(x, [("a cat", "a cat")] * 5) == 0).all(), "a tie is not a win for the second"


def test_clip_judge_rejects_mismatched_input(clip_judge):
    with pytest.raises(ValueError, match="one candidate pair per image"):
        clip_judge.choose(images(2), [("a", "b")])
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        clip_judge.choose(images(2)[0], [("a", "b")])


@pytest.fixture(scope="module")
def tinyworld_folder(tmp_path_factory):
    """A TinyWorld-shaped model folder holding only ``clip/``: a random tiny CLIP at 32x32 pixels with
    TinyWorld's own tokenizer, saved the way training saves it."""
    from timelab.tinyworld.tokenizer import build_tokenizer
    from timelab.tinyworld import CLIP_FOLDER

    folder = tmp_path_factory.mktemp("tinyworld")
    tokenizer = build_tokenizer(folder / "words")
    model = tiny_clip(len(tokenizer), spec.IMAGE_SIZE, 4, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder / CLIP_FOLDER)
    tokenizer.save_pretrained(folder / CLIP_FOLDER)
    return folder


def scene_images(*scenes: Scene) -> np.ndarray:
    return np.stack([render(s) for s in scenes])


def test_tinyworld_clip_judge_loads_from_a_model_folder_and_never_resizes(tinyworld_folder, monkeypatch):
    judge = tinyworld_clip_judge(tinyworld_folder, device="cpu")
    assert judge.image_size == spec.IMAGE_SIZE == 32
    assert judge.tokenizer("a blue circle").input_ids[1:-1] == [judge.tokenizer.convert_tokens_to_ids(w + "</w>")
                                                                for w in ("a", "blue", "circle")]
    x = scene_images(Scene.single("circle", "blue"), Scene.single("square", "green", "small", "left", "black"))

    def no_resizing(*args, **kwargs):
        raise AssertionError("a 32x32 image must reach the tiny CLIP as it is")

    monkeypatch.setattr(torch.nn.functional, "interpolate", no_resizing)
    assert torch.equal(judge.preprocess(x), normalised(x))


def test_tinyworld_clip_choice_is_the_higher_cosine(tinyworld_folder):
    """Cosines computed here from the two towers and their projections, not through the judge."""
    judge = tinyworld_clip_judge(tinyworld_folder, device="cpu")
    model, tok = judge.model, judge.tokenizer
    x = scene_images(Scene.single("circle", "blue"), Scene.single("circle", "red", "small", "top"),
                     Scene((Thing("circle", "red", "big", "left"), Thing("square", "green", "big", "right")), "black"),
                     Scene.single("cross", "yellow", "big", "bottom", "black"))
    texts = ["a circle", "a blue circle", "a red square on the left", "a cross", "a photo of a yellow cross",
             "a circle on the left and a square on the right"]
    pairs = [(texts[0], texts[1]), (texts[1], texts[0]), (texts[5], texts[2]), (texts[3], texts[4])]
    with torch.no_grad():
        tokens = tok(texts, padding="max_length", max_length=77, return_tensors="pt")
        hidden = model.text_model(input_ids=tokens["input_ids"]).last_hidden_state
        ends = (tokens["input_ids"] == tok.eos_token_id).int().argmax(-1)  # the first end token: CLIP's pooling
        text = model.text_projection(hidden[torch.arange(len(texts)), ends])
        image = model.visual_projection(model.vision_model(pixel_values=normalised(x)).pooler_output)
    cosine = torch.nn.functional.cosine_similarity(image[:, None], text[None], dim=-1)  # (images, texts)
    expected = [int(cosine[i, texts.index(b)] > cosine[i, texts.index(a)]) for i, (a, b) in enumerate(pairs)]
    got = judge.choose(x, pairs)
    assert got.tolist() == expected and got.shape == (4,) and got.dtype == np.int64
    assert (judge.choose(x, [(b, a) for a, b in pairs]) + got == 1).all()


def test_tinyworld_clip_judge_defaults_to_the_shipped_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TinyWorld CLIP"):
        tinyworld_clip_judge(tmp_path)
    if (MODEL_DIR / "clip" / "config.json").is_file():
        assert tinyworld_clip_judge(device="cpu").image_size == spec.IMAGE_SIZE
    else:
        with pytest.raises(FileNotFoundError, match="no TinyWorld CLIP"):
            tinyworld_clip_judge()


def two(a: Thing, b: Thing, background: str = "white") -> Scene:
    return Scene((a, b), background)


def test_oracle_adapter_picks_the_caption_the_pixels_support():
    judge = OracleJudgeAdapter()
    blue_circle_green_square = two(Thing("circle", "blue", "big", "left"), Thing("square", "green", "big", "right"))
    red_circle_blue_square = two(Thing("circle", "red", "small", "left"), Thing("square", "blue", "big", "right"))
    left_right = ("a circle on the left and a square on the right",
                  "a blue circle on the left and a square on the right")
    neighbour = ("a square on the left and a circle on the right",
                 "a blue square on the left and a circle on the right")
    cases = [
        # (scene, (first, second), expected choice)
        (Scene.single("circle", "blue"), ("a circle", "a blue circle"), 1),
        (Scene.single("circle", "red"), ("a circle", "a blue circle"), 0),
        (Scene.single("square", "green", "small", "left", "black"), ("a square", "a blue square"), 0),
        (Scene.single("square", "blue", "small", "left", "black"), ("a small square", "a small blue square"), 1),
        (Scene.single("cross", "yellow"), ("a purple cross", "a yellow cross"), 1),
        (Scene.single("cross", "purple"), ("a purple cross", "a yellow cross"), 0),
        (Scene.single("cross", "red"), ("a purple cross", "a yellow cross"), 0),  # neither: a tie
        (Scene.single("triangle", "blue", background="black"),
         ("a triangle on a white background", "a blue triangle on a white background"), 1),
        # Two objects: only the object whose attribute the captions disagree on decides ...
        (blue_circle_green_square, left_right, 1),
        (red_circle_blue_square, left_right, 0),
        # ... the caption's stated positions weigh alike on both sides, right or wrong,
        (blue_circle_green_square, ("a circle at the top and a square at the bottom",
                                    "a blue circle at the top and a square at the bottom"), 1),
        # ... and a blue neighbour does not make the square blue, nor a blue square the circle.
        (blue_circle_green_square, neighbour, 0),
        (red_circle_blue_square, neighbour, 1),
        (Scene.single("triangle", "purple", "big", "top"),
         ("a purple triangle at the top and a circle at the bottom",
          "a purple triangle at the top and a blue circle at the bottom"), 0),
        # A missing object scores below any object that is there.
        (Scene.single("circle", "blue"), ("a square", "a blue square"), 0),  # no square: a tie
        (Scene.single("circle", "blue"), ("a blue square", "a circle"), 1),
        (Scene.single("circle", "red"), ("a red square", "a blue circle"), 1),  # -2 < -1
        (Scene.single("circle", "blue"), ("a circle and a square", "a blue circle and a square"), 1),
        (Scene.single("square", "green"), ("a square on the left and a circle on the right",
                                           "a square on the left and a blue circle on the right"), 0),
    ]
    got = judge.choose(scene_images(*(c[0] for c in cases)), [c[1] for c in cases])
    assert got.tolist() == [c[2] for c in cases]
    swapped = judge.choose(scene_images(*(c[0] for c in cases)), [(b, a) for _, (a, b), _ in cases])
    assert not (got & swapped).any(), "never both orders: the second wins only when strictly higher"


def test_oracle_score_by_hand():
    record = {"background": "white", "objects": [
        {"kind": "circle", "colour": "blue", "size": "small", "position": "left"},
        {"kind": "square", "colour": "green", "size": "big", "position": "right"}]}
    score = OracleJudgeAdapter.score
    assert score(record, "a circle") == 0  # the kind alone: there, nothing stated
    assert score(record, "a big blue circle") == 1 - 1
    assert score(record, "a photo of a red square on a black background") == -1 - 1
    assert score(record, "a blue triangle at the top") == -(1 + 2)  # no triangle, two attributes stated
    assert score(record, "a triangle") == -1
    assert score(record, "a small blue circle on the left and a big square on the right on a white background") \
        == 3 + 2 + 1
    assert score(record, "a big red circle at the top and a purple cross at the bottom") == -3 - (1 + 2)


def test_oracle_records_are_the_judges_reading():
    scene = two(Thing("triangle", "red", "big", "top"), Thing("cross", "yellow", "small", "bottom"), "black")
    judge = OracleJudgeAdapter()
    (record,) = judge.records(scene_images(scene))
    assert record == {"background": "black", "objects": [
        {"kind": "triangle", "colour": "red", "size": "big", "position": "top"},
        {"kind": "cross", "colour": "yellow", "size": "small", "position": "bottom"}]}
    assert judge.decide([record], [("a cross", "a yellow cross")]).tolist() == [1]
    with pytest.raises(ValueError, match="one candidate pair per image"):
        judge.decide([record], [])
