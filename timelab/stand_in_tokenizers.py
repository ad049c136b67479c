"""Stand-in T5, Gemma and BERT tokenizers built offline, for the random-weight transformer pipelines.

The real vocabularies (T5's SentencePiece model, Gemma's 256k BPE table) cannot be had without a
model hub. These are transformers' own ``T5Tokenizer`` and ``GemmaTokenizer`` classes, built from a
small word list, so they keep what the pipelines and TIME's alignment rely on: T5 adds ``</s>`` and no
start token and pads with ``<pad>``; Gemma adds ``<bos>`` and pads with ``<pad>``; both write a word
as ``"▁word"`` and spell a word they do not know letter by letter. Only the vocabulary is small. The
BERT one (HunyuanDiT's CLIP-like text encoder reads BERT word pieces) is transformers' ``BertTokenizer``
over the same words, lowercased: ``[CLS]`` and ``[SEP]`` around the prompt, ``[PAD]`` after it, and a
word it does not know spelled ``z ##e ##b ##r ##a``.
"""

from __future__ import annotations

import os
import string
import tempfile

from transformers import BertTokenizer, GemmaTokenizer, T5Tokenizer

from .tinyworld.captions import all_words

# TinyWorld's words and the everyday ones the examples and tests use; anything else is spelled out.
EXTRA_WORDS = (
    "pack", "rose", "roses", "apple", "apples", "cat", "cats", "dog", "car", "doctor", "nurse", "man", "woman",
    "person", "flower", "flowers", "sunflower", "field", "lemon", "tree", "house", "ball", "cup", "sky", "sea",
    "with", "is", "by", "for", "to", "pink", "orange", "brown", "grey", "dark", "old", "tall", "prompt", "user",
)
LETTERS = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
SPACE = "▁"  # SentencePiece's word-start marker


def stand_in_words() -> list[str]:
    """The stand-ins' whole words, in a fixed order (each also capitalised)."""
    words = list(dict.fromkeys([*all_words(), *EXTRA_WORDS]))
    return words + [w.capitalize() for w in words]


def stand_in_t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """A ``T5Tokenizer`` (Unigram) over :func:`stand_in_words` and single characters.

    Whole words score higher than their letters, so a known word is one token and an unknown word is
    spelled out. Ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, as in T5.
    """
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), (SPACE, -2.0)]
    vocab += [(SPACE + w, -1.0) for w in stand_in_words()]
    vocab += [(c, -8.0) for c in LETTERS] + [(SPACE + c, -9.0) for c in LETTERS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def stand_in_bert_tokenizer(model_max_length: int = 77) -> BertTokenizer:
    """A ``BertTokenizer`` (lowercasing word pieces) over :func:`stand_in_words` and single characters.

    ``BertTokenizer`` reads its vocabulary from a file: it is written to a temporary folder that is
    removed again. Ids: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4.
    """
    chars = [c for c in LETTERS if not c.isupper()]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(w.lower() for w in stand_in_words()),
             *chars, *("##" + c for c in chars)]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(dict.fromkeys(vocab)) + "\n")
        return BertTokenizer(path, model_max_length=model_max_length)


def stand_in_gemma_tokenizer(model_max_length: int = 2048) -> GemmaTokenizer:
    """A ``GemmaTokenizer`` (BPE) whose merges build each of :func:`stand_in_words` letter by letter.

    Ids: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>`` 4, as in Gemma; the start token
    is added, the end token is not, as Gemma's tokenizer does.
    """
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "\n": 5}
    merges: list[tuple[str, str]] = []

    def add(piece: str) -> None:
        vocab.setdefault(piece, len(vocab))

    add(SPACE)
    for c in LETTERS:
        add(c)
    for word in (w for word in stand_in_words() for w in (SPACE + word, word)):  # a prompt's first word has no space
        built = word[0]
        for c in word[1:]:
            if (built, c) not in merges:
                merges.append((built, c))
            built += c
            add(built)
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length, add_bos_token=True,
                          padding_side="right")
