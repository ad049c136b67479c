"""Efficacy, generality, specificity and the bias gap Delta, from judge outcomes.

An item's outcomes for one metric are *hits*, an ``(n_prompts, n_seeds)`` 0/1 array:

- efficacy: the source prompt's images judged closer to the destination prompt than to the source
  (one prompt);
- generality: each related prompt's images judged closer to its edited form than to itself (five);
- specificity: each unrelated prompt's images judged still closer to itself than to its leaked form
  (five).

The item's score averages over its prompts for each seed, then over seeds,
``score = (1/S) sum_s (1/P) sum_p hits[p, s]``; a dataset's score is the mean of its items' scores,
with the standard error over items. One item has no spread over items: its uncertainty is over its
``n = P S`` images instead, Wilson's score interval for the ``k`` hits among them (see :func:`wilson`).
For a two-way attribute, ``p`` is the share of an item's images judged as the destination's value
and ``Delta = |p - 0.5| / 0.5`` (0: balanced, 1: all one value); "Delta per prompt" averages each
prompt's own Delta instead.

Attributes kept (judges that read attributes, i.e. TinyWorld's oracle): for one prompt and one
attribute the edit should leave alone, ``1 - TV(P, Q)`` where ``P`` and ``Q`` are the empirical
distributions of the attribute's value over the prompt's images before and after the edit (same
seeds), and ``TV(P, Q) = 1/2 sum_v |P(v) - Q(v)|`` (see :func:`total_variation`;
:mod:`timelab.evaluation.tinyworld.attributes` names the attributes); 1 = the distribution
did not move. :func:`kept_score` averages them.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from collections import Counter
from typing import Hashable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

METRICS = ("efficacy", "generality", "specificity")
Z95 = NormalDist().inv_cdf(0.975)  # 1.95996...: the two-sided 95% quantile of the standard normal


class Estimate(NamedTuple):
    """A score and its uncertainty ``[low, high]``: mean ± ``sem`` over items, or, for one item
    (``sem`` None), Wilson's 95% interval over its images."""

    mean: float
    low: float
    high: float
    sem: float | None = None


def as_hits(hits: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    array = np.asarray(hits, dtype=np.float64)
    if array.ndim != 2 or array.size == 0 or not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"hits must be a non-empty (n_prompts, n_seeds) array of 0/1, got {hits!r}")
    return array


def per_seed(hits) -> np.ndarray:
    """Share of hits among the prompts, for each seed: shape ``(n_seeds,)``."""
    return as_hits(hits).mean(axis=0)


def item_score(hits) -> float:
    """Mean over seeds of the per-seed share."""
    return float(per_seed(hits).mean())


def mean_and_sem(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to average")
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
    return float(values.mean()), sem


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial share: ``hits`` successes in ``n`` trials, ``p = hits / n``.

    Every ``p'`` that the score test does not reject, ``|p - p'| <= z sqrt(p' (1 - p') / n)``; the ends
    are the roots of that quadratic in ``p'``:
    ``(p + z^2/2n -+ z sqrt(p (1 - p) / n + z^2/4n^2)) / (1 + z^2/n)``. Unlike ``p -+ z sqrt(p (1 - p) / n)``
    it stays inside [0, 1] and does not shrink to a point at ``p`` = 0 or 1 (0 of 6: [0, 0.39]); there
    one end is exactly 0 or 1, which rounding would miss.
    """
    if n < 1 or not 0 <= hits <= n:
        raise ValueError(f"need 0 <= hits <= n and n >= 1, got {hits} of {n}")
    p, z2 = hits / n, z * z / n
    centre = p + z2 / 2
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n))
    low = 0.0 if hits == 0 else (centre - half) / (1 + z2)
    return low, 1.0 if hits == n else (centre + half) / (1 + z2)


def estimate(hits_per_item: Sequence) -> Estimate:
    """The items' mean score ± SEM; for a single item, its score with :func:`wilson` over its images."""
    if len(hits_per_item) == 1:
        hits = as_hits(hits_per_item[0])
        return Estimate(item_score(hits), *wilson(int(hits.sum()), hits.size))
    mean, sem = mean_and_sem(item_score(hits) for hits in hits_per_item)
    return Estimate(mean, mean - sem, mean + sem, sem)


def delta(p: float) -> float:
    """Distance from balance of a two-way share: ``|p - 0.5| / 0.5``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a share must lie in [0, 1], got {p}")
    return abs(p - 0.5) / 0.5


def per_prompt_delta(hits) -> float:
    """Mean over prompts of each prompt's own ``Delta`` (stricter than the item's pooled ``Delta``:
    one prompt all one value and another all the other average to 1 here, to 0 pooled)."""
    return float(np.mean([delta(p) for p in as_hits(hits).mean(axis=1)]))


class RowLabel(str):
    """The display name of a result row (``unedited``, ``TIME (lambda=0.1)``, ``oracle``) that also keeps
    the row's ``model`` and ``lamb``, so tables and figures order rows and read lambda without parsing text."""

    model: str
    lamb: float | None

    def __new__(cls, model: str, lamb: float | None = None) -> "RowLabel":
        label = super().__new__(cls, model if lamb is None else f"{model} (lambda={lamb:g})")
        label.model, label.lamb = model, lamb
        return label

    @property
    def order(self) -> tuple[int, float]:
        """Where the row goes: unedited first, then the edited rows by lambda, the oracle last."""
        return ({"unedited": 0, "oracle": 2}.get(self.model, 1), self.lamb or 0.0)


def row_label(row: dict) -> RowLabel:
    """Display name of one result row: ``unedited``, ``oracle`` or ``TIME (lambda=0.1)``."""
    return RowLabel(row["model"], row.get("lamb"))


def summarize_edits(records: Sequence[dict]) -> dict[RowLabel, dict[str, Estimate]]:
    """Per row label (:class:`RowLabel`) and metric, the :func:`estimate` over the items that have that row."""
    if not records:
        raise ValueError("no records to summarize")
    rows: dict[str, list[dict]] = {}
    for record in records:
        for row in record["rows"]:
            rows.setdefault(row_label(row), []).append(row)
    return {label: {m: estimate([row[m] for row in same]) for m in METRICS} for label, same in rows.items()}


def summarize_bias(records: Sequence[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per row (``unedited``, ``TIME``): mean over items of ``p``, ``Delta`` and ``Delta per prompt``.

    Each record holds held-out hits (1 = judged as the destination's value) for both rows.
    """
    if not records:
        raise ValueError("no records to summarize")
    out = {}
    for name in ("unedited", "TIME"):
        shares = [item_score(r["held_out"][name]) for r in records]
        out[name] = {"p": mean_and_sem(shares), "Delta": mean_and_sem(delta(p) for p in shares),
                     "Delta per prompt": mean_and_sem(per_prompt_delta(r["held_out"][name]) for r in records)}
    return out


def total_variation(before: Sequence[Hashable], after: Sequence[Hashable]) -> float:
    """Total variation distance between the empirical distributions of two samples of values:
    ``TV(P, Q) = 1/2 sum_v |P(v) - Q(v)|`` with ``P(v)`` the share of ``before`` equal to ``v`` (and
    ``Q`` of ``after``), summed over every value seen in either. 0: the same distribution; 1: no value
    in common. The samples may differ in size."""
    if not before or not after:
        raise ValueError("total_variation needs two non-empty samples")
    p, q = Counter(before), Counter(after)
    return 0.5 * sum(abs(p[v] / len(before) - q[v] / len(after)) for v in p.keys() | q.keys())


def kept_score(kept_rows: Sequence[Mapping[str, float]], full_names: bool = False) -> dict:
    """Summarise a row's ``"kept"`` entries (one dict attribute -> 1 - TV per judged prompt; pool items
    by concatenating their lists), as a JSON-ready dict:

    - ``"mean"``: the mean over prompts of the mean over the prompt's attributes, so every prompt weighs
      the same whatever the number of objects it names;
    - ``"per_attribute"``: per attribute, the mean over every prompt that measured it; names drop the
      kind (``"square.colour"`` counts as ``"colour"``: ``"kind"``, ``"colour"``, ``"size"``,
      ``"position"``, ``"background"``, ``"objects"``) unless ``full_names``.
    """
    if not kept_rows or not all(kept_rows):
        raise ValueError("kept_score needs at least one prompt, each with at least one attribute")
    groups: dict[str, list[float]] = {}
    for kept in kept_rows:
        for name, value in kept.items():
            groups.setdefault(name if full_names else name.rpartition(".")[2], []).append(float(value))
    mean = float(np.mean([np.mean(list(kept.values())) for kept in kept_rows]))
    return {"mean": mean, "per_attribute": {name: float(np.mean(values)) for name, values in sorted(groups.items())}}


def summarize_kept(records: Sequence[dict]) -> dict[str, dict]:
    """Per row label (rows with a ``"kept"`` entry only: the edited ones, judged by an attribute reader),
    :func:`kept_score` over every item's prompts pooled."""
    pooled: dict[str, list] = {}
    for record in records:
        for row in record["rows"]:
            if "kept" in row:
                pooled.setdefault(row_label(row), []).extend(row["kept"])
    return {label: kept_score(kept) for label, kept in pooled.items()}
