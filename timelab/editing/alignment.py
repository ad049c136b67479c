"""TIME's token alignment: which destination position each source position takes its target from.

The rule of the authors' reference implementation: tokenize both prompts without padding, read the
token "an" as "a", then walk the source tokens (start and end tokens included) in order, advancing
through the destination until the same token appears. Source positions after the end token (padding)
map to the following destination positions in order; any that would run past the last index map to
the last index.
"""

from __future__ import annotations

from typing import Sequence

AUGMENTATION_PREFIXES: tuple[str, ...] = ("A photo of ", "An image of ", "A picture of ")


def augment_prompt(prompt: str, prefixes: Sequence[str] = AUGMENTATION_PREFIXES) -> list[str]:
    """The prompt itself, then one copy per prefix with its first letter lowercased (as in the paper)."""
    base = prompt[:1].lower() + prompt[1:]
    return [prompt] + [prefix + base for prefix in prefixes]


def _single_token(tokenizer, word: str) -> int | None:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    return ids[0] if len(ids) == 1 else None


def _token_ids(tokenizer, prompt: str, max_length: int) -> list[int]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompts must be non-empty text, got {prompt!r}")
    ids = tokenizer(prompt, truncation=False).input_ids
    if len(ids) > max_length:
        raise ValueError(
            f"the prompt {prompt!r} is {len(ids)} tokens long, over the tokenizer's limit of "
            f"{max_length} (start and end tokens included); shorten it"
        )
    return ids


def _token_text(tokenizer, token_id: int) -> str:
    token = tokenizer.convert_ids_to_tokens(token_id)
    return token.replace("</w>", "").replace("\u2581", "") if isinstance(token, str) else str(token)


def align_tokens(tokenizer, source: str, destination: str, length: int | None = None) -> list[int]:
    """For each of the ``length`` source positions (default: the tokenizer's ``model_max_length``), its
    destination position.

    Raises ValueError when the source tokens are not an ordered subsequence of the destination's
    (naming the first token that could not be matched) or when a prompt is too long.
    """
    max_length = int(tokenizer.model_max_length if length is None else length)
    source_ids = _token_ids(tokenizer, source, max_length)
    destination_ids = _token_ids(tokenizer, destination, max_length)
    mapping = align_ids(tokenizer, source_ids, destination_ids, source, destination)
    j = mapping[-1] + 1
    while len(mapping) < max_length:
        mapping.append(min(j, max_length - 1))
        j += 1
    return mapping


def align_ids(tokenizer, source_ids: Sequence[int], destination_ids: Sequence[int], source: str,
              destination: str) -> list[int]:
    """TIME's walk over token ids: for each source token, the index of the destination token it aligns to.

    ``source``/``destination`` are the prompts, named in the error raised when the source tokens are not
    an ordered subsequence of the destination's (the token "an" is read as "a").
    """
    a_id, an_id = _single_token(tokenizer, "a"), _single_token(tokenizer, "an")

    def canonical(ids: Sequence[int]) -> list[int]:
        return [a_id if token == an_id and an_id is not None else token for token in ids]

    source_canon, destination_canon = canonical(source_ids), canonical(destination_ids)
    mapping: list[int] = []
    j = 0
    for position, token in enumerate(source_canon):
        while j < len(destination_canon) and destination_canon[j] != token:
            j += 1
        if j == len(destination_canon):
            word = _token_text(tokenizer, source_ids[position])
            raise ValueError(
                f"cannot align {source!r} -> {destination!r}: the source token {word!r} (token "
                f"{position} of the source) does not appear, in order, in the destination. TIME needs "
                "the source's words to appear in the destination in the same order, e.g. "
                "'a pack of roses' -> 'a pack of blue roses'"
            )
        mapping.append(j)
        j += 1
    return mapping
