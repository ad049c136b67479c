"""Execute the course notebooks top to bottom, as a reader would, one kernel each.

    python scripts/execute_notebooks.py                  # every notebooks/NN_*.ipynb; outputs discarded
    python scripts/execute_notebooks.py 03_time_edit     # some of them (names or paths)

Figures go where ``save_figure`` puts them: ``$TIMELAB_FIGURES_DIR`` (``make figures`` sets it to the
project's ``figures/``), else ``notebooks/figures``. Prints each notebook's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths(names: list[str]) -> list[Path]:
    """The named notebooks (stem, file name or path), or all of them in course order."""
    if not names:
        return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(n) if n.endswith(".ipynb") else NOTEBOOKS / f"{n}.ipynb" for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no such notebook: {', '.join(missing)} (see {NOTEBOOKS})")
    return paths


def execute(path: Path, timeout: int = 900) -> float:
    """Run one notebook in its own folder; returns the wall time in seconds."""
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(stderr=subprocess.DEVNULL)  # the kernel process's own log lines; cell errors still raise
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all)")
    args = parser.parse_args(argv)
    for path in notebook_paths(args.notebooks):
        print(f"{path.name}: {execute(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
