"""Execute the course notebooks top to bottom, as a reader would, one kernel each.

    python scripts/execute_notebooks.py                  # every notebooks/NN_*.ipynb; outputs discarded
    python scripts/execute_notebooks.py 03_time_edit     # some of them (names or paths)
    python scripts/execute_notebooks.py --save           # `make notebooks`: keep the outputs in the files

With ``--save`` each notebook is written back (atomically, only after it ran without an error) with its
outputs, its measured wall time in the header's ``**Runtime**:`` line and in the README's course table,
and ``metadata.timelab`` saying when, on what, and which code ran (``code_digest``, so a test can tell
an edited, unexecuted notebook).
Figures go where ``save_figure`` puts them: ``$TIMELAB_FIGURES_DIR`` (``make notebooks`` sets it to the
project's ``figures/``), else ``notebooks/figures``. Prints each notebook's wall time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from timelab.files import atomic_path, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
RUNTIME_LINE = re.compile(r"^\*\*Runtime\*\*:.*$", re.MULTILINE)


def notebook_paths(names: list[str]) -> list[Path]:
    """The named notebooks (stem, file name or path), or all of them in course order."""
    if not names:
        return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(n) if n.endswith(".ipynb") else NOTEBOOKS / f"{n}.ipynb" for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no such notebook: {', '.join(missing)} (see {NOTEBOOKS})")
    return paths


def code_digest(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources in order: what an execution's outputs belong to."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()


def runtime_line(seconds: float) -> str:
    """The header line ``--save`` writes: a measurement, with the machine it was made on."""
    return (f"**Runtime**: {seconds:.0f} s on a {os.cpu_count()}-core CPU, measured by "
            f"`make notebooks` (its defaults; figures for a GPU below where they apply).")


def stamp(notebook: nbformat.NotebookNode, seconds: float) -> None:
    """Write the measured runtime into the header cell and ``metadata.timelab``."""
    header = notebook.cells[0]
    if header.cell_type != "markdown" or len(RUNTIME_LINE.findall(header.source)) != 1:
        raise ValueError("the first cell must be markdown with exactly one line starting '**Runtime**:'")
    header.source = RUNTIME_LINE.sub(runtime_line(seconds), header.source)
    notebook.metadata["timelab"] = {
        "runtime_s": seconds, "cpus": os.cpu_count(), "code_digest": code_digest(notebook),
        "executed": datetime.date.today().isoformat(),
    }


def with_course_runtime(readme: str, stem: str, seconds: float) -> str:
    """``readme`` with the runtime cell (the last) of the course table's row for ``stem`` set to ``seconds``."""
    row = re.compile(rf"^(\| `{re.escape(stem)}` \|.*\| )\d+ s \|$", re.MULTILINE)
    if len(row.findall(readme)) != 1:
        raise ValueError(f"the README's course table needs exactly one row '| `{stem}` | ... | N s |'")
    return row.sub(lambda m: f"{m.group(1)}{seconds:.0f} s |", readme)


def execute(path: Path, save: bool = False, timeout: int = 900) -> float:
    """Run one notebook in its own folder; returns the wall time in seconds. With ``save``, write it
    back with its outputs and runtime (untouched if a cell fails)."""
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(stderr=subprocess.DEVNULL)  # the kernel process's own log lines; cell errors still raise
    seconds = round(time.perf_counter() - started, 1)  # the header, metadata and README all show this value
    if save:
        stamp(notebook, seconds)
        readme = with_course_runtime(README.read_text(), path.stem, seconds)
        with atomic_path(path) as tmp:
            nbformat.write(notebook, tmp)
        write_text_atomic(README, readme)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all)")
    parser.add_argument("--save", action="store_true",
                        help="write each notebook back with its outputs and measured runtime")
    args = parser.parse_args(argv)
    for path in notebook_paths(args.notebooks):
        print(f"{path.name}: {execute(path, args.save):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
