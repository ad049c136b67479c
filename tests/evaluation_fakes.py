"""Test doubles for the evaluation tests: a pipeline whose images say which prompt they show, a judge
that reads that back, and an edit that rewrites prompts on chosen seeds. Outcomes are then known
exactly, so metrics can be checked against a hand computation."""

from __future__ import annotations

import re
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Callable

import numpy as np

from timelab.schedulers import ddim


class PromptPipe:
    """Draws a 2x2 image whose every pixel is the index of the prompt it shows in ``self.shown``."""

    def __init__(self) -> None:
        self.scheduler = ddim()  # named in results headers, as a real pipeline's
        self.shown: list[str] = []
        self.rewrite: Callable[[str, int], str] | None = None
        self.calls = 0

    def set_progress_bar_config(self, **_) -> None:
        pass

    def index(self, prompt: str) -> int:
        if prompt not in self.shown:
            self.shown.append(prompt)
        return self.shown.index(prompt)

    def __call__(self, prompt, generator, output_type, **_):
        assert output_type == "np" and len(prompt) == len(generator)
        self.calls += 1
        images = []
        for text, gen in zip(prompt, generator):
            drawn = self.rewrite(text, gen.initial_seed()) if self.rewrite else text
            images.append(np.full((2, 2, 3), self.index(drawn), dtype=np.float32))
        return SimpleNamespace(images=np.stack(images))


class ReadBackJudge:
    """Picks the second caption exactly when the image shows that caption's prompt."""

    def __init__(self, pipe: PromptPipe) -> None:
        self.pipe = pipe

    def choose(self, images, candidates):
        shown = [self.pipe.shown[int(im[0, 0, 0])] for im in images]
        return np.asarray([int(s == b) for s, (_, b) in zip(shown, candidates)])


def substitution_editor(applies: Callable[[int, float], bool]):
    """An editor that rewrites ``source`` as ``destination`` (whole words) on the seeds where ``applies``."""

    @contextmanager
    def edit(pipe: PromptPipe, source: str, destination: str, lamb: float):
        pattern = re.compile(rf"\b{re.escape(source)}\b")
        pipe.rewrite = lambda text, seed: pattern.sub(destination, text) if applies(seed, lamb) else text
        try:
            yield
        finally:
            pipe.rewrite = None

    return edit


def value_editor(applies: Callable[[int, float], bool], majority: str):
    """For bias items: with the edit, seeds where ``applies`` draw the destination, the rest ``majority``."""

    @contextmanager
    def edit(pipe: PromptPipe, source: str, destination: str, lamb: float):
        before = pipe.rewrite
        pipe.rewrite = lambda text, seed: destination if applies(seed, lamb) else majority
        try:
            yield
        finally:
            pipe.rewrite = before

    return edit
