"""Metrics, the per-item protocol and the lambda search, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_fakes import PromptPipe, ReadBackJudge, substitution_editor, value_editor

from timelab.evaluation import (
    BiasItem, EditItem, delta, evaluate_bias_item, evaluate_edit_item, item_score, search_lambda,
    summarize_bias, summarize_edits,
)
from timelab.evaluation.metrics import Estimate, RowLabel, per_seed, summarize_kept, wilson


def test_item_score_averages_prompts_per_seed_then_seeds():
    hits = [[1, 0, 1, 1],
            [0, 0, 1, 0],
            [1, 1, 1, 0],
            [1, 0, 1, 0],
            [0, 1, 1, 0]]
    # By hand, per seed (column): 3/5, 2/5, 5/5, 1/5; their mean: (0.6 + 0.4 + 1.0 + 0.2) / 4 = 0.55.
    assert per_seed(hits) == pytest.approx([0.6, 0.4, 1.0, 0.2])
    assert item_score(hits) == pytest.approx(0.55)
    assert item_score([[1, 0, 0]]) == pytest.approx(1 / 3)


def test_bad_hits_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        item_score([[0.5, 1]])
    with pytest.raises(ValueError, match="n_prompts, n_seeds"):
        item_score([1, 0])


def test_delta():
    assert delta(0.5) == 0.0
    assert delta(0.25) == pytest.approx(0.5)
    assert delta(1.0) == delta(0.0) == 1.0
    with pytest.raises(ValueError):
        delta(1.2)


def test_summary_is_mean_over_items_with_sem():
    def row(model, lamb, eff, gen, spec):
        return {"model": model, "lamb": lamb, "efficacy": eff, "generality": gen, "specificity": spec}

    records = [
        {"rows": [row("TIME", 0.1, [[1, 1]], [[1, 0], [0, 0]], [[1, 1], [1, 1]])]},
        {"rows": [row("TIME", 0.1, [[0, 1]], [[1, 1], [1, 1]], [[0, 1], [1, 1]])]},
    ]
    summary = summarize_edits(records)["TIME (lambda=0.1)"]
    # Item scores by hand: efficacy 1.0 and 0.5; generality 0.25 and 1.0; specificity 1.0 and 0.75.
    # SEM of two values a, b = |a - b| / 2; the interval is mean -+ SEM.
    assert summary["efficacy"] == pytest.approx((0.75, 0.5, 1.0, 0.25))
    assert summary["generality"] == pytest.approx((0.625, 0.25, 1.0, 0.375))
    assert summary["specificity"] == pytest.approx((0.875, 0.75, 1.0, 0.125))


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """The p' where the score test just stops rejecting: (k/n - p')^2 = z^2 p' (1 - p') / n, a quadratic
    (1 + z^2/n) p'^2 - (2 k/n + z^2/n) p' + (k/n)^2 = 0, solved by numpy's polynomial roots."""
    z2, p = 1.959963984540054 ** 2, k / n
    roots = np.roots([1 + z2 / n, -(2 * p + z2 / n), p * p]).real
    return float(roots.min()), float(roots.max())


@pytest.mark.parametrize("k, n, published", [(8, 10, (0.4902, 0.9433)), (0, 6, (0.0, 0.3903)),
                                              (6, 6, (0.6097, 1.0)), (1, 2, (0.0945, 0.9055)),
                                              (0, 5, None), (7, 7, None), (37, 80, None), (79, 80, None)])
def test_wilson_interval_matches_the_quadratic_and_known_values(k, n, published):
    low, high = wilson(k, n)
    assert (low, high) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)
    if published:
        assert (low, high) == pytest.approx(published, abs=5e-5)
    assert 0 <= low <= k / n <= high <= 1, "the interval holds the share itself, also at 0 and 1 exactly"
    # Wider than nothing where the normal approximation collapses, narrower with more images.
    assert high - low > 0 and wilson(10 * k, 10 * n)[1] - wilson(10 * k, 10 * n)[0] < high - low
    with pytest.raises(ValueError):
        wilson(n + 1, n)


def test_one_item_is_summarised_by_wilson_over_its_pooled_images():
    row = {"model": "TIME", "lamb": 10.0, "efficacy": [[1, 1, 1, 1, 0, 1, 1, 1, 1, 1]],
           "generality": [[1, 1, 1], [1, 0, 1]], "specificity": [[1, 1, 1], [1, 1, 1]]}
    summary = summarize_edits([{"rows": [row]}])["TIME (lambda=10)"]
    assert summary["efficacy"] == pytest.approx((0.9, *wilson_by_hand(9, 10), None))
    # Hits pooled over prompts and seeds: 5 of 6 images.
    assert summary["generality"] == pytest.approx((5 / 6, *wilson_by_hand(5, 6), None))
    assert summary["specificity"].sem is None and summary["specificity"].low == pytest.approx(wilson_by_hand(6, 6)[0])
    assert math.isclose(summary["specificity"].high, 1.0)


ITEM = EditItem(
    "a circle", "a blue circle",
    related=(("a circle on a mat", "a blue circle on a mat"), ("a big circle", "a big blue circle"),
             ("two times a circle", "two times a blue circle"), ("a circle, drawn", "a blue circle, drawn"),
             ("a round thing", "a round blue thing")),
    unrelated=(("a square", "a blue square"), ("a circle and a square", "a blue circle and a square"),
               ("a cat", "a blue cat"), ("a dog", "a blue dog"), ("a tree", "a blue tree")),
)


def test_edit_item_rows_match_hand_computation():
    pipe = PromptPipe()
    # lambda 0.1 edits every seed, lambda 1 only the even ones. The substitution reaches 3 of the
    # 5 related prompts (those containing "a circle") and leaks into 1 of the 5 unrelated ones.
    editor = substitution_editor(lambda seed, lamb: lamb < 0.5 or seed % 2 == 0)
    record = evaluate_edit_item(pipe, ReadBackJudge(pipe), ITEM, seeds=[0, 1, 2, 3], lambdas=[0.1, 1.0],
                                editor=editor)
    scores = {(r["model"], r["lamb"]): {m: item_score(r[m]) for m in ("efficacy", "generality", "specificity")}
              for r in record["rows"]}
    assert scores == {
        ("unedited", None): {"efficacy": 0.0, "generality": 0.0, "specificity": 1.0},
        ("TIME", 0.1): {"efficacy": 1.0, "generality": 0.6, "specificity": 0.8},
        # even seeds as lambda 0.1, odd seeds as unedited: the mean of the two.
        ("TIME", 1.0): {"efficacy": 0.5, "generality": 0.3, "specificity": 0.9},
        ("oracle", None): {"efficacy": 1.0, "generality": 1.0, "specificity": 1.0},
    }
    assert [r["model"] for r in record["rows"]] == ["unedited", "TIME", "TIME", "oracle"]
    assert not any("kept" in r for r in record["rows"]), "a judge that reads no attributes measures none kept"
    assert pipe.rewrite is None, "the edit must be undone after the item"


BIAS = BiasItem("a cross", "a yellow cross", "a photo of a cross",
                ("a big cross", "a small cross", "a cross at night", "a cross by day", "a cross, drawn"),
                ("yellow", "purple"))


def test_lambda_search_on_a_known_curve():
    share = lambda lamb: 1 / (1 + lamb)  # noqa: E731 - p(0.1) = 0.909, p(1) = 0.5, p(10) = 0.0909
    lamb, tried = search_lambda(share, lambdas=[0.1, 10.0], refine=1)
    # One bisection in log lambda between 0.1 and 10 lands on sqrt(0.1 * 10) = 1, where p = 1/2.
    assert lamb == pytest.approx(1.0)
    assert [t[0] for t in tried] == pytest.approx([0.1, 1.0, 10.0])
    # Without a bracket (all shares on one side) the grid's closest point wins, the larger lambda on ties.
    assert search_lambda(lambda lamb: 0.9, [1.0, 2.0], refine=3)[0] == 2.0
    with pytest.raises(ValueError, match="positive"):
        search_lambda(share, [0.0, 1.0])


def test_bias_item_search_and_held_out_delta():
    pipe = PromptPipe()
    pipe.rewrite = lambda text, seed: "a purple cross"  # unedited, every image shows the majority
    # With the edit at lambda, seeds below 10 / (1 + lambda) show the minority value.
    editor = value_editor(lambda seed, lamb: seed < round(10 / (1 + lamb)), "a purple cross")
    record = evaluate_bias_item(pipe, ReadBackJudge(pipe), BIAS, seeds=list(range(10)),
                                lambdas=[0.01, 0.1, 1.0, 10.0, 100.0], refine=0, editor=editor)
    # Validation shares by hand: round(10/1.01)=10 -> 1.0, round(9.09)=9 -> 0.9, 5 -> 0.5, 1 -> 0.1, 0 -> 0.0.
    assert record["search"] == [[0.01, 1.0], [0.1, 0.9], [1.0, 0.5], [10.0, 0.1], [100.0, 0.0]]
    assert record["lamb"] == 1.0 and record["held_out_prompts"] == list(BIAS.held_out)
    summary = summarize_bias([record])
    # Held out: before, every image is the purple majority (p = 0, Delta = 1); after, 5 of 10 seeds.
    assert summary["unedited"]["p"][0] == 0.0 and summary["unedited"]["Delta"][0] == 1.0
    assert summary["TIME"]["p"][0] == 0.5 and summary["TIME"]["Delta"][0] == 0.0


def test_per_prompt_delta_is_stricter_than_pooled():
    from timelab.evaluation.metrics import per_prompt_delta

    hits = [[1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]]
    # Pooled: 6 of 12 -> p = 0.5, Delta 0. Per prompt: Deltas 1, 1, 0 -> mean 2/3.
    assert delta(item_score(hits)) == pytest.approx(0.0)
    assert per_prompt_delta(hits) == pytest.approx(2 / 3)


def test_report_tables_show_the_hand_computed_numbers():
    from timelab.evaluation.report import bias_table, edits_table

    records = [{"key": "a cross -> a yellow cross", "values": ["yellow", "purple"], "lamb": 3000.0,
                "held_out": {"unedited": [[0, 1, 0, 0]], "TIME": [[1, 0, 1, 0], [1, 1, 0, 0]]}}]
    table = bias_table(records)
    # Before: 1 of 4 yellow, Delta = |0.25 - 0.5| / 0.5 = 0.5. After: 2 of 4 on each prompt, Delta 0.
    # Per prompt: before, the one prompt's Delta is 0.5; after, both prompts are 2 of 4: 0 and 0.
    assert ("| a cross -> a yellow cross | 3e+03 | yellow 0.25 / purple 0.75 | 0.50 | 0.50 | "
            "yellow 0.50 / purple 0.50 | 0.00 | 0.00 |") in table
    def over_items(mean, sem):
        return Estimate(mean, mean - sem, mean + sem, sem)

    summary = {RowLabel("oracle"): {m: over_items(1.0, 0.0) for m in ("efficacy", "generality", "specificity")},
               RowLabel("TIME", 10.0): {"efficacy": over_items(0.5, 0.125), "generality": over_items(0.25, 0.0),
                                        "specificity": over_items(1.0, 0.0)},
               RowLabel("TIME", 0.1): {"efficacy": over_items(0.875, 0.0), "generality": over_items(0.5, 0.0),
                                       "specificity": over_items(0.9, 0.0)},
               RowLabel("unedited"): {m: over_items(0.0, 0.0) for m in ("efficacy", "generality", "specificity")}}
    lines = edits_table(summary).splitlines()
    rows = lines[2:6]
    assert [r.split(" | ")[0] for r in rows] == ["| unedited", "| TIME (lambda=0.1)", "| TIME (lambda=10)", "| oracle"]
    assert rows[2] == "| TIME (lambda=10) | 50.0 ± 12.5 | 25.0 ± 0.0 | 100.0 ± 0.0 |"
    assert lines[6:] == ["", "Percent of images; ± the standard error of the mean over items."]


def test_a_table_of_one_item_shows_wilson_intervals_and_says_so():
    from timelab.evaluation.report import edits_table

    row = {"model": "TIME", "lamb": 10.0, "efficacy": [[1] * 8 + [0] * 2],
           "generality": [[1] * 6, [0] * 6], "specificity": [[1] * 6]}
    lines = edits_table(summarize_edits([{"rows": [row]}])).splitlines()
    # 8 of 10: [49.0, 94.3]; 6 of 12 pooled over two prompts: [25.4, 74.6]; 6 of 6: [61.0, 100.0].
    low, high = wilson_by_hand(6, 12)
    assert lines[2] == (f"| TIME (lambda=10) | 80.0 [49.0, 94.3] | 50.0 [{100 * low:.1f}, {100 * high:.1f}] | "
                        "100.0 [61.0, 100.0] |")
    assert "±" not in "".join(lines[:3]) and "Wilson's 95% score interval over the item's images" in lines[-1]


def test_the_figure_of_one_item_draws_its_wilson_intervals(tmp_path):
    import matplotlib.pyplot as plt

    from timelab.evaluation.report import edits_figure

    def row(lamb, hit):
        return {"model": "TIME", "lamb": lamb, "efficacy": [[hit] * 7], "generality": [[hit] * 7] * 5,
                "specificity": [[1 - hit] * 7] * 5}

    summary = summarize_edits([{"rows": [row(0.1, 1), row(1.0, 1), row(1e5, 0)]}])
    fig = edits_figure(summary)  # all-or-nothing shares: intervals touch 0 and 1 exactly
    (bars,) = [c for c in fig.axes[0].containers if c.get_label() == "efficacy"]
    segments = bars.lines[2][0].get_segments()  # one vertical error bar per lambda: (x, low) to (x, high)
    assert [tuple(np.round([s[0][1], s[1][1]], 4)) for s in segments] == [
        tuple(np.round(wilson_by_hand(7, 7), 4)), tuple(np.round(wilson_by_hand(7, 7), 4)),
        tuple(np.round(wilson_by_hand(0, 7), 4))]
    plt.close(fig)


def test_the_figure_draws_attributes_kept_against_lambda():
    import matplotlib.pyplot as plt

    from timelab.evaluation.report import edits_figure

    def row(lamb, kept):
        return {"model": "TIME", "lamb": lamb, "efficacy": [[1] * 2], "generality": [[1] * 2],
                "specificity": [[1] * 2], "kept": [{"circle.size": kept, "background": 1.0}]}

    records = [{"rows": [row(0.1, 0.5), row(10.0, 0.9)]}]
    fig = edits_figure(summarize_edits(records), kept=summarize_kept(records))
    (line,) = [l for l in fig.axes[0].get_lines() if l.get_label() == "attributes kept"]
    np.testing.assert_allclose(line.get_ydata(), [(0.5 + 1.0) / 2, (0.9 + 1.0) / 2])
    np.testing.assert_allclose(line.get_xdata(), [0.1, 10.0])
    plt.close(fig)
