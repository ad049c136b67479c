"""AttentionRecorder and the attention figures, checked against diffusers' own attention scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timelab import align_tokens, time_edit, viz
from timelab.attention import AttentionRecorder, TokenSpan, map_shape, token_labels
from timelab.editing import cross_attention_layers, encode_prompts
from timelab.figures import FIGURES_ENV
from timelab.testing import tiny_pipeline

PROMPTS = ["a pack of roses", "a photo of a hippopotamus"]
HEIGHT, WIDTH = 16, 24  # non-square; the tiny VAE keeps the size, so latents are 16x24 too
STEPS = 3


def generate(pipe, prompts=PROMPTS, guidance_scale=7.5, steps=STEPS, **kwargs) -> torch.Tensor:
    return pipe(prompts, height=HEIGHT, width=WIDTH, num_inference_steps=steps, guidance_scale=guidance_scale,
                output_type="pt", generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.fixture(scope="module")
def sd1():
    pipe = tiny_pipeline("sd1")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sdxl():
    pipe = tiny_pipeline("sdxl")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sd1_recording(sd1):
    """One recorded guided generation of PROMPTS on the tiny SD 1.x pipeline: (images, recorder)."""
    with AttentionRecorder(sd1) as rec:
        images = generate(sd1)
    return images, rec


def cross_attention(pipe) -> dict:
    return cross_attention_layers(pipe.unet)


class ScoreCapture:
    """Wraps a module's attention processor and logs diffusers' own ``get_attention_scores`` per call."""

    def __init__(self, inner, log: list):
        self.inner, self.log = inner, log

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)  # (batch * heads, queries, tokens)
        self.log.append(probs.view(-1, attn.heads, *probs.shape[1:]).detach().clone())
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)


def reference_maps(pipe, guidance_scale=7.5, steps=STEPS, keep_steps=None, **kwargs):
    """Per layer: diffusers' scores, conditional half, averaged over heads and steps, as (n, tokens, q)."""
    layers = cross_attention(pipe)
    logs = {name: [] for name in layers}
    originals = {name: m.processor for name, m in layers.items()}
    try:
        for name, module in layers.items():
            module.set_processor(ScoreCapture(originals[name], logs[name]))
        images = generate(pipe, guidance_scale=guidance_scale, steps=steps, **kwargs)
    finally:
        for name, module in layers.items():
            module.set_processor(originals[name])
    result = {}
    for name, calls in logs.items():
        calls = calls if keep_steps is None else [calls[i] for i in keep_steps]
        probs = torch.stack(calls)  # (steps, batch, heads, queries, tokens)
        half = probs.shape[1] // 2 if guidance_scale > 1 else 0
        result[name] = probs[:, half:].mean(dim=(0, 2)).transpose(1, 2)
        if half:
            result[name + ":uncond"] = probs[:, :half].mean(dim=(0, 2)).transpose(1, 2)
    return images, result


def hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


# ------------------------------------------------------------------------------- recording

@pytest.mark.parametrize("guidance_scale", [7.5, 1.0])
def test_recorded_probabilities_match_diffusers_scores(sd1, guidance_scale):
    _, reference = reference_maps(sd1, guidance_scale)
    with AttentionRecorder(sd1) as rec:
        generate(sd1, guidance_scale=guidance_scale)
    assert set(rec.shapes) == set(cross_attention(sd1))
    for name in rec.shapes:
        got = rec.layer_maps(name).flatten(2)
        torch.testing.assert_close(got, reference[name], rtol=1e-5, atol=1e-6)
        if guidance_scale > 1:  # the unconditional half is different, so the choice of half matters
            assert (got - reference[name + ":uncond"]).abs().max() > 1e-3


def test_shapes_follow_the_latent_and_rows_sum_to_one(sd1, sd1_recording):
    _, rec = sd1_recording
    expected = {n: (HEIGHT, WIDTH) if not n.startswith("mid_block") else (HEIGHT // 2, WIDTH // 2)
                for n in cross_attention(sd1)}
    assert rec.shapes == expected
    tokens = sd1.tokenizer.model_max_length
    for name, (h, w) in expected.items():
        layer = rec.layer_maps(name)
        assert layer.shape == (len(PROMPTS), tokens, h, w)
        torch.testing.assert_close(layer.sum(dim=1), torch.ones(len(PROMPTS), h, w))
    combined = rec.maps()
    assert combined.shape == (len(PROMPTS), tokens, HEIGHT, WIDTH)
    torch.testing.assert_close(combined.sum(dim=1), torch.ones(len(PROMPTS), HEIGHT, WIDTH))
    assert rec.maps(size=(32, 48)).shape == (len(PROMPTS), tokens, 32, 48)
    full = [n for n, hw in expected.items() if hw == (HEIGHT, WIDTH)]
    torch.testing.assert_close(rec.maps(resolution=(HEIGHT, WIDTH)),
                               torch.stack([rec.layer_maps(n) for n in full]).mean(dim=0))


def test_map_shape_inverts_downsampling():
    assert map_shape((64, 96), 64 * 96) == (64, 96)
    assert map_shape((64, 96), 8 * 12) == (8, 12)
    assert map_shape((15, 9), 8 * 5) == (8, 5)  # odd sides round up, as a stride-2 convolution does
    with pytest.raises(ValueError, match="no downsampling"):
        map_shape((64, 64), 1000)


def test_images_are_bit_identical_with_and_without_recording(sd1, sd1_recording, sdxl):
    recorded, rec = sd1_recording
    assert rec.timesteps_seen, "nothing was recorded"
    assert torch.equal(generate(sd1), recorded)
    plain = generate(sdxl)
    with AttentionRecorder(sdxl) as rec:
        recorded = generate(sdxl)
    assert rec.timesteps_seen, "nothing was recorded"
    assert torch.equal(plain, recorded)


def test_sdxl_two_encoders_match_diffusers_scores(sdxl):
    _, reference = reference_maps(sdxl)
    with AttentionRecorder(sdxl) as rec:
        generate(sdxl)
    for name in rec.shapes:
        torch.testing.assert_close(rec.layer_maps(name).flatten(2), reference[name], rtol=1e-5, atol=1e-6)


def test_edited_to_k_is_seen_without_reregistering(sd1):
    layers = cross_attention(sd1)
    name = next(iter(layers))
    weight = layers[name].to_k.weight
    original = weight.detach().clone()
    try:
        with AttentionRecorder(sd1) as rec:
            generate(sd1)
            before = rec.layer_maps(name)
            rec.reset()
            with torch.no_grad():
                weight.copy_(original)  # a no-op edit
            generate(sd1)
            assert torch.equal(rec.layer_maps(name), before)
            rec.reset()
            with torch.no_grad():
                weight.mul_(3.0)
            generate(sd1)
            after = rec.layer_maps(name)
        assert (after - before).abs().max() > 1e-3
        _, reference = reference_maps(sd1)  # diffusers' scores of the edited model
        torch.testing.assert_close(after.flatten(2), reference[name], rtol=1e-5, atol=1e-6)
    finally:
        with torch.no_grad():
            weight.copy_(original)


def test_time_edit_moves_the_object_token_toward_the_destination(sd1):
    source, destination = "a pack of roses", "a pack of blue roses"
    # The first cross-attention layer at the first step: its queries come from the same seeded latents
    # whatever the prompt, so its maps differ only through the keys that TIME edits.
    first = next(iter(cross_attention(sd1)))

    def first_maps(prompt):
        with AttentionRecorder(sd1, layers=[first], timesteps=(500, 1000)) as rec:
            generate(sd1, prompts=[prompt])
        assert len(rec.timesteps_seen) == 1
        return rec.layer_maps(first)[0]

    def all_maps(prompt):
        with AttentionRecorder(sd1) as rec:
            generate(sd1, prompts=[prompt])
        return rec.maps()[0]

    source_before, source_all = first_maps(source), all_maps(source)
    aligned = first_maps(destination)[align_tokens(sd1.tokenizer, source, destination)]
    roses = token_labels(sd1.tokenizer, source)[-2]
    assert roses.label == "roses"
    with time_edit(sd1, source, destination):
        source_after = first_maps(source)
        assert (all_maps(source) - source_all).abs().max() > 1e-4
    gap_before = (source_before[roses.positions] - aligned[roses.positions]).norm()
    gap_after = (source_after[roses.positions] - aligned[roses.positions]).norm()
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)
    assert torch.equal(first_maps(source), source_before)  # undone on exit
    with time_edit(sd1, source, source):  # a no-op edit
        torch.testing.assert_close(all_maps(source), source_all, rtol=0, atol=1e-6)


def test_tinyworld_edit_moves_the_object_token_toward_the_destination(tinyworld):
    """TinyWorld (trained), "a circle" -> "a blue circle", first denoising step: the object token's map
    in the source prompt moves toward its aligned map in the destination prompt, and so, in every layer,
    does its share of the attention output; a no-op edit changes nothing."""
    source, destination = "a circle", "a blue circle"
    layers = cross_attention(tinyworld)
    first = next(iter(layers))  # its queries do not depend on the prompt at the first step

    def record(prompt, **selection):
        with AttentionRecorder(tinyworld, **selection) as rec:
            tinyworld([prompt] * 4, num_inference_steps=2, output_type="pt",
                      generator=torch.Generator().manual_seed(0))
        return rec

    def output_share(rec, prompt, position):
        """Per layer: mean over pixels of P[j, i] (heads averaged) times the token's value W_V c_i."""
        state = encode_prompts(tinyworld, [prompt])[0, position]
        with torch.no_grad():
            return {name: rec.layer_maps(name)[:, position].mean() * layers[name].to_v(state)
                    for name in rec.shapes}

    first_step = {"timesteps": (500, 1000)}
    circle = next(s for s in token_labels(tinyworld.tokenizer, source) if s.label == "circle").positions[0]
    target = align_tokens(tinyworld.tokenizer, source, destination)[circle]
    before, goal = record(source, **first_step), record(destination, **first_step)
    everywhere = record(source).maps()
    with time_edit(tinyworld, source, destination):
        after = record(source, **first_step)
        shares_after = output_share(after, source, circle)
    gap_before = (before.layer_maps(first)[:, circle] - goal.layer_maps(first)[:, target]).norm()
    gap_after = (after.layer_maps(first)[:, circle] - goal.layer_maps(first)[:, target]).norm()
    assert gap_after < gap_before, (gap_before, gap_after)
    shares_before, shares_goal = output_share(before, source, circle), output_share(goal, destination, target)
    # With 308 keys in 64 dimensions the solve is a least-squares compromise: TinyWorld 2's object token
    # comes closer to the destination's in every layer, on average more than half of the way.
    ratios = {name: float((shares_after[name] - shares_goal[name]).norm() / (shares_before[name] - shares_goal[name]).norm())
              for name in layers}
    assert max(ratios.values()) < 1 and sum(ratios.values()) / len(ratios) < 0.5, ratios
    with time_edit(tinyworld, source, source):
        torch.testing.assert_close(record(source).maps(), everywhere, rtol=0, atol=1e-6)


def test_timestep_window_keeps_only_those_steps(sd1):
    _, reference = reference_maps(sd1, keep_steps=[0, 1])
    with AttentionRecorder(sd1, timesteps=(300, 1000)) as rec:
        generate(sd1)
    assert len(rec.timesteps_seen) == 2 and all(300 <= t <= 1000 for t in rec.timesteps_seen)
    for name in rec.shapes:
        torch.testing.assert_close(rec.layer_maps(name).flatten(2), reference[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="low <= high"):
        AttentionRecorder(sd1, timesteps=(900, 100))


def test_two_runs_in_one_recorder_keep_their_own_images(sd1):
    """Two pipeline calls inside one recorder: each call's images keep their own maps, in order (before,
    the second call's steps were averaged into the first's images)."""
    with AttentionRecorder(sd1) as rec:
        for prompt in PROMPTS:
            generate(sd1, [prompt])
    assert len(rec.timesteps_seen) == 2 * STEPS
    for prompt_index, prompt in enumerate(PROMPTS):
        _, reference = reference_maps(sd1, prompts=[prompt])  # diffusers' scores of that call alone
        for name in rec.shapes:
            assert rec.layer_maps(name).shape[0] == len(PROMPTS)
            torch.testing.assert_close(rec.layer_maps(name)[prompt_index:prompt_index + 1].flatten(2), reference[name],
                                       rtol=1e-5, atol=1e-6)


def test_seeds_drawn_in_several_batches_keep_their_own_maps(sd1):
    """``generate`` drawing 4 seeds in batches of 2 records what one batch of 4 records, seed by seed."""
    from timelab.generation import GenerationSettings, generate as generate_prompts

    recorded = {}
    for batch_size in (2, 4):
        settings = GenerationSettings(steps=2, guidance_scale=7.5, height=HEIGHT, width=WIDTH, batch_size=batch_size)
        with AttentionRecorder(sd1) as rec:
            generate_prompts(sd1, [PROMPTS[0]], [0, 1, 2, 3], settings)
        recorded[batch_size] = rec.maps()
    assert recorded[2].shape == recorded[4].shape == (4, sd1.tokenizer.model_max_length, HEIGHT, WIDTH)
    torch.testing.assert_close(recorded[2], recorded[4], rtol=1e-4, atol=1e-5)
    assert (recorded[4][0] - recorded[4][2]).abs().max() > 1e-4, "seeds 0 and 2 should have different maps"


def test_a_batch_that_changes_within_one_run_is_refused_by_name(sd1):
    """UNet calls whose timestep keeps falling belong to one run; a different batch there gets a named error."""
    unet = sd1.unet
    size = unet.config.sample_size
    with AttentionRecorder(sd1, cfg=False):
        for batch, timestep in ((1, 900), (2, 800)):
            latents = torch.randn(batch, unet.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
            call = lambda: unet(latents, timestep, encoder_hidden_states=encode_prompts(sd1, PROMPTS[:1] * batch))
            if batch == 1:
                call()
            else:
                with pytest.raises(ValueError, match="the batch changed from 1 to 2 images within one denoising run"):
                    call()


def test_layers_by_name_and_resolution(sd1):
    names = list(cross_attention(sd1))
    with AttentionRecorder(sd1, layers=names[:1]) as rec:
        generate(sd1)
    assert list(rec.shapes) == names[:1]
    with AttentionRecorder(sd1, resolution=(HEIGHT // 2, WIDTH // 2)) as rec:
        generate(sd1)
    assert list(rec.shapes) == [n for n in names if n.startswith("mid_block")]
    with pytest.raises(ValueError, match="no cross-attention layer matches"):
        AttentionRecorder(sd1, layers=["down_blocks.9.attn2"])
    with pytest.raises(ValueError, match="no recorded layer matches"):
        rec.maps(resolution=3)


def test_memory_does_not_grow_with_steps(sd1):
    held = []
    for steps in (2, 5):
        with AttentionRecorder(sd1) as rec:
            generate(sd1, steps=steps)
        held.append(rec.nbytes)
    tokens = sd1.tokenizer.model_max_length
    expected = 4 * len(PROMPTS) * tokens * sum(h * w for h, w in rec.shapes.values())
    assert held == [expected, expected]


def test_no_hook_remains_also_when_generation_raises(sd1):
    before = hook_count(sd1.unet)
    with AttentionRecorder(sd1) as rec:
        assert hook_count(sd1.unet) == before + 1 + len(rec.modules)
        with pytest.raises(RuntimeError, match="already recording"):
            rec.__enter__()
        assert hook_count(sd1.unet) == before + 1 + len(rec.modules)
        generate(sd1)
    assert hook_count(sd1.unet) == before

    def fail(pipe, step, timestep, callback_kwargs):
        raise RuntimeError("stop at step 1")

    with pytest.raises(RuntimeError, match="stop at step 1"):
        with AttentionRecorder(sd1):
            generate(sd1, callback_on_step_end=fail)
    assert hook_count(sd1.unet) == before


def test_unknown_guidance_asks_for_cfg():
    fresh = tiny_pipeline("sd1")  # never called, so it cannot tell whether guidance is on
    latents = torch.zeros(1, 4, 8, 8)
    context = torch.zeros(1, 77, 32)
    with pytest.raises(ValueError, match="pass cfg=True or cfg=False"):
        with AttentionRecorder(fresh):
            fresh.unet(latents, 10, encoder_hidden_states=context)
    with AttentionRecorder(fresh, cfg=False) as rec:
        fresh.unet(latents, 10, encoder_hidden_states=context)
    assert rec.maps().shape == (1, 77, 8, 8)


# ------------------------------------------------------------------------------- token labels

def test_token_labels_mark_start_end_and_follow_the_tokenizer(sd1):
    tokenizer = sd1.tokenizer
    prompt = "a photo of a hippopotamus"
    spans = token_labels(tokenizer, prompt)
    pieces = tokenizer.tokenize(prompt)
    assert [s.label for s in spans] == ["<start>"] + [p.removesuffix("</w>") for p in pieces] + ["<end>"]
    assert [s.positions for s in spans] == [(i,) for i in range(len(pieces) + 2)]
    merged = token_labels(tokenizer, prompt, merge_subwords=True)
    assert [s.label for s in merged] == ["<start>", "a", "photo", "of", "a", "hippopotamus", "<end>"]
    assert merged[5].positions == tuple(range(5, 5 + len(tokenizer.tokenize("hippopotamus"))))
    assert len(merged[5].positions) > 1


def test_padding_is_found_by_position_not_by_token():
    pipe = tiny_pipeline("sd2")  # pads with "!"
    spans = token_labels(pipe.tokenizer, "wow !", include_padding=True)
    assert [s.label for s in spans[:5]] == ["<start>", "wow", "!", "<end>", "<pad>"]
    assert len(spans) == pipe.tokenizer.model_max_length
    assert token_labels(pipe.tokenizer, "wow !")[-1] == TokenSpan("<end>", (3,))


def test_token_maps_sum_the_pieces_of_a_word(sd1_recording):
    _, rec = sd1_recording
    spans, maps = rec.token_maps(PROMPTS[1], image=1, merge_subwords=True)
    assert maps.shape == (len(spans), HEIGHT, WIDTH)
    word = next(s for s in spans if s.label == "hippopotamus")
    torch.testing.assert_close(maps[spans.index(word)], rec.maps()[1, list(word.positions)].sum(dim=0))
    with pytest.raises(IndexError, match="2 image"):
        rec.token_maps(PROMPTS[1], image=2)


# ------------------------------------------------------------------------------- figures

@pytest.fixture
def token_pair(sd1_recording):
    images, rec = sd1_recording
    spans, maps = rec.token_maps(PROMPTS[0])
    edited = maps.clone()
    edited[-2] *= 3.0  # "roses" attended three times as much in the "edited" model
    return images[0], spans, maps, edited


def test_before_after_shares_one_scale_per_token(token_pair, tmp_path, monkeypatch):
    image, spans, before, after = token_pair
    fig = viz.attention_before_after((image, image), (before, after), spans, title="edit")
    axes = np.array(fig.axes[:-1]).reshape(len(spans) + 1, 2)  # the last axes is the colour bar
    for row, span in enumerate(spans, start=1):
        left, right = (np.asarray(axes[row][c].images[0].get_array()) for c in range(2))
        scale = max(before[row - 1].max().item(), after[row - 1].max().item())
        np.testing.assert_allclose(left, before[row - 1].numpy() / scale, rtol=1e-6)
        np.testing.assert_allclose(right, after[row - 1].numpy() / scale, rtol=1e-6)
        assert axes[row][0].get_ylabel() == span.label
    monkeypatch.setenv(FIGURES_ENV, str(tmp_path))
    assert viz.save_figure(fig, "before_after.png").is_file()
    stretched = viz.attention_before_after((image, image), (before, after), spans, stretch=True)
    axes = np.array(stretched.axes[:-1]).reshape(len(spans) + 1, 2)
    for row in range(1, len(spans) + 1):
        pair = np.stack([np.asarray(axes[row][c].images[0].get_array()) for c in range(2)])
        low = min(before[row - 1].min().item(), after[row - 1].min().item())
        high = max(before[row - 1].max().item(), after[row - 1].max().item())
        np.testing.assert_allclose(pair[0], (before[row - 1].numpy() - low) / (high - low), rtol=1e-5)
        assert pair.min() == pytest.approx(0.0, abs=1e-6) and pair.max() == pytest.approx(1.0)


def test_heatmap_row_and_overlay(token_pair):
    image, spans, maps, _ = token_pair
    row = viz.attention_heatmap_row(maps, spans)
    shown = [np.asarray(ax.images[0].get_array()) for ax in row.axes[: len(spans)]]
    for token_map, data in zip(maps, shown):
        np.testing.assert_allclose(data, token_map.numpy() / token_map.max().item(), rtol=1e-6)
    overlay = viz.attention_heatmap_row(maps, [s.label for s in spans], image=image)
    first = overlay.axes[1]  # axes[0] is the bare image
    assert len(first.images) == 2 and first.images[1].get_extent() == first.images[0].get_extent()
    with pytest.raises(ValueError, match="one label per token map"):
        viz.attention_heatmap_row(maps, spans[:-1])
    with pytest.raises(ValueError, match=r"\(tokens, h, w\)"):
        viz.attention_heatmap_row(maps[None], spans)


def test_position_groups_cover_every_position_once(sd1):
    from timelab.attention import group_maps, position_groups

    tokenizer = sd1.tokenizer
    prompt = "a pack of roses and a dog"
    n_used = len(tokenizer(prompt).input_ids)
    groups = position_groups(tokenizer, prompt)
    assert list(groups) == ["start", "words", "end", "padding"]
    assert groups["start"] == [0] and groups["end"] == [n_used - 1]
    assert groups["words"] == list(range(1, n_used - 1))
    assert groups["padding"] == list(range(n_used, tokenizer.model_max_length))
    by_word = position_groups(tokenizer, prompt, words=True)
    assert "a (2)" in by_word and by_word["a"] == [1]
    assert sorted(sum(by_word.values(), [])) == list(range(tokenizer.model_max_length))
    maps = torch.rand(2, tokenizer.model_max_length, 4, 4)
    grouped = group_maps(maps, by_word)
    assert grouped.shape == (2, len(by_word), 4, 4)
    torch.testing.assert_close(grouped.sum(1), maps.sum(1))
    torch.testing.assert_close(grouped[:, -1], maps[:, n_used:].sum(1))


def test_attention_columns_share_scales_and_sign_differences(token_pair):
    image, spans, before, after = token_pair
    columns = [{"title": "before", "image": image, "maps": before}, {"title": "after", "image": image, "maps": after},
               {"title": "after - before", "maps": after - before, "signed": True}]
    fig = viz.attention_columns(columns, spans)
    axes = np.array(fig.axes[:-2]).reshape(len(spans) + 1, 3)  # the last two axes are colour bars
    for row in range(1, len(spans) + 1):
        scale = max(before[row - 1].max().item(), after[row - 1].max().item())
        shown = np.asarray(axes[row][1].images[1].get_array())  # image, then the map over it
        np.testing.assert_allclose(shown, after[row - 1].numpy() / scale, rtol=1e-5)
        difference = (after - before)[row - 1].numpy()
        signed = np.asarray(axes[row][2].images[0].get_array())
        if np.abs(difference).max() > 0:
            np.testing.assert_allclose(signed, difference / np.abs(difference).max(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="differ in shape"):
        viz.attention_columns([columns[0], {"title": "x", "maps": before[:-1]}], spans)


def test_generate_from_states_equals_generate_from_prompts(sd1):
    from timelab.generation import GenerationSettings, generate as generate_prompts, generate_from_states

    settings = GenerationSettings(steps=2, guidance_scale=7.5, height=64, width=64, batch_size=3)
    prompts = ["a pack of roses", "a dog"]
    expected = generate_prompts(sd1, prompts, [0, 1], settings)
    got = generate_from_states(sd1, encode_prompts(sd1, prompts), [0, 1], settings)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="prompts, tokens, width"):
        generate_from_states(sd1, encode_prompts(sd1, prompts)[0], [0], settings)
