"""Evaluation items and the TIMED CSV formats they are read from and written to.

Two kinds of item, in the authors' two CSV layouts:

- :class:`EditItem` (22 columns: ``old, new, positive1, gt1, ..., positive5, gt5, negative1, gn1, ...,
  negative5, gn5``): an edit ``source -> destination``, five *related* prompts that should follow the
  edit (each with the form it should then take) and five *unrelated* prompts that should not (each
  with the form it would take if the edit leaked into it).
- :class:`BiasItem` (8 columns: ``old, new, validation, ex1, ..., ex5``): a debiasing edit, one
  validation prompt to tune lambda on and five held-out prompts to measure the result on.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..files import atomic_path

N_PROMPTS = 5
EDIT_COLUMNS = (
    ["old", "new"]
    + [f"{name}{i}" for i in range(1, N_PROMPTS + 1) for name in ("positive", "gt")]
    + [f"{name}{i}" for i in range(1, N_PROMPTS + 1) for name in ("negative", "gn")]
)
BIAS_COLUMNS = ["old", "new", "validation"] + [f"ex{i}" for i in range(1, N_PROMPTS + 1)]

# The two values of TIMED's two-way attribute (the gender set), as they appear in its prompts.
GENDER_VALUES = ("female", "male")


@dataclass(frozen=True)
class EditItem:
    """One TIMED item: ``related`` pairs are (prompt, edited form); ``unrelated`` are (prompt, leaked form)."""

    source: str
    destination: str
    related: tuple[tuple[str, str], ...]
    unrelated: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        return f"{self.source} -> {self.destination}"

    def row(self) -> list[str]:
        cells = [self.source, self.destination]
        for pairs in (self.related, self.unrelated):
            for prompt, form in pairs:
                cells += [prompt, form]
        return cells


@dataclass(frozen=True)
class BiasItem:
    """One debiasing item. ``values`` = (the attribute value the destination adds, the other value)."""

    source: str
    destination: str
    validation: str
    held_out: tuple[str, ...]
    values: tuple[str, str]

    @property
    def key(self) -> str:
        return f"{self.source} -> {self.destination}"

    @property
    def candidates(self) -> tuple[str, str]:
        """The two captions a judge chooses between: the destination's other-value twin, then the destination."""
        return (swap_value(self.destination, *self.values), self.destination)

    def row(self) -> list[str]:
        return [self.source, self.destination, self.validation, *self.held_out]


def swap_value(prompt: str, value: str, other: str) -> str:
    """``prompt`` with the word ``value`` replaced by ``other`` (whole words only, exactly once)."""
    pattern = re.compile(rf"\b{re.escape(value)}\b")
    if len(pattern.findall(prompt)) != 1:
        raise ValueError(f"expected the attribute word {value!r} exactly once in {prompt!r}")
    return pattern.sub(other, prompt)


def attribute_values(destination: str, values: Sequence[str] = GENDER_VALUES) -> tuple[str, str]:
    """(value found in ``destination``, the other one) for a two-way attribute."""
    found = [v for v in values if re.search(rf"\b{re.escape(v)}\b", destination)]
    if len(found) != 1:
        raise ValueError(f"destination {destination!r} must name exactly one of {list(values)}")
    return found[0], next(v for v in values if v != found[0])


def _rows(text: str, columns: list[str], origin: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != columns:
        got = rows[0] if rows else "an empty file"
        raise ValueError(f"{origin}: expected the header {','.join(columns)}; got {got}")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns) or not all(cell.strip() for cell in row):
            raise ValueError(f"{origin}, line {number}: expected {len(columns)} non-empty cells, got {row}")
    return rows[1:]


def parse_edit_items(text: str, origin: str = "<text>") -> list[EditItem]:
    """Items from the 22-column TIMED layout."""
    items = []
    for row in _rows(text, EDIT_COLUMNS, origin):
        pairs = [(row[i], row[i + 1]) for i in range(2, len(row), 2)]
        items.append(EditItem(row[0], row[1], tuple(pairs[:N_PROMPTS]), tuple(pairs[N_PROMPTS:])))
    return items


def parse_bias_items(text: str, origin: str = "<text>", values: Sequence[str] = GENDER_VALUES) -> list[BiasItem]:
    """Items from the 8-column gender layout; the attribute value is read from the destination."""
    return [BiasItem(row[0], row[1], row[2], tuple(row[3:]), attribute_values(row[1], values))
            for row in _rows(text, BIAS_COLUMNS, origin)]


def read_items(path: str | os.PathLike, values: Sequence[str] = GENDER_VALUES) -> list[EditItem] | list[BiasItem]:
    """Items from a CSV in either layout, told apart by its header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no item file at {path}")
    text = path.read_text(encoding="utf-8")
    header = next(csv.reader(io.StringIO(text)), [])
    if header == BIAS_COLUMNS:
        return parse_bias_items(text, str(path), values)
    return parse_edit_items(text, str(path))


def write_items(path: str | os.PathLike, items: Iterable[EditItem] | Iterable[BiasItem]) -> Path:
    """Write items in their CSV layout, atomically."""
    items = list(items)
    if not items:
        raise ValueError("write_items needs at least one item")
    columns = BIAS_COLUMNS if isinstance(items[0], BiasItem) else EDIT_COLUMNS
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(item.row() for item in items)
    return Path(path)
