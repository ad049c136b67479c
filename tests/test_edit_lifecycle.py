"""The edit lifecycle without surprises: refused files change nothing, equal-norm models are told apart,
undo notices foreign writes, edits load across dtypes, float64-less devices, unknown words."""

from __future__ import annotations

import warnings

import pytest
import torch

from timelab import load_edit, reset_edits, time_edit
from timelab.editing import EditSettings, UnknownWordsWarning, closed_form, cross_attention_layers, projections
from timelab.editing import solver
from timelab.testing import tiny_pipeline

SOURCE, DESTINATION = "a pack of roses", "a pack of blue roses"


def projection_weights(pipe) -> dict[str, torch.Tensor]:
    return {n: lin.weight.detach().clone() for n, lin in projections(cross_attention_layers(pipe.unet)).items()}


def assert_same(pipe, expected: dict[str, torch.Tensor]) -> None:
    for name, weight in projection_weights(pipe).items():
        assert torch.equal(weight, expected[name]), f"{name} changed"


def test_a_refused_file_leaves_the_active_edit_in_place(sd1_pipe, tmp_path):
    other = tiny_pipeline("sd1", seed=1)
    foreign = time_edit(other, SOURCE, DESTINATION).save(tmp_path / "foreign.safetensors")
    mine = time_edit(sd1_pipe, "a cat", "a black cat")
    edited = projection_weights(sd1_pipe)
    with pytest.raises(ValueError, match="original weights differ"):
        load_edit(sd1_pipe, foreign)
    assert mine.active, "the refused file must not undo the active edit"
    assert_same(sd1_pipe, edited)


def test_a_file_checks_against_the_original_weights_when_an_edit_is_active(sd1_pipe, tmp_path):
    """Made from the original weights, the file loads while another edit is active (which it replaces)."""
    roses = time_edit(sd1_pipe, SOURCE, DESTINATION, lamb=0.3, edit_keys=False)
    path = roses.save(tmp_path / "roses.safetensors")
    roses_weights = projection_weights(sd1_pipe)
    time_edit(sd1_pipe, "a cat", "a black cat")  # now a different edit is active
    loaded = load_edit(sd1_pipe, path)
    assert_same(sd1_pipe, roses_weights)
    assert loaded.settings == EditSettings(lamb=0.3, edit_keys=False)
    assert not loaded.stacked


def test_models_whose_matrices_have_equal_norms_are_told_apart(sd1_pipe, tmp_path):
    """A permutation of each matrix's rows keeps every norm (and every other spectral figure) but is another model."""
    reset_edits(sd1_pipe)
    unedited = projection_weights(sd1_pipe)
    path = time_edit(sd1_pipe, SOURCE, DESTINATION).save(tmp_path / "roses.safetensors")
    twin = tiny_pipeline("sd1")
    with torch.no_grad():
        for linear in projections(cross_attention_layers(twin.unet)).values():
            linear.weight.copy_(linear.weight.flip(0))
    for name, weight in projection_weights(twin).items():
        assert not torch.equal(weight, unedited[name])
        assert weight.norm() == pytest.approx(float(unedited[name].norm()), rel=1e-6)
    before = projection_weights(twin)
    with pytest.raises(ValueError, match="made for another model"):
        load_edit(twin, path)
    assert_same(twin, before)


def test_an_edit_made_in_float32_loads_into_the_float16_model_and_back(sd1_pipe, tmp_path):
    edit32 = time_edit(sd1_pipe, SOURCE, DESTINATION)
    path32 = edit32.save(tmp_path / "fp32.safetensors")
    reset_edits(sd1_pipe)
    half = tiny_pipeline("sd1").to(dtype=torch.float16)  # the same checkpoint, loaded in half precision
    loaded = load_edit(half, path32)
    for name, weight in projection_weights(half).items():
        assert torch.equal(weight, edit32.edited[name].to(torch.float16)), name
    path16 = time_edit(half, SOURCE, DESTINATION).save(tmp_path / "fp16.safetensors")
    assert load_edit(sd1_pipe, path16).active  # the float32 model is recognised by the float16 file too
    assert loaded is not None


def test_undo_refuses_after_a_foreign_write_and_force_restores(sd1_pipe):
    before = projection_weights(sd1_pipe)
    edit = time_edit(sd1_pipe, SOURCE, DESTINATION)
    name = edit.layer_names[3]
    linear = sd1_pipe.unet.get_submodule(name)
    with torch.no_grad():
        linear.weight.add_(0.01)  # e.g. a LoRA fused after the edit
    fused = projection_weights(sd1_pipe)
    with pytest.raises(RuntimeError, match=rf"cannot undo: {name.replace('.', '[.]')} changed since"):
        edit.undo()
    assert edit.active
    assert_same(sd1_pipe, fused)
    edit.undo(force=True)
    assert not edit.active
    assert_same(sd1_pipe, before)


# ------------------------------------------------------------------------ devices without float64
class NoFloat64(torch.Tensor):
    """A tensor on a simulated device that has no float64 (as Apple's MPS): any float64 result raises,
    and moving a tensor to the CPU (``.to("cpu")``, ``.cpu()``) gives an ordinary CPU tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        to_cpu = func is torch.Tensor.cpu or (
            func is torch.Tensor.to and any(str(a) == "cpu" for a in (*args[1:], kwargs.get("device"))))
        if to_cpu:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs).as_subclass(torch.Tensor)
        result = super().__torch_function__(func, types, args, kwargs)
        if isinstance(result, torch.Tensor) and result.dtype == torch.float64:
            raise TypeError("simulated device: float64 is not supported")
        return result


def test_a_device_without_float64_is_factored_on_the_cpu(monkeypatch):
    g = torch.Generator().manual_seed(0)
    n, d, out, lamb = 30, 16, 12, 0.1
    C, V, W = torch.randn(n, d, generator=g), torch.randn(n, out, generator=g), torch.randn(out, d, generator=g)
    on_device = [t.as_subclass(NoFloat64) for t in (W, C, V)]
    with pytest.raises(TypeError, match="float64 is not supported"):  # the simulation bites ...
        closed_form(*on_device, lamb=lamb)
    monkeypatch.setattr(solver, "supports_float64", lambda device: False)  # ... until the solver knows
    solved = closed_form(*on_device, lamb=lamb)
    C64, V64, W64 = C.double(), V.double(), W.double()
    expected = torch.linalg.solve(lamb * torch.eye(d, dtype=torch.float64) + C64.T @ C64,
                                  (lamb * W64 + V64.T @ C64).T).T
    assert solved.dtype == torch.float32 and isinstance(solved, NoFloat64), "the result is written back"
    torch.testing.assert_close(solved.as_subclass(torch.Tensor).double(), expected, rtol=1e-5, atol=1e-5)


def float64_factor_runs_on(device: str) -> bool:
    """Found out on the device, not looked up: whether a float64 Cholesky factor and solve run there."""
    try:
        A = 2 * torch.eye(3, dtype=torch.float64, device=device)
        torch.cholesky_solve(torch.ones(3, 1, dtype=torch.float64, device=device), torch.linalg.cholesky(A)).cpu()
    except (TypeError, RuntimeError):
        return False
    return True


_MPS = getattr(torch.backends, "mps", None)
DEVICES_HERE = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
                + (["mps"] if _MPS is not None and _MPS.is_available() else []))


@pytest.mark.parametrize("device", DEVICES_HERE)
def test_the_solver_knows_which_devices_have_float64(device):
    """``supports_float64`` against what the device does with float64, on every device this machine
    has (Apple's MPS, which has none, is checked where it is: on a Mac)."""
    assert solver.supports_float64(torch.device(device)) == float64_factor_runs_on(device)


# -------------------------------------------------------------------------------- unknown words
def test_words_the_tokenizer_spells_out_are_named(tinyworld):
    tiny = tiny_pipeline("sd1")  # Stable Diffusion's real tokenizer knows roses
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)
        time_edit(tiny, SOURCE, DESTINATION).undo()
    with pytest.warns(UnknownWordsWarning, match=r"'roses'.*all_words") as caught:
        time_edit(tinyworld, "a circle of roses", "a blue circle of roses").undo()
    assert len(caught) == 1 and "'circle'" not in str(caught[0].message) and "'blue'" not in str(caught[0].message)


def test_a_layer_prefix_given_as_one_string_is_one_prefix(sd1_pipe):
    edit = time_edit(sd1_pipe, SOURCE, DESTINATION, layers="up_blocks")
    assert edit.settings.layers == ("up_blocks",)
    assert edit.layer_names and all(n.startswith("up_blocks.") for n in edit.layer_names)
