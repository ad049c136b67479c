"""TIMED loading, writing and downloading.

Parsing, writing, the download path (file:// mirror, checksum refusal, offline error) and bad files are
tested on small made-up files in TIMED's two layouts (tests/timed_fixtures.py), so they run on a fresh
clone. The real files have no licence and are never copied here: only the tests that need them (their
row counts, the pinned checksums, their round trip) are marked ``needs_timed`` and run where
``../shared/data/timed`` exists (CI). No test touches the network: downloads go through file:// URLs or
fetchers written in the test.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import urllib.error
from pathlib import Path

import pytest
from conftest import TIMED_DIR, needs_timed
from timed_fixtures import (
    EDIT_CSV, EDIT_HEADER, EDIT_ROWS, GENDER_CANDIDATES_BY_ROW, GENDER_CSV, GENDER_HEADER, GENDER_ROWS,
    GENDER_VALUES_BY_ROW, MADE_UP_SETS, sha256_of, write_csv, write_made_up_sets,
)

from timelab.evaluation import (
    TIMED_SETS, BiasItem, EditItem, TimedUnavailableError, download_timed, load_timed, read_items, write_items,
)
from timelab.evaluation import timed
from timelab.evaluation.timed import timed_path
from timelab.evaluation.formats import swap_value

# How the authors' repository serves a file at a commit (raw.githubusercontent.com/<owner>/<repo>/<ref>/<file>).
PINNED_URL = re.compile(r"^https://raw\.githubusercontent\.com/bahjat-kawar/time-diffusion/([0-9a-f]{40})/([^/]+)$")


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_edit_items_hold(items, rows):
    assert len(items) == len(rows)
    for item, row in zip(items, rows):
        assert isinstance(item, EditItem)
        assert (item.source, item.destination) == (row[0], row[1])
        assert item.related == tuple((row[i], row[i + 1]) for i in range(2, 12, 2))
        assert item.unrelated == tuple((row[i], row[i + 1]) for i in range(12, 22, 2))
        assert item.key == f"{row[0]} -> {row[1]}"


@pytest.fixture
def made_up_timed(tmp_path, monkeypatch):
    """Our made-up files served from a file:// mirror, with TIMED_SETS pointing at them and their SHA-256."""
    mirror = tmp_path / "mirror"
    table = write_made_up_sets(mirror)
    for name, entry in table.items():
        monkeypatch.setitem(timed.TIMED_SETS, name, entry)
    return mirror


# --- the two layouts, on made-up files ---------------------------------------------------------------


def test_the_made_up_text_holds_the_listed_rows():
    """The fixture itself: Python's csv module reads back exactly the rows it lists."""
    assert csv_rows(EDIT_CSV) == [EDIT_HEADER.split(",")] + EDIT_ROWS
    assert csv_rows(GENDER_CSV) == [GENDER_HEADER.split(",")] + GENDER_ROWS
    assert all(len(row) == 22 for row in EDIT_ROWS) and all(len(row) == 8 for row in GENDER_ROWS)


def test_edit_layout_reads_every_row_and_column(tmp_path):
    items = read_items(write_csv(tmp_path / "edits.csv", EDIT_CSV))
    assert_edit_items_hold(items, EDIT_ROWS)
    assert items[1].related[0] == ('a sign saying "apple"', 'a sign saying "green apple"')  # quoted cells
    assert items[1].related[2][0] == "a crème brûlée beside an apple"  # read as UTF-8


def test_gender_layout_reads_the_attribute_from_the_destination(tmp_path):
    items = read_items(write_csv(tmp_path / "gender.csv", GENDER_CSV))
    assert len(items) == len(GENDER_ROWS)
    for item, row, values, candidates in zip(items, GENDER_ROWS, GENDER_VALUES_BY_ROW, GENDER_CANDIDATES_BY_ROW):
        assert isinstance(item, BiasItem)
        assert [item.source, item.destination, item.validation, *item.held_out] == row
        assert item.values == values  # "female" holds the letters of "male": whole words only
        assert item.candidates == candidates


def test_other_attribute_values_are_read_from_the_destination(tmp_path):
    text = GENDER_CSV.replace("female", "tall").replace("male", "short")
    items = read_items(write_csv(tmp_path / "heights.csv", text), values=("short", "tall"))
    assert [i.values for i in items] == [("tall", "short"), ("short", "tall")]
    assert items[0].candidates == ("a short beekeeper", "a tall beekeeper")


def test_swap_value_matches_whole_words_only():
    assert swap_value("a male nurse", "male", "female") == "a female nurse"
    assert swap_value("a female nurse", "female", "male") == "a male nurse"
    with pytest.raises(ValueError, match="exactly once"):
        swap_value("a nurse", "male", "female")
    with pytest.raises(ValueError, match="exactly once"):
        swap_value("a male nurse and a male pilot", "male", "female")


@pytest.mark.parametrize("text", [EDIT_CSV, GENDER_CSV], ids=["edit", "gender"])
def test_write_then_read_round_trip_is_byte_exact(tmp_path, text):
    items = read_items(write_csv(tmp_path / "in.csv", text))
    path = write_items(tmp_path / "out.csv", items)
    assert path == tmp_path / "out.csv"
    assert path.read_bytes() == text.encode("utf-8"), "written in TIMED's own layout, quoting and line ends"
    assert read_items(path) == items
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"], "no temporary file left"
    with pytest.raises(ValueError, match="at least one item"):
        write_items(tmp_path / "empty.csv", [])


def test_bad_files_are_refused_with_the_reason(tmp_path):
    cases = {
        "wrong header": ("old,new,foo\na,b,c\n", "expected the header"),
        "empty file": ("", "expected the header.*an empty file"),
        "short row": (GENDER_HEADER + "\na beekeeper,a female beekeeper,x\n", "line 2: expected 8 non-empty cells"),
        "empty cell": (GENDER_CSV.replace("a smiling beekeeper", " "), "line 2: expected 8 non-empty cells"),
        "long row": (EDIT_CSV.replace("a lemon,a green lemon\n", "a lemon,a green lemon,extra\n"),
                     "line 3: expected 22 non-empty cells"),
        "no attribute": (GENDER_CSV.replace("a male lighthouse keeper", "a lighthouse keeper"), "exactly one of"),
        "both attributes": (GENDER_CSV.replace("a female beekeeper", "a female male beekeeper"), "exactly one of"),
    }
    for case, (text, reason) in cases.items():
        path = write_csv(tmp_path / f"{case.replace(' ', '_')}.csv", text)
        with pytest.raises(ValueError, match=reason):
            read_items(path)
    with pytest.raises(FileNotFoundError, match="no item file"):
        read_items(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="unknown TIMED set 'train'"):
        load_timed("train", tmp_path)


# --- finding and downloading, on made-up files --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MADE_UP_SETS))
def test_download_verifies_and_saves(made_up_timed, tmp_path, name):
    filename, text = MADE_UP_SETS[name]
    path = download_timed(name, tmp_path / "cache", base_url=made_up_timed.as_uri())
    assert path == tmp_path / "cache" / filename
    assert path.read_bytes() == text.encode("utf-8")
    assert sorted(p.name for p in path.parent.iterdir()) == [filename], "no temporary file left"
    assert load_timed(name, tmp_path / "cache", download=False) == read_items(made_up_timed / filename)


def test_download_refuses_a_wrong_checksum_and_writes_nothing(made_up_timed, tmp_path):
    filename = MADE_UP_SETS["validation"][0]
    (made_up_timed / filename).write_bytes((made_up_timed / filename).read_bytes() + b"tampered\n")
    tampered = hashlib.sha256((made_up_timed / filename).read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"SHA-256 {tampered}, expected {timed.TIMED_SETS['validation'][1]}"):
        download_timed("validation", tmp_path / "cache", base_url=made_up_timed.as_uri())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    with pytest.raises(ValueError, match="SHA-256"):  # the same through the loader, which would download
        load_timed("validation", tmp_path / "cache", base_url=made_up_timed.as_uri())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_timed_path_downloads_when_missing_and_then_uses_the_file(made_up_timed, tmp_path):
    fetched = []

    def fetch(url):
        fetched.append(url)
        return (made_up_timed / url.rsplit("/", 1)[1]).read_bytes()

    folder = tmp_path / "data"
    base = "https://example.invalid/pinned/"
    items = load_timed("validation", folder, base_url=base, fetch=fetch)
    assert fetched == [base + MADE_UP_SETS["validation"][0]]
    assert_edit_items_hold(items, EDIT_ROWS)
    assert load_timed("validation", folder, base_url=base, fetch=fetch) == items
    assert len(fetched) == 1, "a verified local file must not be fetched again"


def recorded_default_url(name: str, folder: Path) -> str:
    """The URL ``download_timed`` asks for with its default base URL (made-up bytes come back)."""
    fetched = []

    def fetch(url):
        fetched.append(url)
        return MADE_UP_SETS[name][1].encode("utf-8")

    download_timed(name, folder, fetch=fetch)
    assert len(fetched) == 1
    return fetched[0]


@pytest.mark.parametrize("name", sorted(MADE_UP_SETS))
def test_the_default_url_is_the_authors_file_at_a_pinned_commit(made_up_timed, tmp_path, name):
    url = recorded_default_url(name, tmp_path / "cache")
    match = PINNED_URL.match(url)
    assert match, f"{url} is not a raw.githubusercontent.com URL of the authors' repository at a commit SHA"
    assert match.group(2) == MADE_UP_SETS[name][0], "the URL names the set's file"


def test_all_sets_come_from_the_same_commit(made_up_timed, tmp_path):
    commits = {PINNED_URL.match(recorded_default_url(n, tmp_path / n)).group(1) for n in MADE_UP_SETS}
    assert len(commits) == 1, "the pinned checksums belong to one commit"


def test_offline_error_says_what_to_do(made_up_timed, tmp_path):
    def offline(url):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    folder = tmp_path / "empty"
    with pytest.raises(TimedUnavailableError) as error:
        load_timed("gender", folder, fetch=offline)
    message = str(error.value)
    assert "could not be downloaded" in message and "name resolution" in message
    assert "TIMELAB_TIMED_DIR" in message and "--timed-dir" in message and str(folder) in message
    commit = PINNED_URL.match(recorded_default_url("gender", tmp_path / "cache")).group(1)
    assert f"github.com/bahjat-kawar/time-diffusion/tree/{commit}" in message, "the files to fetch by hand"
    assert not folder.exists() or not any(folder.iterdir())
    with pytest.raises(TimedUnavailableError, match="downloads disabled"):
        timed_path("gender", folder, download=False)

    def reset(url):
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(TimedUnavailableError, match="connection reset by peer"):  # any OSError reads the same
        load_timed("gender", folder, fetch=reset)


def test_a_local_file_with_other_contents_is_refused(made_up_timed, tmp_path):
    filename = MADE_UP_SETS["validation"][0]
    shutil.copy(made_up_timed / filename, tmp_path / filename)
    assert_edit_items_hold(load_timed("validation", tmp_path, download=False), EDIT_ROWS)  # as it is: accepted
    (tmp_path / filename).write_text(EDIT_CSV.replace("tulip", "tullip"), encoding="utf-8")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_timed("validation", tmp_path, download=False)


def test_search_order_is_the_env_folder_then_the_user_cache(made_up_timed, tmp_path, monkeypatch):
    filename = MADE_UP_SETS["gender"][0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(timed.TIMED_ENV, raising=False)
    cache = tmp_path / "xdg" / "timelab" / "timed"
    fetched = []

    def fetch(url):
        fetched.append(url)
        return (made_up_timed / filename).read_bytes()

    assert timed_path("gender", fetch=fetch) == cache / filename, "a missing file is downloaded into the cache"
    assert timed_path("gender", fetch=fetch) == cache / filename and len(fetched) == 1
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(made_up_timed / filename, own / filename)
    monkeypatch.setenv(timed.TIMED_ENV, str(own))
    assert timed_path("gender", fetch=fetch) == own / filename, "$TIMELAB_TIMED_DIR comes first"
    assert len(fetched) == 1


# --- the real files (not shipped: no licence) ---------------------------------------------------------


def raw_rows(name: str) -> list[list[str]]:
    with open(TIMED_DIR / TIMED_SETS[name][0], newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


@needs_timed
@pytest.mark.parametrize("name, count", [("test", 147), ("test-sd14", 104), ("validation", 8)])
def test_real_edit_sets_load_every_row_and_column(name, count):
    items = load_timed(name, TIMED_DIR, download=False)
    rows = raw_rows(name)
    assert len(rows) == count
    assert_edit_items_hold(items, rows)


@needs_timed
def test_real_gender_set_reads_the_attribute_from_the_destination():
    items = load_timed("gender", TIMED_DIR, download=False)
    rows = raw_rows("gender")
    assert len(items) == len(rows) == 35
    for item, row in zip(items, rows):
        assert isinstance(item, BiasItem)
        assert [item.source, item.destination, item.validation, *item.held_out] == row
        expected = ("female", "male") if " female " in f" {row[1]} " else ("male", "female")
        assert item.values == expected
    nurse = next(i for i in items if i.source == "a nurse")
    assert nurse.candidates == ("a female nurse", "a male nurse")


@needs_timed
@pytest.mark.parametrize("name", sorted(TIMED_SETS))
def test_real_files_round_trip_byte_exact(tmp_path, name):
    source = TIMED_DIR / TIMED_SETS[name][0]
    items = read_items(source)
    path = write_items(tmp_path / source.name, items)
    assert path.read_bytes() == source.read_bytes()
    assert read_items(path) == items


@needs_timed
def test_pinned_checksums_and_commit_are_those_of_the_real_files(tmp_path):
    provenance = (TIMED_DIR / "SOURCE.md").read_text()
    for name, (filename, pinned) in TIMED_SETS.items():
        assert hashlib.sha256((TIMED_DIR / filename).read_bytes()).hexdigest() == pinned, filename
        assert re.search(rf"\|\s*{re.escape(filename)}\s*\|\s*{pinned}\s*\|", provenance), filename
    url = recorded_url_of_real_file("validation", tmp_path / "cache")
    commit = PINNED_URL.match(url).group(1)
    assert f"at commit {commit}" in provenance, "the URL's commit is the one the files were copied from"


def recorded_url_of_real_file(name: str, folder: Path) -> str:
    fetched = []

    def fetch(url):
        fetched.append(url)
        return (TIMED_DIR / TIMED_SETS[name][0]).read_bytes()

    download_timed(name, folder, fetch=fetch)
    return fetched[0]


@needs_timed
@pytest.mark.parametrize("name", sorted(TIMED_SETS))
def test_real_files_download_from_a_mirror_with_the_pinned_checksums(tmp_path, name):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    filename = TIMED_SETS[name][0]
    shutil.copy(TIMED_DIR / filename, mirror / filename)
    path = download_timed(name, tmp_path / "cache", base_url=mirror.as_uri())
    assert path == tmp_path / "cache" / filename
    assert path.read_bytes() == (TIMED_DIR / filename).read_bytes()
    assert sha256_of(path) == hashlib.sha256((TIMED_DIR / filename).read_bytes()).hexdigest()
