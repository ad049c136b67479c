"""TIMED, the authors' evaluation set: find it on disk or download it, pinned and checksummed.

The CSV files have no licence, so timelab never ships them. They are read from a folder
(``$TIMELAB_TIMED_DIR``, else the user cache) or
downloaded from the authors' repository at a pinned commit and checked against known SHA-256 sums
before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..files import atomic_path
from .formats import BiasItem, EditItem, read_items

REPOSITORY = "bahjat-kawar/time-diffusion"
COMMIT = "1d6784a3a46c08716412c0800dd7d18474ef92be"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/"
TIMED_ENV = "TIMELAB_TIMED_DIR"

# Set name -> (file name, SHA-256 of the file at COMMIT).
TIMED_SETS = {
    "test": ("TIMED_test_set.csv", "6ce405099d1b7e807349dab91f8f7637bffcbd61bd200cb8771793df7ed862a0"),
    "test-sd14": ("TIMED_test_set_filtered_SD14.csv",
                  "4cfe995465e78504a724b99a261525f29713f7dadfcb6a7ceb89865f85fd325c"),
    "validation": ("TIMED_validation_set.csv",
                   "d227e968ad4b04057fcd1b025adbbe7761f2b054c83f4269f785dccb7ea248c9"),
    "gender": ("TIMED_gender_test_set.csv",
               "edb465c13ade4f46665cb968eb98ec7372fa5a51fa4662ccf111c388eb50fdcd"),
}

Fetcher = Callable[[str], bytes]


class TimedUnavailableError(FileNotFoundError):
    """TIMED is neither on disk nor downloadable (typically: an offline machine)."""


def _check_name(name: str) -> tuple[str, str]:
    if name not in TIMED_SETS:
        raise ValueError(f"unknown TIMED set {name!r}; choose one of {sorted(TIMED_SETS)}")
    return TIMED_SETS[name]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/timelab/timed`` (default ``~/.cache/timelab/timed``)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "timelab" / "timed"


def search_dirs() -> list[Path]:
    """Folders searched in order: ``$TIMELAB_TIMED_DIR`` (when set), then the cache."""
    env = os.environ.get(TIMED_ENV)
    return ([Path(env)] if env else []) + [cache_dir()]


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    """The bytes at ``url`` (any scheme urllib knows, ``file://`` included)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _offline_message(name: str, reason: object, folder: Path) -> str:
    filename, _ = TIMED_SETS[name]
    return (
        f"TIMED set {name!r} ({filename}) is not on disk and could not be downloaded ({reason}). "
        f"On a machine with internet access, download the TIMED CSV files from "
        f"https://github.com/{REPOSITORY}/tree/{COMMIT} and put them in {folder}, "
        f"or in any folder named by ${TIMED_ENV} or passed as data_dir (CLI: --timed-dir)."
    )


def download_timed(name: str, folder: str | os.PathLike | None = None, base_url: str = BASE_URL,
                   fetch: Fetcher = fetch_url) -> Path:
    """Download one TIMED set into ``folder`` (default: the cache) and verify its SHA-256.

    Nothing is written unless the checksum matches; a failed fetch raises
    :class:`TimedUnavailableError` saying how to get the file by hand.
    """
    filename, expected = _check_name(name)
    folder = Path(folder) if folder is not None else cache_dir()
    url = base_url.rstrip("/") + "/" + filename
    try:
        data = fetch(url)
    except (urllib.error.URLError, OSError) as error:
        raise TimedUnavailableError(_offline_message(name, error, folder)) from error
    if sha256(data) != expected:
        raise ValueError(f"{url} has SHA-256 {sha256(data)}, expected {expected} (TIMED at commit {COMMIT}); "
                         f"not saved. Check that the URL serves the authors' files at that commit.")
    with atomic_path(folder / filename) as tmp:
        tmp.write_bytes(data)
    return folder / filename


def timed_path(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
               base_url: str = BASE_URL, fetch: Fetcher = fetch_url) -> Path:
    """The verified local file of a TIMED set, downloading it when allowed and missing.

    With ``data_dir`` only that folder is used (and downloaded into); otherwise :func:`search_dirs`.
    """
    filename, expected = _check_name(name)
    folders = [Path(data_dir)] if data_dir is not None else search_dirs()
    for folder in folders:
        path = folder / filename
        if path.is_file():
            if sha256(path.read_bytes()) != expected:
                raise ValueError(f"{path} does not match the SHA-256 of TIMED at commit {COMMIT}; delete it "
                                 f"to download it again, or load your own file with read_items(path).")
            return path
    if not download:
        raise TimedUnavailableError(_offline_message(name, "downloads disabled", folders[-1]))
    return download_timed(name, folders[-1], base_url, fetch)


def load_timed(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
               base_url: str = BASE_URL, fetch: Fetcher = fetch_url) -> list[EditItem] | list[BiasItem]:
    """The items of a TIMED set: ``"test"``, ``"test-sd14"``, ``"validation"`` or ``"gender"``."""
    return read_items(timed_path(name, data_dir, download, base_url, fetch))
