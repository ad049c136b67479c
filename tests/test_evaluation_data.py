"""TIMED loading and downloading (no network: a file:// copy made at test time, or a failing fetcher)."""

from __future__ import annotations

import csv
import hashlib
import shutil
import urllib.error

import pytest
from conftest import TIMED_DIR, needs_timed

from timelab.evaluation import (
    TIMED_SETS, BiasItem, EditItem, TimedUnavailableError, download_timed, load_timed, read_items, timed_path,
    write_items,
)
from timelab.evaluation.formats import swap_value

pytestmark = needs_timed


def raw_rows(name: str) -> list[list[str]]:
    with open(TIMED_DIR / TIMED_SETS[name][0], newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.parametrize("name, count", [("test", 147), ("test-sd14", 104), ("validation", 8)])
def test_edit_sets_load_every_row_and_column(name, count):
    items = load_timed(name, TIMED_DIR, download=False)
    rows = raw_rows(name)
    assert len(items) == len(rows) == count
    for item, row in zip(items, rows):
        assert isinstance(item, EditItem)
        assert [item.source, item.destination] == row[:2]
        assert [x for pair in item.related for x in pair] == row[2:12]
        assert [x for pair in item.unrelated for x in pair] == row[12:22]


def test_gender_set_reads_the_attribute_from_the_destination():
    items = load_timed("gender", TIMED_DIR, download=False)
    rows = raw_rows("gender")
    assert len(items) == 35
    for item, row in zip(items, rows):
        assert isinstance(item, BiasItem)
        assert [item.source, item.destination, item.validation, *item.held_out] == row
        expected = ("female", "male") if " female " in f" {row[1]} " else ("male", "female")
        assert item.values == expected
    nurse = next(i for i in items if i.source == "a nurse")
    assert nurse.candidates == ("a female nurse", "a male nurse")


def test_swap_value_matches_whole_words_only():
    assert swap_value("a male nurse", "male", "female") == "a female nurse"
    assert swap_value("a female nurse", "female", "male") == "a male nurse"
    with pytest.raises(ValueError, match="exactly once"):
        swap_value("a nurse", "male", "female")


def test_write_then_read_round_trip(tmp_path):
    for name in ("validation", "gender"):
        items = load_timed(name, TIMED_DIR, download=False)
        path = write_items(tmp_path / f"{name}.csv", items)
        assert read_items(path) == items
        assert list(csv.reader(open(path, newline="")))[1:] == raw_rows(name)


def test_bad_files_are_refused_with_the_reason(tmp_path):
    wrong_header = tmp_path / "wrong.csv"
    wrong_header.write_text("old,new,foo\na,b,c\n")
    with pytest.raises(ValueError, match="expected the header"):
        read_items(wrong_header)
    short_row = tmp_path / "short.csv"
    short_row.write_text("old,new,validation,ex1,ex2,ex3,ex4,ex5\na nurse,a male nurse,x\n")
    with pytest.raises(ValueError, match="line 2: expected 8 non-empty cells"):
        read_items(short_row)
    with pytest.raises(FileNotFoundError, match="no item file"):
        read_items(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="unknown TIMED set"):
        load_timed("train", TIMED_DIR)


@pytest.fixture
def mirror(tmp_path):
    """A copy of the authors' files served by file:// URLs, like raw.githubusercontent.com at the commit."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for filename, _ in TIMED_SETS.values():
        shutil.copy(TIMED_DIR / filename, folder / filename)
    return folder


@pytest.mark.parametrize("name", sorted(TIMED_SETS))
def test_download_verifies_and_saves(mirror, tmp_path, name):
    filename, expected = TIMED_SETS[name]
    path = download_timed(name, tmp_path / "cache", base_url=mirror.as_uri())
    assert path == tmp_path / "cache" / filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    assert path.read_bytes() == (TIMED_DIR / filename).read_bytes()


def test_download_refuses_a_wrong_checksum_and_writes_nothing(mirror, tmp_path):
    filename = TIMED_SETS["validation"][0]
    (mirror / filename).write_bytes((mirror / filename).read_bytes() + b"tampered\n")
    with pytest.raises(ValueError, match="SHA-256"):
        download_timed("validation", tmp_path / "cache", base_url=mirror.as_uri())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_timed_path_downloads_when_missing_and_then_uses_the_file(mirror, tmp_path):
    fetched = []

    def fetch(url):
        fetched.append(url)
        return (mirror / url.rsplit("/", 1)[1]).read_bytes()

    folder = tmp_path / "data"
    base = "https://example.invalid/pinned/"
    items = load_timed("validation", folder, base_url=base, fetch=fetch)
    assert fetched == [base + TIMED_SETS["validation"][0]]
    assert items == load_timed("validation", TIMED_DIR, download=False)
    load_timed("validation", folder, base_url=base, fetch=fetch)
    assert len(fetched) == 1, "a verified local file must not be fetched again"


def test_the_default_url_is_pinned_to_the_commit():
    from timelab.evaluation.timed import BASE_URL, COMMIT

    assert COMMIT == "1d6784a3a46c08716412c0800dd7d18474ef92be"
    assert BASE_URL == f"https://raw.githubusercontent.com/bahjat-kawar/time-diffusion/{COMMIT}/"


def test_offline_error_says_what_to_do(tmp_path):
    def offline(url):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(TimedUnavailableError) as error:
        load_timed("gender", tmp_path / "empty", fetch=offline)
    message = str(error.value)
    assert "could not be downloaded" in message and "name resolution" in message
    assert "TIMELAB_TIMED_DIR" in message and "--timed-dir" in message
    assert "1d6784a3a46c08716412c0800dd7d18474ef92be" in message
    with pytest.raises(TimedUnavailableError, match="downloads disabled"):
        timed_path("gender", tmp_path / "empty", download=False)


def test_a_local_file_with_other_contents_is_refused(tmp_path):
    filename = TIMED_SETS["validation"][0]
    (tmp_path / filename).write_text((TIMED_DIR / filename).read_text().replace("bear", "bare"))
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_timed("validation", tmp_path, download=False)
