"""Results files of the benchmarks: one Markdown file per script, one section per configuration."""

from __future__ import annotations

import re
from pathlib import Path

from timelab.files import write_text_atomic


def write_section(path: Path, title: str, heading: str, section: str) -> None:
    """Replace ``heading``'s section of the file at ``path`` (or add it), atomically.

    A file that does not start with ``title`` was not written by the benchmark: it is started afresh.
    """
    text = path.read_text() if path.exists() else title
    if not text.startswith(title):
        text = title
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(path, text)
