"""Preservation in TIME's closed form: preserved prompts' states join the key system with their current
projections as targets (one solve), checked against an independent normal-equation solve."""

from __future__ import annotations

import pytest
import torch

from timelab import load_edit, time_edit
from timelab.editing import encode_prompts, keys_and_aligned_states, edit_pairs

SOURCE, DESTINATION = "a pack of roses", "a pack of blue roses"
KEPT = ["a red car", "a bowl of tulips"]


def independent_solution(W, C, Cstar, P, lamb, s):
    """argmin ||W' C^T - W C*^T||^2 + lamb ||W' - W||^2 + s ||W' P^T - W P^T||^2, from its normal equations."""
    W, C, Cstar, P = (t.double() for t in (W, C, Cstar, P))
    A = lamb * torch.eye(C.shape[1], dtype=torch.float64) + C.T @ C + s * P.T @ P
    B = lamb * W + W @ Cstar.T @ C + s * W @ P.T @ P
    return torch.linalg.solve(A, B.T).T


def test_preserving_equals_the_independent_solve_of_the_generalised_objective(sd1_pipe):
    C, Cstar = keys_and_aligned_states(sd1_pipe, edit_pairs([SOURCE], [DESTINATION]))
    P = encode_prompts(sd1_pipe, KEPT).reshape(-1, C.shape[1])
    edit = time_edit(sd1_pipe, SOURCE, DESTINATION, lamb=0.1, preserve=KEPT, preserve_weight=3.0)
    for name in edit.layer_names:
        expected = independent_solution(edit.original[name], C, Cstar, P, 0.1, 3.0)
        torch.testing.assert_close(edit.edited[name].double(), expected, rtol=1e-4, atol=1e-5)


def test_preserved_prompts_move_less_the_more_they_weigh(sd1_pipe):
    P = encode_prompts(sd1_pipe, KEPT).reshape(-1, encode_prompts(sd1_pipe, [SOURCE]).shape[-1]).double()

    def moved(**preserving) -> float:
        with time_edit(sd1_pipe, SOURCE, DESTINATION, **preserving) as edit:
            return sum(((edit.edited[n].double() - edit.original[n].double()) @ P.T).norm().item()
                       for n in edit.layer_names)

    free, light, heavy = moved(), moved(preserve=KEPT, preserve_weight=1.0), moved(preserve=KEPT, preserve_weight=100.0)
    assert heavy < light < free, (free, light, heavy)
    assert heavy < free / 5


def test_the_settings_travel_in_the_edit_file(sd1_pipe, tmp_path):
    edit = time_edit(sd1_pipe, SOURCE, DESTINATION, preserve=KEPT, preserve_weight=2.5)
    path = edit.save(tmp_path / "kept.safetensors")
    loaded = load_edit(sd1_pipe, path)
    assert loaded.settings == edit.settings
    assert loaded.settings.preserve == tuple(KEPT) and loaded.settings.preserve_weight == 2.5


@pytest.mark.parametrize("preserving, words", [
    (dict(preserve=[SOURCE]), "both edited and preserved"),
    (dict(preserve=["A photo of a pack of roses"]), "both edited and preserved"),  # an augmented source
    (dict(preserve=[]), "preserve is empty"),
    (dict(preserve=KEPT, preserve_weight=0.0), "preserve_weight must be > 0"),
    (dict(preserve=KEPT, preserve_weight=-1.0), "preserve_weight must be > 0"),
])
def test_bad_preservation_is_refused_and_changes_nothing(sd1_pipe, preserving, words):
    active = time_edit(sd1_pipe, "a cat", "a black cat")
    before = {n: w.clone() for n, w in active.edited.items()}
    with pytest.raises(ValueError, match=words):
        time_edit(sd1_pipe, SOURCE, DESTINATION, **preserving)
    assert active.active
    for name, weight in before.items():
        assert torch.equal(sd1_pipe.unet.get_submodule(name).weight, weight)


# ------------------------------------------------------------------------------------ leakage
def test_leakage_is_the_relative_change_of_the_projected_states(sd1_pipe):
    import timelab

    prompts = ["a pack of roses", "a red car", "a bowl of tulips"]
    with time_edit(sd1_pipe, SOURCE, DESTINATION) as edit:
        predicted = timelab.leakage(edit, prompts, batch_size=2)
        for k, prompt in enumerate(prompts):  # directly: every position, every matrix
            states = encode_prompts(sd1_pipe, [prompt])[0].double()
            change = sum(((edit.edited[n].double() - edit.original[n].double()) @ states.T).norm() ** 2
                         for n in edit.layer_names)
            size = sum((edit.original[n].double() @ states.T).norm() ** 2 for n in edit.layer_names)
            assert predicted[k].item() == pytest.approx((change / size).sqrt().item(), rel=1e-6)
    assert predicted[0] > predicted[1] and predicted[0] > predicted[2], "the edited prompt moves most"
    with pytest.raises(ValueError, match="at least one prompt"):
        timelab.leakage(edit, [])
