"""ClipJudge on a small random CLIP built from a config (never downloaded), and the TinyWorld oracle adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timelab.evaluation import ClipJudge, OracleJudgeAdapter
from timelab.evaluation.judges import CLIP_MEAN, CLIP_STD
from timelab.tinyworld.render import Scene, render


@pytest.fixture(scope="module")
def clip_judge(clip_tokenizer):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    return ClipJudge(CLIPModel(config), clip_tokenizer, device="cpu", batch_size=3)


def images(n: int, size=(32, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *size, 3), dtype=np.float32)


def test_preprocess_normalises_and_crops(clip_judge):
    x = images(2)
    expected = (torch.from_numpy(x).permute(0, 3, 1, 2) - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(clip_judge.preprocess(x), expected, atol=1e-5)  # right size: normalisation only
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


def scene_images(*scenes: Scene) -> np.ndarray:
    return np.stack([render(s) for s in scenes])


def test_oracle_adapter_picks_the_caption_the_pixels_support():
    judge = OracleJudgeAdapter()
    cases = [
        # (scene, (first, second), expected choice)
        (Scene("circle", "blue", "big", "white"), ("a circle", "a blue circle"), 1),
        (Scene("circle", "red", "big", "white"), ("a circle", "a blue circle"), 0),
        (Scene("square", "green", "small", "black"), ("a square", "a blue square"), 0),
        (Scene("square", "blue", "small", "black"), ("a small square", "a small blue square"), 1),
        (Scene("cross", "yellow", "big", "white"), ("a purple cross", "a yellow cross"), 1),
        (Scene("cross", "purple", "big", "white"), ("a purple cross", "a yellow cross"), 0),
        (Scene("cross", "red", "big", "white"), ("a purple cross", "a yellow cross"), 0),  # neither: a tie
        (Scene("triangle", "blue", "big", "black"),
         ("a triangle on a white background", "a blue triangle on a white background"), 1),
    ]
    got = judge.choose(scene_images(*(c[0] for c in cases)), [c[1] for c in cases])
    assert got.tolist() == [c[2] for c in cases]


def test_oracle_score_counts_agreements_minus_contradictions():
    record = {"kind": "circle", "colour": "blue", "size": "small", "background": "white"}
    assert OracleJudgeAdapter.score(record, "a big blue circle") == 1 + 1 - 1
    assert OracleJudgeAdapter.score(record, "a photo of a red square on a black background") == -3
