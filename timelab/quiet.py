"""Quiet loading: diffusers' and transformers' warnings and loading bars off while a model loads.

Loading a pipeline prints library chatter a learner cannot act on (deprecation notices, "falling back
to the PIL image processor", one progress bar per component). :func:`quiet_loading` turns the two
libraries' loggers down to errors and their loading bars off for the duration of a ``with`` block,
then restores every setting it changed, so nothing leaks into the caller's session. Hub download bars
(huggingface_hub) stay on: a first download of Stable Diffusion takes minutes and should show it.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Iterator

VERBOSE_ENV = "TIMELAB_VERBOSE"  # "1": show library warnings and loading bars (``timelab --verbose``)


def verbose_wanted(verbose: bool | None = None) -> bool:
    """``verbose`` if given, else whether ``$TIMELAB_VERBOSE`` is set to 1."""
    return os.environ.get(VERBOSE_ENV) == "1" if verbose is None else verbose


@contextmanager
def quiet_loading(verbose: bool | None = None) -> Iterator[None]:
    """Silence library warnings and loading bars inside the block, unless :func:`verbose_wanted`."""
    if verbose_wanted(verbose):
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libraries]
    for lib in libraries:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            (lib.enable_progress_bar if bars else lib.disable_progress_bar)()
