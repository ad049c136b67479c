"""Build Stable Diffusion's CLIP tokenizer offline from the CLIP byte-pair merge table.

Stable Diffusion 1.x/2.x tokenize with OpenAI CLIP's byte-level BPE. Its vocabulary is fully
determined by the merge table: the 256 byte symbols, the same 256 with the end-of-word marker
``</w>``, one entry per merge, then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).

The merge table (``bpe_simple_vocab_16e6.txt.gz``) is read from an installed package that ships it:
``openai-clip`` (a dependency of timelab's ``dev`` extra; it needs only ftfy, regex and tqdm) or
``open-clip-torch``. The file is found through the distribution's file list, never by importing the
package (both import torchvision). ``$TIMELAB_CLIP_BPE`` names another copy.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from transformers import CLIPTokenizer

N_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_ENV = "TIMELAB_CLIP_BPE"
# Installed distributions that ship the merge table (looked up in this order).
BPE_DISTRIBUTIONS = ("openai-clip", "open_clip_torch")


def byte_symbols() -> list[str]:
    """The printable stand-in for each byte 0..255 used by GPT-2/CLIP byte-level BPE.

    Printable Latin-1 bytes stand for themselves; the remaining bytes, in order, are mapped to
    code points 256, 257, ... so that every byte has a visible, non-whitespace symbol.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbol = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbol:
            symbol[b] = chr(256 + extra)
            extra += 1
    # Vocabulary order is the printable bytes first, then the remapped ones.
    return [symbol[b] for b in printable] + [symbol[b] for b in range(256) if b not in printable]


def installed_bpe_path() -> Path | None:
    """The merge table inside an installed ``openai-clip`` or ``open-clip-torch``, if any."""
    for name in BPE_DISTRIBUTIONS:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            if file.name == BPE_FILENAME:
                path = Path(file.locate())
                if path.is_file():
                    return path
    return None


def default_bpe_path() -> Path:
    """``$TIMELAB_CLIP_BPE`` when set, else the copy in an installed package (see the module docstring)."""
    env = os.environ.get(BPE_ENV)
    if env:
        return Path(env)
    found = installed_bpe_path()
    if found is None:
        raise FileNotFoundError(
            f"CLIP's merge table {BPE_FILENAME} was not found: install a package that ships it "
            f"(pip install openai-clip, or timelab's dev extra: pip install -e '.[dev]'), or set ${BPE_ENV} "
            "to the path of a copy"
        )
    return found


def write_bpe_files(folder: str | os.PathLike, merges: Sequence[tuple[str, str]],
                    json_indent: int | None = None) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` in CLIP's layout for ``merges`` into ``folder``.

    The vocabulary is the 256 byte symbols, the same with ``</w>``, one entry per merge (the merged
    pair), then ``<|startoftext|>`` and ``<|endoftext|>``; ``merges.txt`` is ``#version: 0.2`` then one
    ``a b`` line per merge. ``json_indent`` is passed to :func:`json.dumps` (``None``: one line).
    """
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + [a + b for a, b in merges] + [START_TOKEN, END_TOKEN]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, indent=json_indent))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def read_clip_merges(bpe_path: str | os.PathLike) -> list[tuple[str, str]]:
    """CLIP's first ``N_MERGES`` merges from its merge table (a ``.txt.gz`` file, or the folder holding it)."""
    bpe_path = Path(bpe_path)
    if bpe_path.is_dir():
        bpe_path = bpe_path / BPE_FILENAME
    if not bpe_path.is_file():
        raise FileNotFoundError(
            f"CLIP merge table not found at {bpe_path}; set ${BPE_ENV} to the path of {BPE_FILENAME}"
        )
    with gzip.open(bpe_path, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    merges = []
    for line in lines[1 : N_MERGES + 1]:  # the first line is a version header
        a, b = line.split(" ")
        merges.append((a, b))
    return merges


def write_clip_tokenizer_files(bpe_path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for the CLIP tokenizer into ``folder``."""
    return write_bpe_files(folder, read_clip_merges(bpe_path))


def bpe_tokenizer(merges: Sequence[tuple[str, str]], folder: str | os.PathLike | None = None,
                  json_indent: int | None = None, **kwargs) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` for ``merges`` in CLIP's layout, its files written by :func:`write_bpe_files`.

    With ``folder`` the files are written there and kept; without, they go to a temporary folder that
    is removed once the tokenizer has read them (it keeps no reference to them). ``kwargs`` go to
    ``CLIPTokenizer``.
    """
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="bpe-tokenizer-") as temporary:
            return bpe_tokenizer(merges, temporary, json_indent, **kwargs)
    folder = write_bpe_files(folder, merges, json_indent)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), **kwargs)


def build_clip_tokenizer(
    bpe_path: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    pad_token: str = END_TOKEN,
) -> CLIPTokenizer:
    """Stable Diffusion's tokenizer (77 tokens; SD 1.x pads with the end token, SD 2.x with "!").

    Its files are kept in ``folder`` when given, else written to a temporary folder removed once read.
    """
    merges = read_clip_merges(bpe_path or default_bpe_path())
    return bpe_tokenizer(merges, folder, pad_token=pad_token, model_max_length=77)
