"""Make student copies of the course notebooks: the same notebooks without their solution cells.

A solution cell is a cell tagged ``solution``. Sentences of the remaining text that speak of the
solutions ("Each has a check and, below it, a solution.") are dropped with them. Exercise stubs (tagged ``exercise``) stay: they define
what the student fills in and raise NotImplementedError until then, so a student copy runs from top to
bottom, each exercise reporting "not done yet". Outputs are cleared.

    python scripts/make_student_copies.py                 # notebooks/*.ipynb -> build/student/
    python scripts/make_student_copies.py NB.ipynb --out DIR
    python scripts/make_student_copies.py --run           # ... and run each copy as a student would

``--run`` executes every copy written, in its own kernel, with the folder it was written to as working
directory (where a student opens it, so a path that works only from notebooks/ fails), and exits
non-zero if a cell raised, an exercise stub did not report "not done yet" or a solution ran (a cell
printed ": correct"). It takes as long as the notebooks themselves: a check before handing the copies
out, not part of ``make test`` (tests/test_notebooks_support.py checks the copies without running them,
and runs this on a small notebook).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "student"  # where a student opens the copies: they run with this folder as cwd
SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
NOT_DONE, SOLVED = "not done yet", ": correct"  # what timelab.notebook.check_exercise prints for a stub, an answer


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# What a student copy drops from the text (it has no solutions): a clause "; the solution ..." or ", which
# the solution ..." up to its
# full stop, and a sentence that speaks of "the solution(s)" or "a solution" ("Each has a check and, below
# it, a solution."). Sentences may run over several lines; "the ridge solution" is not one of them.
SOLUTION = r"\b(?:the|a) solutions?\b"
SOLUTION_CLAUSE = re.compile(rf"(?:;|, which)\s+{SOLUTION}[^.]*\.", re.IGNORECASE)
SOLUTION_SENTENCE = re.compile(rf"(?:\A|(?<=\n\n)|(?<=[.!?])[ \t\n]+)[^.\n#|<>]*?(?:\n[^.\n#|<>]*?)*{SOLUTION}[^.]*\.", re.IGNORECASE)


def without_solution_sentences(text: str) -> str:
    """``text`` without the clauses and sentences that mention the solutions."""
    text = SOLUTION_SENTENCE.sub("", SOLUTION_CLAUSE.sub(".", text))
    return re.sub(r"(\A|\n\n)[ \t]+", r"\1", text)  # a paragraph that lost its first sentence


def strip_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` without ``solution`` cells, without the sentences that speak of them, and
    with outputs cleared."""
    student = nbformat.from_dict(notebook)  # deep copy
    student.cells = [cell for cell in student.cells if SOLUTION_TAG not in tags(cell)]
    for cell in student.cells:
        if cell.cell_type == "markdown":
            cell.source = without_solution_sentences(cell.source)
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


def printed(cell) -> str:
    """The text a code cell printed (its stream outputs)."""
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def run_student_copy(copy: Path, timeout: int = 600) -> list[str]:
    """Execute the student copy at ``copy`` from its own folder, as a student opens it, and return what
    went wrong (nothing: an empty list): the error a cell raised, an exercise stub that did not report
    "not done yet", a cell that reported an exercise solved."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(copy, as_version=4)
    problems = []
    try:
        NotebookClient(notebook, kernel_name="python3", timeout=timeout,
                       resources={"metadata": {"path": str(copy.parent)}}).execute()
    except CellExecutionError as error:
        failed = next((i for i, c in enumerate(notebook.cells) if any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        problems.append(f"{copy.name}: cell {failed} raised {getattr(error, 'ename', '')}: "
                        f"{getattr(error, 'evalue', error)}")
    for index, cell in enumerate(notebook.cells):
        ran = cell.get("execution_count") is not None  # cells after an error do not run
        if EXERCISE_TAG in tags(cell) and ran and NOT_DONE not in printed(cell):
            problems.append(f"{copy.name}: exercise stub (cell {index}) did not report {NOT_DONE!r}")
        if SOLVED in printed(cell):
            problems.append(f"{copy.name}: cell {index} reported an exercise solved: a solution ran")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to copy (default: every notebooks/*.ipynb with solutions)")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="output folder (default: build/student, ignored by git)")
    parser.add_argument("--run", action="store_true",
                        help="then execute each copy from the output folder and report what went wrong")
    args = parser.parse_args(argv)
    sources = args.notebooks or [
        path for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
        if any(SOLUTION_TAG in tags(c) for c in nbformat.read(path, as_version=4).cells)
    ]
    problems = []
    for source in sources:
        if not source.is_file():
            parser.error(f"no notebook at {source}")
        target = write_student_copy(source, args.out)
        print(f"{source.name}: student copy written to {target}")
        if args.run:
            found = run_student_copy(target)
            print("\n".join(found) if found else f"{target.name}: ran from {args.out} to its exercise stubs")
            problems += found
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
