"""Small helpers shared by the course notebooks: which model to run on, which seeds, judged shares
with their intervals, claims asserted on intervals, prose rendered from values, and exercise checks.

Every notebook's parameters cell reads ``MODEL = os.environ.get("TIMELAB_MODEL", default_model())``:
Stable Diffusion 1.4 when a GPU is present, TinyWorld (shipped with the package) otherwise; then
``timelab.load_pipeline(MODEL)`` loads it. Seeds come from :func:`seeds`, so that
``TIMELAB_SEED_OFFSET=1000`` reruns a notebook on other images: its asserts say whether its prose
still holds.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, NamedTuple

from .devices import gpu_available
from .evaluation.metrics import wilson
from .models import SD14, TINYWORLD

MODEL_ENV = "TIMELAB_MODEL"
SEED_OFFSET_ENV = "TIMELAB_SEED_OFFSET"


def default_model() -> str:
    """SD 1.4 on a GPU, TinyWorld on a CPU."""
    return SD14 if gpu_available() else TINYWORLD


def pick_model() -> str:
    """``$TIMELAB_MODEL`` when set, else :func:`default_model`."""
    return os.environ.get(MODEL_ENV) or default_model()


def seeds(n: int) -> list[int]:
    """``n`` consecutive seeds starting at ``$TIMELAB_SEED_OFFSET`` (0 when unset)."""
    if n < 1:
        raise ValueError(f"need at least one seed, got n = {n}")
    raw = os.environ.get(SEED_OFFSET_ENV, "0")
    try:
        offset = int(raw)
    except ValueError:
        raise ValueError(f"${SEED_OFFSET_ENV} must be a whole number, got {raw!r}") from None
    if offset < 0:
        raise ValueError(f"${SEED_OFFSET_ENV} must be >= 0, got {offset}")
    return list(range(offset, offset + n))


class Share(NamedTuple):
    """``hits`` of ``n`` judged images, with Wilson's 95% interval ``[low, high]``
    (:func:`timelab.evaluation.metrics.wilson`). Prints as ``75% [67, 82] of 128``."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n

    @property
    def low(self) -> float:
        return wilson(self.hits, self.n)[0]

    @property
    def high(self) -> float:
        return wilson(self.hits, self.n)[1]

    def __str__(self) -> str:
        return f"{self.value:.0%} [{self.low:.0%}, {self.high:.0%}] of {self.n}"


def share(outcomes: Iterable[bool]) -> Share:
    """The :class:`Share` of true outcomes (one per judged image)."""
    outcomes = [bool(o) for o in outcomes]
    if not outcomes:
        raise ValueError("no outcomes: a share needs at least one judged image")
    return Share(sum(outcomes), len(outcomes))


def assert_above(higher: Share, lower: Share | float, claim: str) -> None:
    """Assert ``claim``, that ``higher`` exceeds ``lower``, on 95% intervals: ``higher``'s low end must
    lie above ``lower``'s high end (or above ``lower`` itself, a fixed number such as chance)."""
    ceiling = lower.high if isinstance(lower, Share) else float(lower)
    if not higher.low > ceiling:
        shown = lower if isinstance(lower, Share) else f"{ceiling:.0%}"
        raise AssertionError(f"{claim}: {higher} does not clear {shown} (95% intervals; the text says it does)")


def show_markdown(text: str) -> None:
    """Display ``text`` as Markdown: prose whose numbers come from the cell that computed them."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def check_rejects(check: Callable[[Callable], None], wrong_answers: Mapping[str, Callable]) -> None:
    """Assert that an exercise's ``check`` refuses each of the natural ``wrong_answers`` (named), so that
    its passing means something. A refusal is any exception the check raises on the answer."""
    accepted = []
    for name, answer in wrong_answers.items():
        try:
            check(answer)
        except Exception:  # noqa: BLE001 - any failure of the check is a refusal
            continue
        accepted.append(name)
    if accepted:
        raise AssertionError(f"the check accepts wrong answers: {', '.join(accepted)}")
    print(f"the check refuses {len(wrong_answers)} wrong answers: {', '.join(wrong_answers)}")


def assert_written_by_hand(function: Callable, forbidden: Iterable[str]) -> None:
    """Assert that ``function`` computes its answer itself: its compiled code (nested functions and
    lambdas included) names none of the ``forbidden`` functions, methods or keyword arguments. For
    exercises that ask for by hand what a library call would answer (the check compares with it)."""
    used, codes = set(), [function.__code__]
    while codes:
        code = codes.pop()
        used |= set(code.co_names)  # globals and attributes it reads (calls included)
        for constant in code.co_consts:
            if isinstance(constant, tuple):  # keyword argument names of its calls
                used |= {c for c in constant if isinstance(c, str)}
            elif hasattr(constant, "co_names"):
                codes.append(constant)
    found = sorted(used & set(forbidden))
    if found:
        raise AssertionError(f"{function.__name__} uses {', '.join(found)}: the exercise asks for that "
                             "computation written out by hand")


def check_exercise(name: str, check: Callable[[], None]) -> bool:
    """Run an exercise's ``check``: True when it passes, False (with a note) while the stub is unsolved.

    A stub signals "not done yet" by raising NotImplementedError; a wrong answer raises from ``check``
    (an AssertionError naming what is off) and is not caught.
    """
    try:
        check()
    except NotImplementedError:
        print(f"{name}: not done yet (the stub raises NotImplementedError)")
        return False
    print(f"{name}: correct")
    return True
