"""``load_pipeline(..., variant="fp16")`` reads a checkpoint's half-size weight files (notebook 06's
memory plan for a 15 GB GPU: SD 1.4 ships them), offline on a tiny random-weight pipeline."""

import pytest
import torch

import timelab
from timelab.testing import tiny_pipeline


@pytest.fixture(scope="module")
def fp16_folder(tmp_path_factory):
    """A tiny SD 1.x pipeline saved with only ``fp16`` variant files (weights rounded to float16)."""
    folder = tmp_path_factory.mktemp("tiny-fp16")
    pipe = tiny_pipeline("sd1").to(dtype=torch.float16)
    pipe.save_pretrained(folder, variant="fp16")
    return folder, {n: p.detach().clone() for n, p in pipe.unet.named_parameters()}


def test_variant_reads_the_fp16_files(fp16_folder):
    folder, saved = fp16_folder
    assert list(folder.glob("unet/*.fp16.safetensors")), "the fixture should write variant files"
    pipe = timelab.load_pipeline(folder, device="cpu", dtype=torch.float16, variant="fp16")
    assert pipe.unet.dtype == torch.float16
    loaded = dict(pipe.unet.named_parameters())
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[n], loaded[n]) for n in saved), "the fp16 files' weights, bit for bit"


def test_without_the_variant_a_variant_only_folder_is_refused(fp16_folder):
    folder, _ = fp16_folder
    with pytest.raises((OSError, ValueError, EnvironmentError)):
        timelab.load_pipeline(folder, device="cpu", dtype=torch.float32)


@pytest.mark.parametrize("name", ["tinyworld", "tiny-random"])
def test_models_without_variants_refuse_one(name):
    with pytest.raises(ValueError, match="no weight variants"):
        timelab.load_pipeline(name, device="cpu", variant="fp16")
