"""Make student copies of the course notebooks: the same notebooks without their solution cells.

A solution cell is a cell tagged ``solution``. Exercise stubs (tagged ``exercise``) stay: they define
what the student fills in and raise NotImplementedError until then, so a student copy runs from top to
bottom, each exercise reporting "not done yet". Outputs are cleared.

    python scripts/make_student_copies.py                 # notebooks/*.ipynb -> build/student/
    python scripts/make_student_copies.py NB.ipynb --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def strip_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` without ``solution`` cells and with outputs cleared."""
    student = nbformat.from_dict(notebook)  # deep copy
    student.cells = [cell for cell in student.cells if SOLUTION_TAG not in tags(cell)]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return student


def write_student_copy(source: Path, out_dir: Path) -> Path:
    """Write the student copy of ``source`` into ``out_dir`` (atomically) and return its path."""
    notebook = nbformat.read(source, as_version=4)
    if not any(SOLUTION_TAG in tags(cell) for cell in notebook.cells):
        raise ValueError(f"{source} has no cells tagged {SOLUTION_TAG!r}; is it a course notebook?")
    student = strip_solutions(notebook)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    tmp = target.with_name("." + target.name + ".tmp")
    try:
        nbformat.write(student, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to copy (default: every notebooks/*.ipynb with solutions)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student",
                        help="output folder (default: build/student, ignored by git)")
    args = parser.parse_args(argv)
    sources = args.notebooks or [
        path for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
        if any(SOLUTION_TAG in tags(c) for c in nbformat.read(path, as_version=4).cells)
    ]
    for source in sources:
        if not source.is_file():
            parser.error(f"no notebook at {source}")
        target = write_student_copy(source, args.out)
        print(f"{source.name}: student copy written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
