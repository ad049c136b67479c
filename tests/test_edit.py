"""TIME edits on tiny SD 1.x / SD 2.x / SDXL pipelines: effect, undo, stacking, save/load, errors.

The reference every edit is compared with is built here from scratch, without timelab's own key
builder or alignment: the pipeline's tokenizer(s) and text encoder(s) run by hand as diffusers feeds the
UNet (SD: the last hidden state; SDXL: both encoders' penultimate hidden states, concatenated), the
alignment of the fixed prompts read from their token ids (one inserted word), and the closed form
``W' = (lamb W + V^T C)(lamb I + C^T C)^-1`` solved in float64 with ``torch.linalg.solve``.
"""

import pytest
import torch

import timelab
from timelab import load_edit, time_edit
from timelab.editing import cross_attention_layers, encode_prompts

from conftest import seeded

SOURCE, DESTINATION = "a pack of roses", "a pack of blue roses"
# The paper's augmentation of the pair, written out (leading "A" of the base prompt lowercased).
AUGMENTED = [
    ("a pack of roses", "a pack of blue roses"),
    ("A photo of a pack of roses", "A photo of a pack of blue roses"),
    ("An image of a pack of roses", "An image of a pack of blue roses"),
    ("A picture of a pack of roses", "A picture of a pack of blue roses"),
]
# Where the destination's extra word sits, read from CLIP's token ids (position 0 is the start token):
# <start> a pack of [blue] roses <end>;  <start> a photo of a pack of [blue] roses <end>;  <start> a [black] cat <end>
INSERTED_AT = {"a pack of roses": 4, "A photo of a pack of roses": 7, "An image of a pack of roses": 7,
               "A picture of a pack of roses": 7, "a cat": 2, "A photo of a cat": 5, "An image of a cat": 5,
               "A picture of a cat": 5}
CAT = ("a cat", "a black cat")
CAT_AUGMENTED = [CAT, ("A photo of a cat", "A photo of a black cat"), ("An image of a cat", "An image of a black cat"),
                 ("A picture of a cat", "A picture of a black cat")]
LAMB = 0.1


def all_weights(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_weights_equal(pipe, expected):
    for name, value in pipe.unet.named_parameters():
        assert torch.equal(value, expected[name]), f"{name} differs"


def cross_attention_projections(unet, keys=True, values=True):
    """Names of the cross-attention key/value projections, found by diffusers' naming (attn2 = cross)."""
    ends = (("attn2.to_k",) if keys else ()) + (("attn2.to_v",) if values else ())
    return [name for name, _ in unet.named_modules() if name.endswith(ends)]


def text_encoders(pipe):
    found = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        found.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return found


@torch.no_grad()
def text_states(pipe, prompts):
    """``(len(prompts), 77, d)`` states as diffusers' pipelines give them to the UNet, computed by hand."""
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    parts = []
    for tokenizer, encoder in text_encoders(pipe):
        ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        output = encoder(ids, output_hidden_states=True)
        parts.append(output.hidden_states[-2] if sdxl else output[0])
    return torch.cat(parts, dim=-1)


def alignment(tokenizer, source, destination):
    """TIME's alignment for a destination that is the source plus one word, from the token ids alone.

    Positions before the inserted word keep their index, later ones (end token and padding too)
    move one on, and the last would-be index 77 is clipped to 76.
    """
    src, dst = tokenizer(source).input_ids, tokenizer(destination).input_ids
    (at,) = [j for j in range(len(dst)) if dst[:j] + dst[j + 1:] == src]
    assert at == INSERTED_AT[source], (source, at)
    last = tokenizer.model_max_length - 1
    return [k if k < at else min(k + 1, last) for k in range(last + 1)]


def keys_and_aligned(pipe, pairs):
    """Keys C (every source state of every pair) and the aligned destination states C*_pi, float64."""
    sources = text_states(pipe, [s for s, _ in pairs]).double()
    destinations = text_states(pipe, [d for _, d in pairs]).double()
    aligned = []
    for p, (source, destination) in enumerate(pairs):
        maps = [alignment(tokenizer, source, destination) for tokenizer, _ in text_encoders(pipe)]
        assert all(m == maps[0] for m in maps)
        aligned.append(destinations[p, maps[0]])
    return sources.reshape(-1, sources.shape[-1]), torch.cat(aligned)


def ridge_solution(weight, C, V, lamb=LAMB):
    """Independent float64 normal-equation solve: W' (lambda I + C^T C) = lambda W + V^T C."""
    A = lamb * torch.eye(C.shape[1], dtype=torch.float64) + C.T @ C
    return torch.linalg.solve(A, (lamb * weight.double() + V.T @ C).T).T


def expected_weights(pipe, pairs, names, start=None, lamb=LAMB):
    """The independently solved weights of the named projections, starting from ``start`` (default: now)."""
    C, aligned = keys_and_aligned(pipe, pairs)
    out = {}
    for name in names:
        weight = (start or {}).get(name, pipe.unet.get_submodule(name).weight).detach().double()
        out[name] = ridge_solution(weight, C, aligned @ weight.T, lamb)
    return out


def assert_solution(actual, expected, original):
    """``actual`` is the independent solution, and the edit moved the matrix far more than the tolerance."""
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=2e-6)
    moved = (expected - original.double()).abs().max().item()
    assert moved > 1e-2, f"the solution hardly moves the matrix ({moved:.2g}): the test could not tell"


def excess_residual(weight, C, V):
    """Squared residual ||C W^T - V||^2 above the least-squares optimum (what any W' could reach)."""
    best = torch.linalg.lstsq(C, V).solution
    return ((C @ weight.double().T - V).norm() ** 2 - (C @ best - V).norm() ** 2).item()


def test_the_reference_alignment_agrees_with_the_rule_on_its_own_prompts(clip_tokenizer):
    """The hand-built alignment, spelled out for the base pair (destination gains "blue" at position 4)."""
    expected = [0, 1, 2, 3] + list(range(5, 77)) + [76]
    assert alignment(clip_tokenizer, SOURCE, DESTINATION) == expected
    assert timelab.align_tokens(clip_tokenizer, SOURCE, DESTINATION) == expected


def test_edit_equals_independent_solution_and_undo_is_bit_exact(pipe):
    before = all_weights(pipe.unet)
    encoders_before = [all_weights(encoder) for _, encoder in text_encoders(pipe)]
    names = cross_attention_projections(pipe.unet)
    expected = expected_weights(pipe, AUGMENTED, names)
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=LAMB)
    assert sorted(edit.layer_names) == sorted(names)
    for name in names:
        assert_solution(pipe.unet.get_submodule(name).weight, expected[name], before[name + ".weight"])
        assert torch.equal(edit.original[name], before[name + ".weight"])
    edited = {name + ".weight" for name in names}
    for name, value in pipe.unet.named_parameters():
        if name not in edited:
            assert torch.equal(value, before[name]), f"{name} is not a cross-attention key/value matrix"
    for (_, encoder), weights in zip(text_encoders(pipe), encoders_before):
        assert all(torch.equal(p, weights[n]) for n, p in encoder.named_parameters()), "text encoder changed"
    edit.undo()
    assert_weights_equal(pipe, before)


def test_residual_drops_by_a_large_factor(pipe):
    C, aligned = keys_and_aligned(pipe, [(SOURCE, DESTINATION)])
    with time_edit(pipe, SOURCE, DESTINATION, lamb=1e-4, augment=False) as edit:
        for name in edit.layer_names:
            V = aligned @ edit.original[name].double().T
            was, now = excess_residual(edit.original[name], C, V), excess_residual(edit.edited[name], C, V)
            assert now < was / 100, f"{name}: excess residual {was:.3g} -> {now:.3g}"


def generate(pipe):
    kwargs = dict(num_inference_steps=2, height=32, width=32, output_type="np")
    return pipe(SOURCE, generator=seeded(0), **kwargs).images


def test_generation_uses_the_edited_weights_and_undo_restores_it(pipe):
    names = cross_attention_projections(pipe.unet)
    before = all_weights(pipe.unet)
    plain = generate(pipe)
    with time_edit(pipe, SOURCE, DESTINATION):
        edited = generate(pipe)
    restored = generate(pipe)
    # The same images from the independently solved weights, written in by hand.
    solved = expected_weights(pipe, AUGMENTED, names)
    with torch.no_grad():
        for name in names:
            pipe.unet.get_submodule(name).weight.copy_(solved[name])
        by_hand = generate(pipe)
        for name in names:
            pipe.unet.get_submodule(name).weight.copy_(before[name + ".weight"])
    assert (plain == restored).all(), "undo restores generation bit for bit"
    change, mismatch = abs(edited - plain).max(), abs(edited - by_hand).max()
    assert mismatch < 1e-4, f"edited images differ from those of the solved weights by {mismatch:.2g}"
    assert change > 100 * mismatch, f"the edit changes the images by {change:.2g} only"



def assert_only_these_solved(pipe, edit, names, expected, before):
    """The edit changed exactly the projections ``names``, each to its independent solution."""
    assert sorted(edit.layer_names) == sorted(names)
    for name, value in pipe.unet.named_parameters():
        if name[: -len(".weight")] in names:
            assert_solution(value, expected[name[: -len(".weight")]], before[name])
        else:
            assert torch.equal(value, before[name]), name

def test_keys_only_and_values_only(sd1_pipe):
    before = all_weights(sd1_pipe.unet)
    keys, values = cross_attention_projections(sd1_pipe.unet, values=False), \
        cross_attention_projections(sd1_pipe.unet, keys=False)
    expected = expected_weights(sd1_pipe, AUGMENTED, keys + values)
    for only, names in ((dict(edit_values=False), keys), (dict(edit_keys=False), values)):
        with time_edit(sd1_pipe, SOURCE, DESTINATION, **only) as edit:
            assert_only_these_solved(sd1_pipe, edit, names, expected, before)
    with pytest.raises(ValueError, match="nothing to edit"):
        time_edit(sd1_pipe, SOURCE, DESTINATION, edit_keys=False, edit_values=False)
    assert_weights_equal(sd1_pipe, before)


def test_layer_subset_by_name_prefix(sd1_pipe):
    before = all_weights(sd1_pipe.unet)
    names = [n for n in cross_attention_projections(sd1_pipe.unet) if n.startswith("up_blocks.")]
    assert names and len(names) < len(cross_attention_projections(sd1_pipe.unet))
    expected = expected_weights(sd1_pipe, AUGMENTED, names)
    with time_edit(sd1_pipe, SOURCE, DESTINATION, layers=["up_blocks"]) as edit:
        assert_only_these_solved(sd1_pipe, edit, names, expected, before)
    with pytest.raises(ValueError, match="no cross-attention layer matches 'nowhere'"):
        time_edit(sd1_pipe, SOURCE, DESTINATION, layers=["nowhere"])


def test_second_edit_starts_from_original_unless_stacked(sd1_pipe):
    before = all_weights(sd1_pipe.unet)
    names = cross_attention_projections(sd1_pipe.unet)
    first = time_edit(sd1_pipe, SOURCE, DESTINATION)
    second = time_edit(sd1_pipe, *CAT)
    assert not first.active and second.active and not second.stacked
    from_original = expected_weights(sd1_pipe, CAT_AUGMENTED, names, start={n: before[n + ".weight"] for n in names})
    for name in names:
        assert torch.equal(second.original[name], before[name + ".weight"]), "starts from the original"
        assert_solution(second.edited[name], from_original[name], before[name + ".weight"])
    # Stacked: the second solve starts from the cat-edited weights, and its targets use them too.
    stacked = time_edit(sd1_pipe, SOURCE, DESTINATION, stack=True)
    assert stacked.stacked and second.active
    on_top = expected_weights(sd1_pipe, AUGMENTED, names, start=second.edited)
    for name in names:
        assert torch.equal(stacked.original[name], second.edited[name])
        assert_solution(stacked.edited[name], on_top[name], second.edited[name])
    with pytest.raises(RuntimeError, match="undo those first"):
        second.undo()
    stacked.undo()
    assert_weights_equal(sd1_pipe, {n: second.edited.get(n[: -len(".weight")], w) for n, w in before.items()})
    second.undo()
    assert_weights_equal(sd1_pipe, before)


def test_context_manager_restores_on_exception(sd1_pipe):
    before = all_weights(sd1_pipe.unet)
    name = cross_attention_projections(sd1_pipe.unet)[0]
    with pytest.raises(KeyError):
        with time_edit(sd1_pipe, SOURCE, DESTINATION) as edit:
            assert torch.equal(sd1_pipe.unet.get_submodule(name).weight, edit.edited[name])
            raise KeyError("boom")
    assert_weights_equal(sd1_pipe, before)


def test_pairs_solved_together(sd1_pipe):
    pairs = [(SOURCE, DESTINATION), CAT]
    names = cross_attention_projections(sd1_pipe.unet)
    before = all_weights(sd1_pipe.unet)
    expected = expected_weights(sd1_pipe, pairs, names)
    edit = time_edit(sd1_pipe, [SOURCE, CAT[0]], [DESTINATION, CAT[1]], augment=False)
    assert edit.source == [SOURCE, CAT[0]] and edit.destination == [DESTINATION, CAT[1]]
    for name in names:
        assert_solution(edit.edited[name], expected[name], before[name + ".weight"])
    alone = expected_weights(sd1_pipe, [(SOURCE, DESTINATION)], names[:1], start=edit.original)[names[0]]
    assert (alone - expected[names[0]]).abs().max() > 1e-3, "one solve for both pairs, not the first pair only"


def test_save_load_round_trip_is_bit_exact(pipe, tmp_path):
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=0.2)
    path = edit.save(tmp_path / "roses.safetensors")
    edited = all_weights(pipe.unet)
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
        assert sorted(handle.keys()) == sorted(cross_attention_projections(sd1_pipe.unet, keys=False))
        assert all(torch.equal(handle.get_tensor(n), edit.edited[n]) for n in handle.keys())
        meta = handle.metadata()
    assert meta["timelab_version"] == timelab.__version__ and '"edit_keys": false' in meta["settings"]


def test_edit_file_for_another_model_is_refused(sd1_pipe, tmp_path):
    from timelab.testing import tiny_pipeline

    path = time_edit(sd1_pipe, SOURCE, DESTINATION).save(tmp_path / "sd1.safetensors")
    other_shapes = tiny_pipeline("sd2")
    with pytest.raises(ValueError, match="made for another model"):
        load_edit(other_shapes, path)
    other_weights = tiny_pipeline("sd1", seed=1)
    before = all_weights(other_weights.unet)
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
        name = cross_attention_projections(sd1_pipe.unet)[0]
        weight = sd1_pipe.unet.get_submodule(name).weight.detach().clone()
        expected = expected_weights(sd1_pipe, [(SOURCE, DESTINATION)], [name])[name]  # half-precision states
        with time_edit(sd1_pipe, SOURCE, DESTINATION, augment=False) as edit:
            assert edit.edited[name].dtype == dtype
            error = (edit.edited[name].double() - expected).abs().max() / expected.abs().max()
            assert error < 4 * torch.finfo(dtype).eps, f"relative error {error:.2e}"
            assert (expected - weight.double()).abs().max() / expected.abs().max() > 100 * torch.finfo(dtype).eps
    finally:
        sd1_pipe.to(dtype=torch.float32)


def test_sdxl_keys_are_the_concatenated_penultimate_states(sdxl_pipe):
    tok1, tok2 = sdxl_pipe.tokenizer, sdxl_pipe.tokenizer_2
    ids1 = tok1([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    ids2 = tok2([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert not torch.equal(ids1, ids2), "the second tokenizer pads with '!', the first with the end token"
    h1 = sdxl_pipe.text_encoder(ids1, output_hidden_states=True).hidden_states[-2]
    h2 = sdxl_pipe.text_encoder_2(ids2, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(encode_prompts(sdxl_pipe, [SOURCE]), torch.cat([h1, h2], dim=-1))
    width = sdxl_pipe.text_encoder.config.hidden_size + sdxl_pipe.text_encoder_2.config.hidden_size
    assert all(sdxl_pipe.unet.get_submodule(n).in_features == width
               for n in cross_attention_projections(sdxl_pipe.unet))


def test_sd_keys_are_last_hidden_states(sd1_pipe):
    ids = sd1_pipe.tokenizer([SOURCE], padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.testing.assert_close(encode_prompts(sd1_pipe, [SOURCE]), sd1_pipe.text_encoder(ids)[0])


def test_bad_input_errors(sd1_pipe):
    before = all_weights(sd1_pipe.unet)
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
    edited = all_weights(sd1_pipe.unet)
    with pytest.raises(ValueError, match="'cat'"):
        time_edit(sd1_pipe, "a cat", "a dog")
    assert edit.active
    assert_weights_equal(sd1_pipe, edited)
