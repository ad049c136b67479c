"""An edit's settings, typed: what a TIME edit solved for, stored in the edit file and read back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .alignment import AUGMENTATION_PREFIXES
from .solver import PAPER_LAMBDA, check_lambda, check_positive


@dataclass(frozen=True)
class EditSettings:
    """``lamb``: ridge strength; ``edit_keys``/``edit_values``: which projections (``to_k``/``to_v``);
    ``augment``/``prefixes``: the paper's prompt prefixes; ``layers``: layer names or prefixes (None: all);
    ``preserve``/``preserve_weight``: prompts whose keys and values should stay put, and the weight of
    that term (see :func:`timelab.editing.solver.ridge_factor`)."""

    lamb: float = PAPER_LAMBDA
    edit_keys: bool = True
    edit_values: bool = True
    augment: bool = True
    prefixes: tuple[str, ...] = field(default=AUGMENTATION_PREFIXES)
    layers: tuple[str, ...] | None = None
    preserve: tuple[str, ...] = ()
    preserve_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lamb", check_lambda(self.lamb))
        object.__setattr__(self, "prefixes", tuple(self.prefixes) if self.augment else ())
        if self.layers is not None:
            object.__setattr__(self, "layers", (self.layers,) if isinstance(self.layers, str) else tuple(self.layers))
        preserve = (self.preserve,) if isinstance(self.preserve, str) else tuple(self.preserve)
        object.__setattr__(self, "preserve", preserve)
        object.__setattr__(self, "preserve_weight",
                           check_positive("preserve_weight", self.preserve_weight, "it weighs the preserved prompts"))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "EditSettings":
        return cls(**json.loads(text))
