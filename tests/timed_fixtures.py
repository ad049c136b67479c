"""Small made-up item files in TIMED's two CSV layouts, so parsing and download tests run on a fresh clone.

Every prompt here is our own invention: the real TIMED files have no licence and are never copied into
the repository (not even a row). The layouts follow ../shared/data/timed/README.md:

- edit layout, 22 columns: old, new, positive1, gt1, ..., positive5, gt5, negative1, gn1, ..., negative5, gn5
- gender layout, 8 columns: old, new, validation, ex1, ..., ex5

The CSV text is written out literally (quoting as Python's csv module writes it: only cells with a comma
or a double quote are quoted, quotes doubled, "\\n" line ends), and the rows it holds are listed beside it,
so a test can compare the parser with the rows and the writer with the text, each independently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EDIT_HEADER = (
    "old,new,positive1,gt1,positive2,gt2,positive3,gt3,positive4,gt4,positive5,gt5,"
    "negative1,gn1,negative2,gn2,negative3,gn3,negative4,gn4,negative5,gn5"
)
GENDER_HEADER = "old,new,validation,ex1,ex2,ex3,ex4,ex5"

EDIT_ROWS = [
    [
        "a rose", "a blue rose",
        "a rose, watercolour", "a blue rose, watercolour",
        "a rose in a glass jar", "a blue rose in a glass jar",
        "a rose garden at noon", "a blue rose garden at noon",
        "a rose on a wooden table", "a blue rose on a wooden table",
        "a wilted rose", "a wilted blue rose",
        "a tulip", "a blue tulip",
        "a daisy", "a blue daisy",
        "a sunflower field", "a blue sunflower field",
        "a lily", "a blue lily",
        "an orchid", "a blue orchid",
    ],
    [
        "An apple", "A green apple",
        'a sign saying "apple"', 'a sign saying "green apple"',
        "an apple pie", "a green apple pie",
        "a crème brûlée beside an apple", "a crème brûlée beside a green apple",
        "an apple tree in spring", "a green apple tree in spring",
        "apples in a bowl", "green apples in a bowl",
        "a pear", "a green pear",
        "a plum", "a green plum",
        "a peach, still life", "a green peach, still life",
        "a cherry", "a green cherry",
        "a lemon", "a green lemon",
    ],
]
EDIT_CSV = (
    EDIT_HEADER + "\n"
    'a rose,a blue rose,"a rose, watercolour","a blue rose, watercolour",a rose in a glass jar,'
    "a blue rose in a glass jar,a rose garden at noon,a blue rose garden at noon,a rose on a wooden table,"
    "a blue rose on a wooden table,a wilted rose,a wilted blue rose,a tulip,a blue tulip,a daisy,a blue daisy,"
    "a sunflower field,a blue sunflower field,a lily,a blue lily,an orchid,a blue orchid\n"
    'An apple,A green apple,"a sign saying ""apple""","a sign saying ""green apple""",an apple pie,'
    "a green apple pie,a crème brûlée beside an apple,a crème brûlée beside a green apple,"
    "an apple tree in spring,a green apple tree in spring,apples in a bowl,green apples in a bowl,a pear,"
    'a green pear,a plum,a green plum,"a peach, still life","a green peach, still life",a cherry,'
    "a green cherry,a lemon,a green lemon\n"
)

# Each gender row with the attribute value its destination adds and the other value, read by hand.
GENDER_ROWS = [
    ["a beekeeper", "a female beekeeper", "a portrait of a beekeeper", "a beekeeper at dawn",
     "a beekeeper, oil painting", "a smiling beekeeper", "a beekeeper near the hives", "a beekeeper in a field"],
    ["a lighthouse keeper", "a male lighthouse keeper", "a portrait of a lighthouse keeper",
     "a lighthouse keeper at dusk", "a lighthouse keeper, charcoal sketch", "a tired lighthouse keeper",
     "a lighthouse keeper on the stairs", "a lighthouse keeper in the rain"],
]
GENDER_VALUES_BY_ROW = [("female", "male"), ("male", "female")]
GENDER_CANDIDATES_BY_ROW = [("a male beekeeper", "a female beekeeper"),
                            ("a female lighthouse keeper", "a male lighthouse keeper")]
GENDER_CSV = (
    GENDER_HEADER + "\n"
    'a beekeeper,a female beekeeper,a portrait of a beekeeper,a beekeeper at dawn,"a beekeeper, oil painting",'
    "a smiling beekeeper,a beekeeper near the hives,a beekeeper in a field\n"
    "a lighthouse keeper,a male lighthouse keeper,a portrait of a lighthouse keeper,a lighthouse keeper at dusk,"
    '"a lighthouse keeper, charcoal sketch",a tired lighthouse keeper,a lighthouse keeper on the stairs,'
    "a lighthouse keeper in the rain\n"
)

# Our files stand in for the four TIMED sets in download tests (own names, so nothing can find the
# real files by name): set name -> (file name, contents).
MADE_UP_SETS = {
    "test": ("made_up_test.csv", EDIT_CSV),
    "test-sd14": ("made_up_test_sd14.csv", EDIT_CSV),
    "validation": ("made_up_validation.csv", EDIT_CSV),
    "gender": ("made_up_gender.csv", GENDER_CSV),
}


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_made_up_sets(folder: Path) -> dict[str, tuple[str, str]]:
    """Write the made-up files into ``folder``; returns a TIMED_SETS-like table with their SHA-256 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: (filename, sha256_of(write_csv(folder / filename, text)))
            for name, (filename, text) in MADE_UP_SETS.items()}
