"""Hostile input: non-finite edit weights, a damaged edit file, a model path that is no model folder.

Each is refused with a one-sentence error naming the problem and its fix, before the model is touched.
Everything here is offline: the tiny random-weight pipeline is built from configs, and no path below
reaches the hub.
"""

import json
import math
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import timelab
import timelab.cli
from timelab import load_edit, time_edit
from timelab.editing.settings import EditSettings
from timelab.editing.solver import check_lambda

SOURCE, DESTINATION = "a circle", "a blue circle"


@pytest.fixture(scope="module")
def pipe():
    return timelab.load_pipeline("tiny-random", device="cpu")


def unet_weights(pipe):
    return {name: p.detach().clone() for name, p in pipe.unet.named_parameters()}


def assert_unchanged(pipe, before):
    for name, value in pipe.unet.named_parameters():
        assert torch.equal(value, before[name]), f"{name} changed"


@pytest.fixture
def offline(monkeypatch):
    """No hub call can go out, whatever diffusers would try (the env var and the constant it is read into)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True, raising=False)


# 1. Non-finite lambda / preserve_weight: inf used to solve to "change nothing" without a word.

NON_FINITE = [math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
def test_non_finite_lambda_is_refused_before_the_model_is_touched(pipe, value):
    before = unet_weights(pipe)
    with pytest.raises(ValueError, match=r"lamb must be > 0 and finite, in \(0, inf\)") as error:
        time_edit(pipe, SOURCE, DESTINATION, lamb=value)
    assert str(value) in str(error.value)
    assert_unchanged(pipe, before)
    with pytest.raises(ValueError, match=r"in \(0, inf\)"):
        check_lambda(value)  # what the lab's controls use


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
def test_non_finite_preserve_weight_is_refused_before_the_model_is_touched(pipe, value):
    before = unet_weights(pipe)
    with pytest.raises(ValueError, match=r"preserve_weight must be > 0 and finite, in \(0, inf\)") as error:
        time_edit(pipe, SOURCE, DESTINATION, preserve=["a square"], preserve_weight=value)
    assert str(value) in str(error.value)
    assert_unchanged(pipe, before)
    with pytest.raises(ValueError, match=r"preserve_weight must be > 0 and finite"):
        EditSettings(preserve_weight=value)


def test_finite_weights_still_edit(pipe):
    before = unet_weights(pipe)
    with time_edit(pipe, SOURCE, DESTINATION, lamb=1e6, preserve=["a square"], preserve_weight=1e-6) as edit:
        assert edit.lamb == 1e6 and edit.settings.preserve_weight == 1e-6
        assert any(not torch.equal(edit.edited[n], edit.original[n]) for n in edit.edited)
    assert_unchanged(pipe, before)


# 2. A damaged edit file: the file's own matrices are checked against digests stored at save time.


def _header(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return data, 8 + length, json.loads(data[8:8 + length])


def _saved_edit(pipe, tmp_path):
    edit = time_edit(pipe, SOURCE, DESTINATION)
    path = edit.save(tmp_path / "circle.safetensors")
    saved = {name: weight.clone() for name, weight in edit.edited.items()}
    edit.undo()
    return path, saved


def test_a_flipped_byte_in_a_stored_matrix_is_refused_naming_it(pipe, tmp_path):
    path, saved = _saved_edit(pipe, tmp_path)
    data, start, header = _header(path)
    name = sorted(n for n in header if n != "__metadata__")[1]
    begin, end = header[name]["data_offsets"]
    damaged = bytearray(data)
    damaged[start + (begin + end) // 2] ^= 0x01  # one bit of one byte, in the middle of that matrix
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(bytes(damaged))

    other = time_edit(pipe, "a square", "a red square")  # an active edit the refused load must leave alone
    before = unet_weights(pipe)
    with pytest.raises(ValueError, match="damaged") as error:
        load_edit(pipe, bad)
    assert name in str(error.value) and "save the edit again" in str(error.value)
    assert_unchanged(pipe, before)
    assert timelab.editing.active_edits(pipe) == [other]
    other.undo()

    loaded = load_edit(pipe, path)  # the intact file still loads, bit for bit
    try:
        assert sorted(loaded.edited) == sorted(saved)
        for matrix, weight in saved.items():
            assert torch.equal(pipe.unet.get_submodule(matrix).weight, weight), matrix
    finally:
        loaded.undo()


def test_an_unreadable_header_is_a_value_error(pipe, tmp_path):
    path, _ = _saved_edit(pipe, tmp_path)
    data = bytearray(path.read_bytes())
    data[8] ^= 0xFF  # the header's opening brace: no longer JSON
    path.write_bytes(bytes(data))
    before = unet_weights(pipe)
    with pytest.raises(ValueError, match="damaged or not an edit file"):
        load_edit(pipe, path)
    assert_unchanged(pipe, before)


def test_an_edit_file_without_stored_digests_is_refused_with_the_reason(pipe, tmp_path):
    path, _ = _saved_edit(pipe, tmp_path)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    older = tmp_path / "older.safetensors"
    save_file(tensors, str(older), metadata={k: v for k, v in meta.items() if k != "stored_digests"})
    before = unet_weights(pipe)
    with pytest.raises(ValueError, match="cannot be checked for damage; make the edit again"):
        load_edit(pipe, older)
    assert_unchanged(pipe, before)


# 3. A model path that is no model folder: one line naming it, not a traceback about the network.


def _cli_edit(tmp_path, model, capsys):
    code = timelab.cli.main(["edit", SOURCE, DESTINATION, "--model", model, "--device", "cpu",
                             "--out", str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    return code, err.strip().splitlines()


def test_cli_missing_model_folder_is_one_line(tmp_path, capsys, offline):
    missing = str(tmp_path / "nope")
    code, lines = _cli_edit(tmp_path, missing, capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("timelab edit: error: no model folder at"), lines
    assert missing in lines[0]
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_folder_without_model_index_is_one_line(tmp_path, capsys, offline):
    folder = tmp_path / "empty"
    folder.mkdir()
    code, lines = _cli_edit(tmp_path, str(folder), capsys)
    assert code == 2
    assert len(lines) == 1 and "has no model_index.json" in lines[0] and str(folder) in lines[0], lines


def test_cli_file_instead_of_folder_is_one_line(tmp_path, capsys, offline):
    file = tmp_path / "model.ckpt"
    file.write_bytes(b"not a pipeline")
    code, lines = _cli_edit(tmp_path, str(file), capsys)
    assert code == 2
    assert len(lines) == 1 and "is a file, not a folder" in lines[0] and str(file) in lines[0], lines


@pytest.fixture
def diffusers_calls(monkeypatch):
    """``AutoPipelineForText2Image.from_pretrained`` replaced by a recorder (nothing is loaded)."""
    from diffusers import AutoPipelineForText2Image

    calls = []

    class Loaded:
        def set_progress_bar_config(self, **_):
            pass

        def to(self, *_):
            return self

    def from_pretrained(name_or_path, **_):
        calls.append(name_or_path)
        return Loaded()

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", from_pretrained)
    return calls


def test_load_pipeline_checks_local_paths_before_diffusers(tmp_path, monkeypatch, offline, diffusers_calls):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nomodel").mkdir()
    for bad, error in [(str(tmp_path / "nope"), FileNotFoundError), ("./nope", FileNotFoundError),
                       ("~/nope", FileNotFoundError), ("nomodel", ValueError)]:
        with pytest.raises(error, match="model") as raised:
            timelab.load_pipeline(bad, device="cpu")
        assert bad in str(raised.value)
    assert diffusers_calls == []

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    timelab.load_pipeline("~/model", device="cpu")  # a real folder: diffusers gets it, ~ expanded
    timelab.load_pipeline("CompVis/stable-diffusion-v1-4", device="cpu")  # a hub id: untouched
    assert diffusers_calls == [str(tmp_path / "model"), "CompVis/stable-diffusion-v1-4"]
