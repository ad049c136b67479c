"""TinyWorld's training code: a two-step run writes a loadable pipeline, reproducibly from its seed."""

import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from timelab.cli import build_parser
from timelab.tinyworld.caption_code import attribute_basis, caption_code
from timelab.tinyworld.training import TrainConfig, train


def test_two_step_training_is_reproducible_and_loadable(tmp_path):
    config = TrainConfig(seed=3, steps=2, vae_steps=2, batch_size=8, threads=1)
    train(config, tmp_path / "a")
    train(config, tmp_path / "b")
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                 "vae/diffusion_pytorch_model.safetensors"):
        a, b = load_file(tmp_path / "a" / part), load_file(tmp_path / "b" / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "a", local_files_only=True)
    assert pipe.vae.config.scaling_factor != 0.18215  # set from the trained latents
    summary = json.loads((tmp_path / "a" / "training.json").read_text())
    assert summary["config"]["seed"] == 3 and summary["config"]["steps"] == 2


def test_caption_codes_are_additive_and_phrasing_free():
    basis = attribute_basis(64, seed=0)
    circle, square = caption_code("a circle", basis), caption_code("a square", basis)
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    assert cos(circle, caption_code("a photo of a circle", basis)) == pytest.approx(1.0)
    assert cos(circle, square) == pytest.approx(0.0, abs=1e-6)
    assert cos(circle, caption_code("a big circle", basis)) == pytest.approx(1 / (1 + 0.5**2) ** 0.5, abs=1e-6)
    assert caption_code("a circle", basis).norm() == pytest.approx(8.0)
    assert abs(float(circle.mean())) < 1e-6  # reachable by a LayerNorm output


def test_cli_has_tinyworld_train_and_measure():
    args = build_parser().parse_args(["tinyworld", "train", "--seed", "5", "--steps", "10", "--out", "x"])
    assert (args.seed, args.steps, str(args.out)) == (5, 10, "x") and callable(args.run)
    assert callable(build_parser().parse_args(["tinyworld", "measure", "--seeds", "4"]).run)
