"""A small CLIP byte-pair tokenizer for TinyWorld's words, loadable by ``CLIPTokenizer``/``AutoTokenizer``.

CLIP's tokenizer splits text into words, spells each word as byte symbols with ``</w>`` on the last,
then applies merges in rank order. The vocabulary here is CLIP's layout in miniature: the 256 byte
symbols, the same with ``</w>``, one entry per merge, then ``<|startoftext|>`` and ``<|endoftext|>``.
The merges are learned by plain byte-pair encoding on the grammar's word list (merge the most frequent
adjacent pair, ties broken by first appearance, until every word is one symbol), so every grammar word
is a single token and any other text still tokenizes, letter by letter.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import CLIPTokenizer

from ..clip_tokenizer import END_TOKEN, bpe_tokenizer, write_bpe_files
from .captions import all_words

MAX_LENGTH = 77
JSON_INDENT = 0  # vocab.json one entry a line, as in the shipped model's tokenizer folder


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that turn each word (spelled with ``</w>`` on its last letter) into one symbol."""
    spelled = [list(w[:-1]) + [w[-1] + "</w>"] for w in dict.fromkeys(words)]
    merges: list[tuple[str, str]] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for symbols in spelled:
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            return merges
        best = max(counts, key=counts.get)  # first-seen pair wins ties (dicts keep insertion order)
        merges.append(best)
        for i, symbols in enumerate(spelled):
            merged, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    merged.append(symbols[j] + symbols[j + 1])
                    j += 2
                else:
                    merged.append(symbols[j])
                    j += 1
            spelled[i] = merged


def write_tokenizer_files(folder: str | os.PathLike, words: list[str] | None = None) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for the world's words into ``folder``."""
    return write_bpe_files(folder, learn_merges(words or all_words()), json_indent=JSON_INDENT)


def build_tokenizer(folder: str | os.PathLike | None = None) -> CLIPTokenizer:
    """TinyWorld's CLIP tokenizer: 77 tokens, padded with the end token as in Stable Diffusion 1.x.

    Its files are kept in ``folder`` when given, else written to a temporary folder removed once read.
    """
    return bpe_tokenizer(learn_merges(all_words()), folder, json_indent=JSON_INDENT, pad_token=END_TOKEN,
                         model_max_length=MAX_LENGTH)
