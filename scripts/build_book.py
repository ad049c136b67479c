"""Build the course book: static HTML from the committed, executed notebooks, with no cell run again.

    python scripts/build_book.py                # `make book`: build/book/index.html
    python scripts/build_book.py --out DIR      # somewhere else
    python scripts/build_book.py --notebooks DIR  # the chapters of another folder (tests use it)

The chapters are every ``notebooks/NN_slug.ipynb`` in course order (the book's table of contents globs the
folder), beside the pages in ``book/`` (landing page, glossary, API reference from the docstrings) and the
``figures/`` they show. A notebook whose code cells did not all run, in order and without an error, is
refused by name before anything is built: run ``make notebooks`` first. Sphinx builds from a staged copy
into a temporary folder that replaces ``--out`` only when the build succeeded, so a failed build leaves
the previous book as it was. Everything the pages need (MathJax included) is copied into the output: the
book opens offline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from sphinx.cmd.build import build_main

from make_student_copies import SOLUTION_TAG, tags, write_student_copy  # scripts/, beside this one

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"  # conf.py and the book's own pages
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
OUT = ROOT / "build" / "book"


def chapters(folder: Path = NOTEBOOKS) -> list[Path]:
    """The course notebooks, in course order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def why_not_executed(path: Path) -> str | None:
    """Why ``path`` is not a committed, executed notebook (None when it is): its code cells must carry the
    execution counts 1, 2, ... in order and no error output, as ``make notebooks`` saves them."""
    cells = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    counts = [cell.get("execution_count") for cell in cells]
    if counts != list(range(1, len(cells) + 1)):
        missing = sum(count is None for count in counts)
        return f"{missing} of {len(cells)} code cells never ran" if missing else f"cells ran out of order ({counts})"
    errors = [o.get("ename", "an error") for cell in cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    return f"it was saved with an error ({errors[0]})" if errors else None


def stage(source: Path, notebooks: list[Path]) -> None:
    """Lay out Sphinx's source folder: the book's pages at its top, the chapters in notebooks/, figures/."""
    shutil.copytree(BOOK, source, ignore=shutil.ignore_patterns("conf.py", "__pycache__"))
    for page in source.glob("*.md"):  # in the repository the pages sit in book/, beside figures/ ...
        text = page.read_text()
        page.write_text(text.replace("](../figures/", "](figures/"))  # ... staged, figures/ sits beside them
    (source / "notebooks").mkdir()
    for path in notebooks:
        shutil.copy2(path, source / "notebooks" / path.name)
    stage_student_copies(source, notebooks)


def stage_student_copies(source: Path, notebooks: list[Path]) -> None:
    """The chapters' student copies in student/ (downloads, not pages) and the page that links them."""
    lines = ["# Student copies", "",
             "Each chapter without its solutions, to download and run: the exercise stubs stay and report "
             '"not done yet" until you fill them in, and the first cell installs timelab where it is missing '
             "(Colab, a fresh environment). Written by `python scripts/make_student_copies.py`.", ""]
    for path in notebooks:
        notebook = json.loads(path.read_text())
        if not any(SOLUTION_TAG in tags(cell) for cell in notebook["cells"]):
            continue
        write_student_copy(path, source / "student")
        title = next(line for line in "".join(notebook["cells"][0]["source"]).splitlines() if line.startswith("# "))
        lines.append(f"- {title[2:]}: {{download}}`{path.name} <student/{path.name}>`")
    (source / "students.md").write_text("\n".join(lines) + "\n")
    shutil.copytree(FIGURES, source / "figures")


def build(out: Path = OUT, notebooks: list[Path] | None = None) -> Path:
    """Build the book into ``out`` (replaced only on success); returns the landing page's path.

    Raises ValueError naming every notebook that is not executed, before anything is written."""
    notebooks = chapters() if notebooks is None else notebooks
    if not notebooks:
        raise ValueError("no notebooks named NN_slug.ipynb to build a book from")
    refused = [f"{path.name}: {reason}" for path in notebooks if (reason := why_not_executed(path))]
    if refused:
        raise ValueError("the book shows the notebooks as they were executed, and these are not; run "
                         "`make notebooks` (or scripts/execute_notebooks.py --save NAME) and commit them:\n  "
                         + "\n  ".join(refused))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as work:
        source, html = Path(work) / "source", Path(work) / "html"
        stage(source, notebooks)
        status = build_main(["-b", "html", "-q", "-W", "--keep-going", "-c", str(BOOK), "-d",
                             str(Path(work) / "doctrees"), str(source), str(html)])
        if status:
            raise RuntimeError(f"Sphinx failed (exit {status}), see its messages above; {out} is unchanged")
        if out.exists():
            shutil.rmtree(out)
        html.rename(out)
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS,
                        help=f"folder of the chapters NN_slug.ipynb (default: {NOTEBOOKS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    try:
        index = build(args.out.resolve(), chapters(args.notebooks))
    except (ValueError, RuntimeError) as error:
        print(f"book not built: {error}", file=sys.stderr)
        return 1
    print(f"book built: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
