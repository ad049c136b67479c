"""An edit's settings, typed: what a TIME edit solved for, stored in the edit file and read back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .alignment import AUGMENTATION_PREFIXES
from .solver import check_lambda


@dataclass(frozen=True)
class EditSettings:
    """``lamb``: ridge strength; ``edit_keys``/``edit_values``: which projections (``to_k``/``to_v``);
    ``augment``/``prefixes``: the paper's prompt prefixes; ``layers``: layer names or prefixes (None: all)."""

    lamb: float = 0.1
    edit_keys: bool = True
    edit_values: bool = True
    augment: bool = True
    prefixes: tuple[str, ...] = field(default=AUGMENTATION_PREFIXES)
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lamb", check_lambda(self.lamb))
        object.__setattr__(self, "prefixes", tuple(self.prefixes) if self.augment else ())
        if self.layers is not None:
            object.__setattr__(self, "layers", (self.layers,) if isinstance(self.layers, str) else tuple(self.layers))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "EditSettings":
        return cls(**json.loads(text))
