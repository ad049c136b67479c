"""TIME's token alignment with Stable Diffusion's real tokenizer, on hand cases and all of TIMED."""

import csv

import pytest

from timelab import align_tokens
from timelab.editing import augment_prompt

from conftest import TIMED_DIR, needs_timed

L = 77


def padded(head: list[int], next_position: int) -> list[int]:
    """Head positions, then padding positions continuing from ``next_position``, clamped at 76."""
    return head + [min(p, L - 1) for p in range(next_position, next_position + L - len(head))]


def test_known_token_ids(clip_tokenizer):
    assert clip_tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip_tokenizer("a pack of blue roses").input_ids == [49406, 320, 3420, 539, 1746, 9061, 49407]


def test_inserted_adjective_and_an(clip_tokenizer):
    # <s> a cow </s>  ->  <s> an(=a) icy cow </s>
    assert align_tokens(clip_tokenizer, "A cow", "An icy cow") == padded([0, 1, 3, 4], 5)
    assert align_tokens(clip_tokenizer, "an apple", "a red apple") == padded([0, 1, 3, 4], 5)


def test_pack_of_roses(clip_tokenizer):
    mapping = align_tokens(clip_tokenizer, "a pack of roses", "a pack of blue roses")
    assert mapping == padded([0, 1, 2, 3, 5, 6], 7)
    assert mapping[-2:] == [76, 76]  # the tail runs past the end and is clamped


def test_identity_when_prompts_are_equal(clip_tokenizer):
    assert align_tokens(clip_tokenizer, "a photo of a cat", "a photo of a cat") == list(range(L))


def test_subword_pieces_align_one_by_one(clip_tokenizer):
    pieces = clip_tokenizer("dragonfruit", add_special_tokens=False).input_ids
    assert len(pieces) == 2, "precondition: 'dragonfruit' is two BPE pieces"
    # <s> a dragon fruit </s>  ->  <s> a ripe dragon fruit </s>
    assert align_tokens(clip_tokenizer, "a dragonfruit", "a ripe dragonfruit") == padded([0, 1, 3, 4, 5], 6)


def test_several_inserted_words_and_longer_destination(clip_tokenizer):
    # <s> a dog </s> -> <s> a very small dog in the rain </s>: end token found after the tail words
    mapping = align_tokens(clip_tokenizer, "a dog", "a very small dog in the rain")
    assert mapping == padded([0, 1, 4, 8], 9)


def test_unmatched_word_is_named(clip_tokenizer):
    with pytest.raises(ValueError, match="'cat'"):
        align_tokens(clip_tokenizer, "a cat", "a dog")
    with pytest.raises(ValueError, match="'cat'.*same order"):
        align_tokens(clip_tokenizer, "a red cat", "a cat that is red")


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_prompt_is_refused(clip_tokenizer, bad):
    with pytest.raises(ValueError, match="non-empty"):
        align_tokens(clip_tokenizer, bad, "a dog")


def test_too_long_prompt_is_an_error_not_truncation(clip_tokenizer):
    long = "a " + "very " * 80 + "dog"
    with pytest.raises(ValueError, match=r"over the tokenizer's limit of 77"):
        align_tokens(clip_tokenizer, "a dog", long)


def check_alignment(tokenizer, source, destination, mapping):
    """Independent check: matched tokens agree (with an == a), order is kept, tail is contiguous."""
    a, an = tokenizer("a", add_special_tokens=False).input_ids[0], tokenizer("an", add_special_tokens=False).input_ids[0]
    canon = lambda ids: [a if t == an else t for t in ids]  # noqa: E731
    src, dst = canon(tokenizer(source).input_ids), canon(tokenizer(destination).input_ids)
    assert len(mapping) == L
    assert [dst[mapping[i]] for i in range(len(src))] == src
    assert all(x < y for x, y in zip(mapping[: len(src)], mapping[1 : len(src)]))
    tail = mapping[len(src) - 1 :]
    assert all(y == min(x + 1, L - 1) for x, y in zip(tail, tail[1:]))


@needs_timed
def test_every_timed_edit_pair_aligns(clip_tokenizer):
    """Each TIMED file's old -> new pair, also with the three augmentation prefixes: 1176 in all."""
    count = 0
    for path in sorted(TIMED_DIR.glob("TIMED_*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                for source, destination in zip(augment_prompt(row["old"]), augment_prompt(row["new"])):
                    check_alignment(clip_tokenizer, source, destination,
                                    align_tokens(clip_tokenizer, source, destination))
                    count += 1
    assert count == 1176


def test_augmentation_prefixes():
    assert augment_prompt("A banana") == [
        "A banana", "A photo of a banana", "An image of a banana", "A picture of a banana"
    ]
