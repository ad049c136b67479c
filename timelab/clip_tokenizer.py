"""Build Stable Diffusion's CLIP tokenizer offline from the CLIP byte-pair merge table.

Stable Diffusion 1.x/2.x tokenize with OpenAI CLIP's byte-level BPE. Its vocabulary is fully
determined by the merge table: the 256 byte symbols, the same 256 with the end-of-word marker
``</w>``, one entry per merge, then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from transformers import CLIPTokenizer

N_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_ENV = "TIMELAB_CLIP_BPE"


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


def default_bpe_path() -> Path:
    """``$TIMELAB_CLIP_BPE``, else ``../shared/data/clip-bpe`` beside the project root."""
    env = os.environ.get(BPE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "clip-bpe" / BPE_FILENAME


def write_clip_tokenizer_files(bpe_path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for the CLIP tokenizer into ``folder``."""
    bpe_path = Path(bpe_path)
    if bpe_path.is_dir():
        bpe_path = bpe_path / BPE_FILENAME
    if not bpe_path.is_file():
        raise FileNotFoundError(
            f"CLIP merge table not found at {bpe_path}; set ${BPE_ENV} to the path of {BPE_FILENAME}"
        )
    lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : N_MERGES + 1]
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += [START_TOKEN, END_TOKEN]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def build_clip_tokenizer(
    bpe_path: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    pad_token: str = END_TOKEN,
) -> CLIPTokenizer:
    """Stable Diffusion's tokenizer (77 tokens; SD 1.x pads with the end token, SD 2.x with "!")."""
    import tempfile

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="clip-tokenizer-"))
    write_clip_tokenizer_files(bpe_path or default_bpe_path(), folder)
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token=pad_token,
        model_max_length=77,
    )
