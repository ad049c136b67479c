"""TIME beyond Stable Diffusion's UNet: edits of the tiny random PixArt, Sana, SD3, FLUX, Kandinsky 3 and
HunyuanDiT pipelines checked from the outside.

Every check reads what the model itself computes: the inputs and outputs of each edited linear map and
the attention mask its layers get are captured with forward hooks while the pipeline draws (one step,
no guidance), and the paper's objective is solved here from them, in float64, with TIME's alignment
rule written out again. Nothing below asks timelab how it found its keys.
"""

from __future__ import annotations

import diffusers
import pytest
import torch
from torch import nn

import timelab
from timelab import AttentionRecorder, edit_sites, leakage, load_edit, load_pipeline, reset_edits, time_edit
from timelab.editing import AUGMENTATION_PREFIXES, site_projections

SOURCE, DESTINATION = "a pack of roses", "a pack of blue roses"
KEPT = "a red apple"
LAMBDA = 0.1
# Image sizes the tiny pipelines draw (Sana's autoencoder needs a multiple of 32); PixArt and Sana would
# otherwise snap the size to their trained aspect ratios.
CALL = {
    "tiny-random-pixart": {"height": 16, "width": 16, "use_resolution_binning": False},
    "tiny-random-sana": {"height": 32, "width": 32, "use_resolution_binning": False},
    "tiny-random-sd3": {"height": 16, "width": 16},
    "tiny-random-flux": {"height": 16, "width": 16},
    "tiny-random-kandinsky3": {"height": 64, "width": 64},  # its latents are 8 x 8
    "tiny-random-hunyuan": {"height": 16, "width": 16, "use_resolution_binning": False},
}
# Tiny configs of the denoisers timelab names as unsupported (built here only to check the error).
TINY_UNSUPPORTED = {
    "LuminaNextDiT2DModel": dict(sample_size=8, patch_size=2, in_channels=4, hidden_size=32, num_layers=1,
                                 num_attention_heads=2, num_kv_heads=1, multiple_of=16, cross_attention_dim=16),
}
MASKED = ("tiny-random-pixart", "tiny-random-sana", "tiny-random-kandinsky3")
JOINT = ("tiny-random-sd3", "tiny-random-flux")  # joint attention: context_embedder is the edit site


@pytest.fixture(scope="module", params=list(CALL))
def pipe(request):
    pipe = load_pipeline(request.param, device="cpu")
    pipe.name = request.param
    yield pipe
    reset_edits(pipe)


@pytest.fixture(autouse=True)
def _undo_edits(request):
    yield
    if "pipe" in request.fixturenames:
        reset_edits(request.getfixturevalue("pipe"))


def _model(pipe) -> nn.Module:
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def _text_attentions(pipe) -> dict[str, nn.Module]:
    """Kandinsky 3's attention modules whose keys read the text: here, those whose to_k is as wide as the
    UNet's cross_attention_dim (the tiny UNet's channels, 8/16/32, all differ from it)."""
    width = pipe.unet.config.cross_attention_dim
    return {name: module for name, module in pipe.unet.named_modules()
            if type(module).__name__ == "Attention" and module.to_k.in_features == width}


def _linears(pipe) -> dict[str, nn.Linear]:
    """The edited linear maps, found here by name: every block's attn2 projections, SD3's/FLUX's
    context_embedder, or the to_k/to_v of Kandinsky 3's attention modules that read the text."""
    model = _model(pipe)
    if pipe.name in JOINT:
        return {"context_embedder": model.context_embedder}
    if pipe.name == "tiny-random-kandinsky3":
        return {f"{name}.{part}": getattr(module, part) for name, module in _text_attentions(pipe).items()
                for part in ("to_k", "to_v")}
    return {f"{name}.{part}": getattr(module, part) for name, module in model.named_modules()
            if name.endswith("attn2") for part in ("to_k", "to_v")}


@torch.no_grad()
def _capture(pipe, prompt: str) -> dict:
    """What each edited map reads and writes for ``prompt`` in a real (one-step) generation, and which
    text positions the attention may use (the mask its attn2 layers get; all for SD3 and FLUX)."""
    seen: dict = {"inputs": {}, "outputs": {}}
    handles = []
    for name, linear in _linears(pipe).items():
        def hook(module, args, output, name=name):
            seen["inputs"].setdefault(name, args[0][0].double())
            seen["outputs"].setdefault(name, output[0].double())
        handles.append(linear.register_forward_hook(hook))
    if pipe.name in MASKED:
        kandinsky = pipe.name == "tiny-random-kandinsky3"
        attn = (list(_text_attentions(pipe).values())[1] if kandinsky else pipe.transformer.transformer_blocks[0].attn2)

        def mask_hook(module, args, kwargs):  # Kandinsky 3 passes (hidden, context, mask) positionally
            seen.setdefault("bias", (args[2] if kandinsky else kwargs["attention_mask"])[0, 0])
        handles.append(attn.register_forward_pre_hook(mask_hook, with_kwargs=True))
    try:
        pipe(prompt, num_inference_steps=1, guidance_scale=1.0, output_type="latent",
             generator=torch.Generator().manual_seed(0), **CALL[pipe.name])
    finally:
        for handle in handles:
            handle.remove()
    length = next(iter(seen["inputs"].values())).shape[0]
    seen["kept"] = (seen["bias"] == 0).nonzero()[:, 0] if "bias" in seen else torch.arange(length)
    return seen


def _walk(source: list[int], destination: list[int], length: int) -> list[int]:
    """TIME's alignment rule, written out: each source token to the next equal destination token, then
    the positions after the last token to the following destination positions (capped at the end)."""
    mapping, j = [], 0
    for token in source:
        while destination[j] != token:
            j += 1
        mapping.append(j)
        j += 1
    while len(mapping) < length:
        mapping.append(min(j, length - 1))
        j += 1
    return mapping


def _aligned_positions(pipe, source: str, destination: str, source_seen: dict, destination_seen: dict):
    """(source key positions, destination positions they align to), from the tokenizers' ids."""
    if pipe.name in MASKED:  # PixArt, Sana lowercase prompts; only the unmasked positions are keys
        ids = [pipe.tokenizer(p if "kandinsky" in pipe.name else p.lower()).input_ids for p in (source, destination)]
        kept, target = source_seen["kept"], destination_seen["kept"]
        assert [len(i) for i in ids] == [len(kept), len(target)], "the mask should cover exactly the prompt's tokens"
        return kept, target[_walk(ids[0], ids[1], len(ids[0]))]
    if pipe.name == "tiny-random-hunyuan":  # BERT's 77 positions, then (m)T5's; no mask: every position a key
        bert = [pipe.tokenizer(p).input_ids for p in (source, destination)]
        t5 = [pipe.tokenizer_2(p).input_ids for p in (source, destination)]
        t5_length = source_seen["kept"].shape[0] - 77
        return source_seen["kept"], torch.tensor(_walk(bert[0], bert[1], 77) + [77 + p for p in _walk(t5[0], t5[1], t5_length)])
    if pipe.name == "tiny-random-flux":  # T5's states only (CLIP gives the pooled vector)
        t5 = [pipe.tokenizer_2(p).input_ids for p in (source, destination)]
        return source_seen["kept"], torch.tensor(_walk(t5[0], t5[1], source_seen["kept"].shape[0]))
    clip = [pipe.tokenizer(p).input_ids for p in (source, destination)]
    t5 = [pipe.tokenizer_3(p).input_ids for p in (source, destination)]
    t5_length = source_seen["kept"].shape[0] - 77
    positions = _walk(clip[0], clip[1], 77) + [77 + p for p in _walk(t5[0], t5[1], t5_length)]
    return source_seen["kept"], torch.tensor(positions)


def _pairs(augment: bool) -> list[tuple[str, str]]:
    if not augment:
        return [(SOURCE, DESTINATION)]
    return [(SOURCE, DESTINATION)] + [(p + SOURCE, p + DESTINATION) for p in AUGMENTATION_PREFIXES]


def _system(pipe, augment: bool):
    """Keys C, aligned destination states C*, per edited map, from captured generations."""
    keys: dict[str, list] = {}
    targets: dict[str, list] = {}
    for source, destination in _pairs(augment):
        seen_s, seen_d = _capture(pipe, source), _capture(pipe, destination)
        kept, target = _aligned_positions(pipe, source, destination, seen_s, seen_d)
        for name in seen_s["inputs"]:
            keys.setdefault(name, []).append(seen_s["inputs"][name][kept])
            targets.setdefault(name, []).append(seen_d["inputs"][name][target])
    return {n: torch.cat(k) for n, k in keys.items()}, {n: torch.cat(t) for n, t in targets.items()}


def _solve(weight: torch.Tensor, keys: torch.Tensor, aligned: torch.Tensor, kept: torch.Tensor | None = None):
    """argmin_W' sum_i ||W' c_i - W c*_i||^2 + sum_j ||W' p_j - W p_j||^2 + lambda ||W' - W||^2, in float64."""
    w = weight.double()
    a = LAMBDA * torch.eye(w.shape[1], dtype=torch.float64) + keys.T @ keys
    b = LAMBDA * w + (aligned @ w.T).T @ keys
    if kept is not None:
        a, b = a + kept.T @ kept, b + w @ kept.T @ kept
    return torch.linalg.solve(a, b.T).T


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("augment", [False, True])
def test_edit_equals_an_independent_solve_of_the_objective(pipe, augment):
    originals = {n: m.weight.detach().clone() for n, m in _linears(pipe).items()}
    keys, aligned = _system(pipe, augment)
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=LAMBDA, augment=augment)
    assert sorted(edit.edited) == sorted(originals), "the edit should change exactly the maps found here"
    for name, weight in originals.items():
        expected = _solve(weight, keys[name], aligned[name])
        assert _relative(edit.edited[name], expected) < 1e-4, name
        assert _relative(expected, weight) > 1e-3, f"{name}: the solve should move the weights (test would be void)"


def test_preserve_equals_the_solve_with_preserved_states(pipe):
    keys, aligned = _system(pipe, augment=False)
    seen = _capture(pipe, KEPT)
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=LAMBDA, augment=False, preserve=[KEPT])
    for name, linear in _linears(pipe).items():
        kept = seen["inputs"][name][seen["kept"]]
        expected = _solve(edit.original[name], keys[name], aligned[name], kept)
        assert _relative(edit.edited[name], expected) < 1e-4, name
        without = _solve(edit.original[name], keys[name], aligned[name])
        assert _relative(expected, without) > 1e-3, f"{name}: preserving should change the solve (test would be void)"


@torch.no_grad()
def test_source_moves_towards_destination_by_the_predicted_amount(pipe):
    """Before the edit the source's projections differ from the destination's aligned ones by R0; the
    closed form leaves exactly ``lambda (lambda I + C C^T)^-1 R0`` (C: the keys), measured after the edit
    on the model's own outputs (biases cancel in the difference)."""
    before_s, before_d = _capture(pipe, SOURCE), _capture(pipe, DESTINATION)
    kept, target = _aligned_positions(pipe, SOURCE, DESTINATION, before_s, before_d)
    time_edit(pipe, SOURCE, DESTINATION, lamb=LAMBDA, augment=False)
    after_s = _capture(pipe, SOURCE)
    for name in before_s["inputs"]:
        keys = before_s["inputs"][name][kept]
        wanted = before_d["outputs"][name][target]
        gap_before = before_s["outputs"][name][kept] - wanted
        gap_after = after_s["outputs"][name][kept] - wanted
        gram = keys @ keys.T + LAMBDA * torch.eye(keys.shape[0], dtype=torch.float64)
        predicted = LAMBDA * torch.linalg.solve(gram, gap_before)
        assert gap_after.norm() < gap_before.norm(), name
        assert _relative(gap_after, predicted) < 2e-2, name


@pytest.mark.parametrize("name", MASKED)
def test_masked_padding_stays_out_of_the_key_system(name):
    """(SD3's and FLUX's joint attention has no text mask: there every position is a key, as the solve test checks.)"""
    pipe = load_pipeline(name, device="cpu")
    pipe.name = name
    seen_s, seen_d = _capture(pipe, SOURCE), _capture(pipe, DESTINATION)
    length = next(iter(seen_s["inputs"].values())).shape[0]
    padding = torch.ones(length, dtype=torch.bool).index_fill_(0, seen_s["kept"], False)
    assert 0 < len(seen_s["kept"]) < length, "the prompt should leave padding positions for the mask"
    assert (seen_s["bias"][padding] <= -1e4 + 1).all(), "padding gets a -10000 bias: no attention reaches it"
    kept, target = _aligned_positions(pipe, SOURCE, DESTINATION, seen_s, seen_d)
    edit = time_edit(pipe, SOURCE, DESTINATION, lamb=LAMBDA, augment=False)
    assert edit.key_system()[0].shape[0] == len(kept), "one key per unmasked position, none for padding"
    for name in seen_s["inputs"]:
        keys, aligned = seen_s["inputs"][name][kept], seen_d["inputs"][name][target]
        pads = seen_s["inputs"][name][padding]  # were padding keys (asked to stay put), the solve would differ
        with_padding = _solve(edit.original[name], torch.cat([keys, pads]), torch.cat([aligned, pads]))
        assert _relative(edit.edited[name], _solve(edit.original[name], keys, aligned)) < 1e-4, name
        assert _relative(edit.edited[name], with_padding) > 1e-3, name


def test_undo_is_bit_exact_and_files_load_back(pipe, tmp_path):
    before = {k: v.clone() for k, v in _model(pipe).state_dict().items()}
    edit = time_edit(pipe, SOURCE, DESTINATION)
    path = edit.save(tmp_path / "edit.safetensors")
    edit.undo()
    assert all(torch.equal(before[k], v) for k, v in _model(pipe).state_dict().items())
    loaded = load_edit(pipe, path)
    assert all(torch.equal(loaded.edited[n], edit.edited[n]) for n in edit.edited)
    assert all(torch.equal(m.weight, edit.edited[n]) for n, m in _linears(pipe).items())
    loaded.undo()
    assert all(torch.equal(before[k], v) for k, v in _model(pipe).state_dict().items())


def test_an_edit_file_for_one_architecture_is_refused_by_another(tmp_path):
    files = {}
    pipes = {name: load_pipeline(name, device="cpu") for name in ("tiny-random", *MASKED, *JOINT, "tiny-random-hunyuan")}
    for name, pipe in pipes.items():
        pipe.name = name
    for name, pipe in pipes.items():
        with time_edit(pipe, SOURCE, DESTINATION, augment=False) as edit:
            files[name] = edit.save(tmp_path / f"{name}.safetensors")
    for name, pipe in pipes.items():
        model = _model(pipe)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        for other, path in files.items():
            if other == name:
                continue
            with pytest.raises(ValueError, match="made for another model"):
                load_edit(pipe, path)
            assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_leakage_is_the_relative_change_over_the_positions_the_model_reads(pipe):
    edit = time_edit(pipe, SOURCE, DESTINATION, augment=False)
    seen = _capture(pipe, KEPT)
    change = sum(((edit.edited[n] - edit.original[n]).double() @ seen["inputs"][n][seen["kept"]].T).square().sum()
                 for n in edit.edited)
    size = sum((edit.original[n].double() @ seen["inputs"][n][seen["kept"]].T).square().sum() for n in edit.edited)
    assert float(leakage(edit, [KEPT])[0]) == pytest.approx(float((change / size).sqrt()), rel=1e-4)


def test_the_site_table_names_every_edited_matrix(pipe):
    report = edit_sites(pipe)
    total = sum(p.numel() for p in _model(pipe).parameters())
    assert [row[0] for row in report.rows] == list(_linears(pipe))
    assert report.share == pytest.approx(sum(m.weight.numel() for m in _linears(pipe).values()) / total)
    text = str(report)
    assert all(name in text for name in _linears(pipe)) and "why:" in text


def test_bad_input_is_refused_and_leaves_the_model_alone(pipe):
    before = {k: v.clone() for k, v in _model(pipe).state_dict().items()}
    too_long = "a " + " ".join(["red"] * 600) + " rose"  # over FLUX's 512 T5 positions too
    with pytest.raises(ValueError, match="longer than|over the tokenizer's limit"):
        time_edit(pipe, too_long, too_long + " blue")
    with pytest.raises(ValueError, match="matches 'no_such_block'"):
        time_edit(pipe, SOURCE, DESTINATION, layers=["no_such_block"])
    with pytest.raises(ValueError, match="cannot align"):
        time_edit(pipe, "a pack of roses", "roses in a pack")
    assert all(torch.equal(before[k], v) for k, v in _model(pipe).state_dict().items())


def test_a_layer_filter_edits_only_the_named_sites(pipe):
    name = next(iter(_linears(pipe))).rsplit(".", 1)[0] if pipe.name not in JOINT else "context_embedder"
    edit = time_edit(pipe, SOURCE, DESTINATION, layers=[name])
    assert all(n.startswith(name) for n in edit.edited) and edit.edited


@pytest.mark.parametrize("name", JOINT)
def test_joint_models_edit_their_entry_projection_only_whole(name):
    pipe = load_pipeline(name, device="cpu")
    with pytest.raises(ValueError, match="edit_keys and edit_values"):
        time_edit(pipe, SOURCE, DESTINATION, edit_values=False)
    with pytest.raises(NotImplementedError, match="joint attention"):
        AttentionRecorder(pipe)


def test_unknown_and_ambiguous_architectures_are_named():
    class Pipe:
        transformer = nn.Linear(2, 2)

    with pytest.raises(NotImplementedError, match="PixArt.*Sana.*Stable Diffusion 3.*FLUX.*Kandinsky 3.*HunyuanDiT"):
        edit_sites(Pipe())
    both = Pipe()
    both.unet = nn.Linear(2, 2)
    for cls, reason in (("LuminaNextDiT2DModel", "own RMSNorm"),):
        named = Pipe()
        named.transformer = getattr(diffusers, cls)(**TINY_UNSUPPORTED[cls])
        with pytest.raises(NotImplementedError, match=f"{cls}.*{reason}.*it supports"):
            time_edit(named, SOURCE, DESTINATION)
    with pytest.raises(ValueError, match="ambiguous"):
        time_edit(both, SOURCE, DESTINATION)
    pipe = load_pipeline("tiny-random-pixart", device="cpu")
    pipe.transformer.transformer_blocks[1].attn2.to_k = nn.Linear(7, 24)  # reads something else
    with pytest.raises(ValueError, match="transformer_blocks.1.attn2.*ambiguous"):
        site_projections(pipe)
    pipe = load_pipeline("tiny-random-kandinsky3", device="cpu")
    pipe.unet.up_blocks[0].attentions[1].attention.to_k = nn.Linear(7, 32)
    with pytest.raises(ValueError, match="up_blocks.0.attentions.1.attention.*encoder_hid_proj"):
        site_projections(pipe)


@pytest.mark.parametrize("name", MASKED)
def test_attention_maps_of_masked_models_leave_padding_unattended(name):
    pipe = load_pipeline(name, device="cpu")
    with AttentionRecorder(pipe, cfg=False) as recorder:
        pipe(SOURCE, num_inference_steps=2, guidance_scale=1.0, output_type="latent", **CALL[name])
    maps = recorder.maps()  # (images, tokens, h, w)
    kept = int(pipe.tokenizer(SOURCE).input_ids.__len__())
    assert torch.allclose(maps.sum(dim=1), torch.ones(1), atol=1e-5)
    assert maps[:, kept:].abs().max() < 1e-6, "padding positions are masked: no attention may reach them"
    assert maps[:, :kept].sum(dim=1).min() > 1 - 1e-5
    with pytest.raises(NotImplementedError, match="rewrites prompts"):
        recorder.token_maps(SOURCE)


def test_timelab_exports_the_site_table():
    assert timelab.edit_sites is edit_sites


def test_stand_in_tokenizers_keep_t5_and_gemma_conventions():
    from timelab.stand_in_tokenizers import stand_in_gemma_tokenizer, stand_in_t5_tokenizer

    t5, gemma = stand_in_t5_tokenizer(), stand_in_gemma_tokenizer()
    ids = t5("a pack of roses", padding="max_length", max_length=8)
    assert t5.convert_ids_to_tokens(ids.input_ids) == ["▁a", "▁pack", "▁of", "▁roses", "</s>"] + ["<pad>"] * 3
    assert ids.attention_mask == [1] * 5 + [0] * 3 and t5.pad_token_id == 0 and t5.bos_token is None
    ids = gemma("a pack of roses", padding="max_length", max_length=7)
    assert gemma.convert_ids_to_tokens(ids.input_ids) == ["<bos>", "a", "▁pack", "▁of", "▁roses", "<pad>", "<pad>"]
    assert gemma.pad_token_id == 0 and gemma.eos_token_id == 1 and gemma.bos_token_id == 2


def test_hunyuan_attention_maps_are_refused_by_name():
    pipe = load_pipeline("tiny-random-hunyuan", device="cpu")
    with pytest.raises(NotImplementedError, match="HunyuanDiT.*rotary"):
        AttentionRecorder(pipe)


def test_stand_in_bert_tokenizer_keeps_bert_conventions_and_leaves_no_files(tmp_path, monkeypatch):
    import tempfile

    from timelab.stand_in_tokenizers import stand_in_bert_tokenizer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bert = stand_in_bert_tokenizer()
    assert list(tmp_path.iterdir()) == [], "the vocabulary file should be removed again"
    ids = bert("A pack of zebras", padding="max_length", max_length=12)
    assert bert.convert_ids_to_tokens(ids.input_ids) == (["[CLS]", "a", "pack", "of", "z", "##e", "##b", "##r", "##a",
                                                          "##s", "[SEP]", "[PAD]"])
    assert bert.pad_token_id == 0 and bert.cls_token_id == 2 and bert.sep_token_id == 3


@pytest.mark.parametrize("name", [*MASKED, "tiny-random-hunyuan"])
def test_unknown_words_are_named_on_stand_in_tokenizers(name):
    pipe = load_pipeline(name, device="cpu")
    with pytest.warns(timelab.editing.UnknownWordsWarning, match="zebra"):
        time_edit(pipe, "a zebra", "a blue zebra", augment=False).undo()
