"""TIME edits on tiny SD 1.x / SD 2.x / SDXL pipelines: effect, undo, stacking, save/load, errors."""

import pytest
import torch

import timelab
from timelab import align_tokens, load_edit, time_edit
from timelab.editing import cross_attention_layers, encode_prompts, projections

from conftest import seeded

SOURCE, DESTINATION = "a pack of roses", "a pack of blue roses"


def all_projection_weights(pipe):
    return {n: p.detach().clone() for n, p in pipe.unet.named_parameters()}


def assert_weights_equal(pipe, expected):
    for name, value in pipe.unet.named_parameters():
        assert torch.equal(value, expected[name]), f"{name} differs"


def keys_and_targets(pipe, original_weight, sources, destinations):
    """Keys C (all source states) and targets V = W0 C*_pi (aligned destination states), from scratch."""
    keys, dest = encode_prompts(pipe, sources).double(), encode_prompts(pipe, destinations).double()
    rows, targets = [], []
    for p, (s, d) in enumerate(zip(sources, destinations)):
        pi = align_tokens(pipe.tokenizer, s, d)
        rows.append(keys[p])
        targets.append(dest[p, pi] @ original_weight.double().T)
    return torch.cat(rows), torch.cat(targets)


def excess_residual(weight, C, V):
    """Squared residual ||C W^T - V||^2 above the least-squares optimum (what any W' could reach)."""
    best = torch.linalg.lstsq(C, V).solution
    return ((C @ weight.double().T - V).norm() ** 2 - (C @ best - V).norm() ** 2).item()


def ridge_solution(weight, C, V, lamb):
    """Independent float64 normal-equation solve: W' (lambda I + C^T C) = lambda W + V^T C."""
    A = lamb * torch.eye(C.shape[1], dtype=torch.float64) + C.T @ C
    return torch.linalg.solve(A, (lamb * weight.double() + V.T @ C).T).T


def test_edit_equals_independent_solution_and_undo_is_bit_exact(pipe):
    before = all_projection_weights(pipe)
    projections_by_name = projections(cross_attention_layers(pipe.unet))
    sources = timelab.editing.augment_prompt(SOURCE)
    destinations = timelab.editing.augment_prompt(DESTINATION)
    problems = {n: keys_and_targets(pipe, lin.weight, sources, destinations) for n, lin in projections_by_name.items()}
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=0.1)
    assert sorted(edit.layer_names) == sorted(projections_by_name)
    for name, linear in projections_by_name.items():
        C, V = problems[name]
        expected = ridge_solution(before[name + ".weight"], C, V, 0.1)
        torch.testing.assert_close(linear.weight.double(), expected, rtol=1e-4, atol=1e-5)
    edit.undo()
    assert_weights_equal(pipe, before)


def test_residual_drops_by_a_large_factor(pipe):
    projections_by_name = projections(cross_attention_layers(pipe.unet))
    sources, destinations = [SOURCE], [DESTINATION]
    problems = {n: keys_and_targets(pipe, lin.weight, sources, destinations) for n, lin in projections_by_name.items()}
    with time_edit(pipe, SOURCE, DESTINATION, lamb=1e-4, augment=False) as edit:
        for name, (C, V) in problems.items():
            was, now = excess_residual(edit.original[name], C, V), excess_residual(edit.edited[name], C, V)
            assert now < was / 100, f"{name}: excess residual {was:.3g} -> {now:.3g}"


def test_edit_changes_generation_and_undo_restores_it(pipe):
    kwargs = dict(num_inference_steps=2, height=32, width=32, output_type="np")
    plain = pipe(SOURCE, generator=seeded(0), **kwargs).images
    with time_edit(pipe, SOURCE, DESTINATION):
        edited = pipe(SOURCE, generator=seeded(0), **kwargs).images
    restored = pipe(SOURCE, generator=seeded(0), **kwargs).images
    assert not (plain == edited).all()
    assert (plain == restored).all()


def test_keys_only_and_values_only(sd1_pipe):
    before = all_projection_weights(sd1_pipe)
    with time_edit(sd1_pipe, SOURCE, DESTINATION, edit_values=False) as edit:
        assert all(n.endswith("to_k") for n in edit.layer_names)
        for name, value in sd1_pipe.unet.named_parameters():
            changed = not torch.equal(value, before[name])
            assert changed == (name.endswith("attn2.to_k.weight")), name
    with time_edit(sd1_pipe, SOURCE, DESTINATION, edit_keys=False) as edit:
        assert all(n.endswith("to_v") for n in edit.layer_names)
    with pytest.raises(ValueError, match="nothing to edit"):
        time_edit(sd1_pipe, SOURCE, DESTINATION, edit_keys=False, edit_values=False)
    assert_weights_equal(sd1_pipe, before)


def test_layer_subset_by_name_prefix(sd1_pipe):
    with time_edit(sd1_pipe, SOURCE, DESTINATION, layers=["up_blocks"]) as edit:
        assert edit.layer_names and all(n.startswith("up_blocks.") for n in edit.layer_names)
    with pytest.raises(ValueError, match="no cross-attention layer matches 'nowhere'"):
        time_edit(sd1_pipe, SOURCE, DESTINATION, layers=["nowhere"])


def test_second_edit_starts_from_original_unless_stacked(sd1_pipe):
    before = all_projection_weights(sd1_pipe)
    fresh = time_edit(sd1_pipe, "a cat", "a black cat")
    expected = {n: w.clone() for n, w in fresh.edited.items()}
    fresh.undo()
    first = time_edit(sd1_pipe, SOURCE, DESTINATION)
    second = time_edit(sd1_pipe, "a cat", "a black cat")
    assert not first.active and second.active
    for name, weight in second.edited.items():
        assert torch.equal(weight, expected[name])
    stacked = time_edit(sd1_pipe, SOURCE, DESTINATION, stack=True)
    assert stacked.stacked and second.active
    assert any(not torch.equal(stacked.edited[n], first.edited[n]) for n in first.edited)
    with pytest.raises(RuntimeError, match="undo those first"):
        second.undo()
    stacked.undo()
    second.undo()
    assert_weights_equal(sd1_pipe, before)


def test_context_manager_restores_on_exception(sd1_pipe):
    before = all_projection_weights(sd1_pipe)
    with pytest.raises(KeyError):
        with time_edit(sd1_pipe, SOURCE, DESTINATION):
            raise KeyError("boom")
    assert_weights_equal(sd1_pipe, before)


def test_pairs_solved_together(sd1_pipe):
    edit = time_edit(sd1_pipe, [SOURCE, "a cat"], [DESTINATION, "a black cat"], augment=False)
    assert edit.source == [SOURCE, "a cat"]
    name = edit.layer_names[0]
    C, V = keys_and_targets(sd1_pipe, edit.original[name], [SOURCE, "a cat"], [DESTINATION, "a black cat"])
    assert excess_residual(edit.edited[name], C, V) < excess_residual(edit.original[name], C, V) / 20


def test_save_load_round_trip_is_bit_exact(pipe, tmp_path):
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=0.2)
    path = edit.save(tmp_path / "roses.safetensors")
    edited = all_projection_weights(pipe)
    edit.undo()
    loaded = load_edit(pipe, path)
    assert loaded.source == [SOURCE] and loaded.destination == [DESTINATION] and loaded.lamb == 0.2
    assert_weights_equal(pipe, edited)
    loaded.undo()
    assert_weights_equal(pipe, {n: edit.original.get(n[: -len(".weight")], w) for n, w in edited.items()})
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_edit_file_holds_only_edited_matrices_and_no_pickle(sd1_pipe, tmp_path):
    from safetensors import safe_open

    edit = time_edit(sd1_pipe, SOURCE, DESTINATION, edit_keys=False)
    path = edit.save(tmp_path / "values.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(edit.layer_names)
        meta = handle.metadata()
    assert meta["timelab_version"] == timelab.__version__ and '"edit_keys": false' in meta["settings"]


def test_edit_file_for_another_model_is_refused(sd1_pipe, tmp_path):
    from timelab.testing import tiny_pipeline

    path = time_edit(sd1_pipe, SOURCE, DESTINATION).save(tmp_path / "sd1.safetensors")
    other_shapes = tiny_pipeline("sd2")
    with pytest.raises(ValueError, match="made for another model"):
        load_edit(other_shapes, path)
    other_weights = tiny_pipeline("sd1", seed=1)
    before = all_projection_weights(other_weights)
    with pytest.raises(ValueError, match="weights differ"):
        load_edit(other_weights, path)
    assert_weights_equal(other_weights, before)
    with pytest.raises(ValueError, match="safetensors"):
        time_edit(sd1_pipe, SOURCE, DESTINATION).save(tmp_path / "edit.pt")
    with pytest.raises(FileNotFoundError):
        load_edit(sd1_pipe, tmp_path / "missing.safetensors")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_pipeline(sd1_pipe, dtype):
    sd1_pipe.to(dtype=dtype)
    try:
        name = next(iter(projections(cross_attention_layers(sd1_pipe.unet))))
        weight = sd1_pipe.unet.get_submodule(name).weight
        C, V = keys_and_targets(sd1_pipe, weight, [SOURCE], [DESTINATION])  # from the half-precision states
        expected = ridge_solution(weight, C, V, 0.1)
        with time_edit(sd1_pipe, SOURCE, DESTINATION, augment=False) as edit:
            assert edit.edited[name].dtype == dtype
            error = (edit.edited[name].double() - expected).abs().max() / expected.abs().max()
            assert error < 4 * torch.finfo(dtype).eps, f"relative error {error:.2e}"
    finally:
        sd1_pipe.to(dtype=torch.float32)


def test_sdxl_keys_are_the_concatenated_penultimate_states(sdxl_pipe):
    any_pipe = sdxl_pipe
    tok1, tok2 = any_pipe.tokenizer, any_pipe.tokenizer_2
    ids1 = tok1([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    ids2 = tok2([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    h1 = any_pipe.text_encoder(ids1, output_hidden_states=True).hidden_states[-2]
    h2 = any_pipe.text_encoder_2(ids2, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(encode_prompts(any_pipe, [SOURCE]), torch.cat([h1, h2], dim=-1))
    assert any_pipe.unet.get_submodule(next(iter(cross_attention_layers(any_pipe.unet)))).to_k.in_features == 64


def test_sd_keys_are_last_hidden_states(sd1_pipe):
    ids = sd1_pipe.tokenizer([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.testing.assert_close(encode_prompts(sd1_pipe, [SOURCE]), sd1_pipe.text_encoder(ids)[0])


def test_bad_input_errors(sd1_pipe):
    before = all_projection_weights(sd1_pipe)
    with pytest.raises(ValueError, match="'roses'"):
        time_edit(sd1_pipe, SOURCE, "a pack of blue tulips")
    with pytest.raises(ValueError, match="lamb must be > 0"):
        time_edit(sd1_pipe, SOURCE, DESTINATION, lamb=0)
    with pytest.raises(ValueError, match="2 source prompts but 1"):
        time_edit(sd1_pipe, [SOURCE, "a cat"], [DESTINATION])
    with pytest.raises(ValueError, match="source is empty"):
        time_edit(sd1_pipe, [], [])
    with pytest.raises(ValueError, match="non-empty"):
        time_edit(sd1_pipe, "", DESTINATION)
    assert_weights_equal(sd1_pipe, before)


def test_unet_without_cross_attention_is_an_error():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, cross_attention_dim=32,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        mid_block_type=None,
    )
    with pytest.raises(ValueError, match="no cross-attention layers"):
        cross_attention_layers(unet)


def test_a_bad_pair_leaves_the_active_edit_in_place(sd1_pipe):
    edit = time_edit(sd1_pipe, SOURCE, DESTINATION)
    edited = all_projection_weights(sd1_pipe)
    with pytest.raises(ValueError, match="'cat'"):
        time_edit(sd1_pipe, "a cat", "a dog")
    assert edit.active
    assert_weights_equal(sd1_pipe, edited)
