"""The edit file's format: an edit's matrices and settings as safetensors, written and read back checked.

An edit file holds only the edited matrices (no pickle) and metadata: the prompts, the architecture
(:mod:`.sites`; a file is refused by a model of another one), the
:class:`~timelab.editing.settings.EditSettings`, the shapes, and digests of every matrix the edit was
made from. A digest is a SHA-256 of the matrix's bytes, so it tells apart two models whose matrices
merely have equal norms. It is kept for the dtype the edit was made in and for each half precision
below it: a float16 load of a float32 checkpoint is the float32 weights cast to float16, so an edit
made in float32 on a CPU is recognised by the same model loaded in float16 on a GPU, and vice versa.

The file also checks itself: ``stored_digests`` holds the dtype and digest of each edited matrix as
written, so a file damaged after saving (a byte flipped on a disk or in a copy) is refused, naming the
matrix, instead of loading wrong weights without a word. A file saved before ``stored_digests`` existed
is refused too, with a message saying why: it cannot be told apart from a damaged one, and making the
edit again and saving it takes seconds and gives a file that can be checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..files import atomic_path
from ..version import __version__
from .sites import architecture

if TYPE_CHECKING:  # the Edit saves itself through save_edit; this module only reads its fields
    from .edit import Edit

FORMAT = "timelab-edit/2"
DTYPES = {str(dtype): dtype for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)}
HALF = (torch.float16, torch.bfloat16)
STORED = "stored_digests"  # metadata: each stored edited matrix's dtype and digest, to check the file itself


def weight_digest(weight: Tensor, dtype: torch.dtype | None = None) -> str:
    """SHA-256 (first 32 hex digits) of ``weight``'s bytes, cast to ``dtype`` first when given."""
    data = weight.detach().to(dtype or weight.dtype).contiguous().cpu()
    return hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()[:32]


def _model_name(pipe) -> str:
    return str(getattr(pipe, "name_or_path", None) or type(pipe).__name__)


def metadata(edit: Edit) -> dict[str, str]:
    """The edit file's metadata (all strings, as safetensors requires)."""
    dtype = next(iter(edit.original.values())).dtype
    return {
        "format": FORMAT,
        "timelab_version": __version__,
        "model": _model_name(edit.pipe),
        "pipeline": type(edit.pipe).__name__,
        "architecture": architecture(edit.pipe).name,
        "source": json.dumps(edit.source),
        "destination": json.dumps(edit.destination),
        "settings": edit.settings.to_json(),
        "stacked": json.dumps(edit.stacked),
        "dtype": str(dtype),
        "shapes": json.dumps({n: list(w.shape) for n, w in edit.edited.items()}),
        STORED: json.dumps({n: {"dtype": str(w.dtype), "sha256": weight_digest(w)} for n, w in edit.edited.items()}),
        "digests": json.dumps({str(d): {n: weight_digest(w, d) for n, w in edit.original.items()}
                               for d in (dtype, *(h for h in HALF if dtype not in HALF))}),
    }


def save_edit(edit: Edit, path: str | os.PathLike) -> Path:
    """Write the edited matrices and metadata as safetensors (atomically: no half-written file)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"edit files are safetensors: name it like 'edit.safetensors', got {path.name!r}")
    tensors = {name: weight.detach().contiguous().cpu() for name, weight in edit.edited.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata(edit))
    return path


def read_file(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"no edit file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                older = str(meta.get("format", "")).startswith("timelab-edit/")
                raise ValueError(f"{path} is not a timelab edit file of this version (format "
                                 f"{meta.get('format')!r}, expected {FORMAT!r})"
                                 + ("; make it again with time_edit and Edit.save" if older else ""))
            if STORED not in meta:
                raise ValueError(f"{path} was saved by a timelab from before edit files carried digests of their own "
                                 "matrices, so it cannot be checked for damage; make the edit again with time_edit "
                                 "and save it with Edit.save")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except SafetensorError as error:
        raise ValueError(f"{path} is damaged or not an edit file: safetensors cannot read it ({error}); "
                         "save the edit again with Edit.save") from None
    damage = _damage(meta, tensors)
    if damage:
        raise ValueError(f"{path} is damaged: {damage}, so it is not what was saved; save the edit again "
                         "(time_edit, then Edit.save) and load the new file")
    return meta, tensors


def _damage(meta: dict[str, str], tensors: dict[str, Tensor]) -> str | None:
    """What in the file's matrices differs from what was saved (None: nothing), from ``stored_digests``."""
    try:
        stored, shapes = json.loads(meta[STORED]), json.loads(meta["shapes"])
    except (KeyError, ValueError) as error:
        return f"its metadata cannot be read ({error!r})"
    if not (isinstance(stored, dict) and isinstance(shapes, dict)):
        return "its metadata cannot be read (the matrices' digests or shapes are not a mapping)"
    if set(stored) != set(tensors) or set(shapes) != set(tensors):
        odd = sorted((set(stored) | set(shapes)) ^ set(tensors))
        return f"its matrices and its list of matrices differ ({odd[0]})"
    for name, tensor in tensors.items():
        saved = stored[name] if isinstance(stored[name], dict) else {}
        if list(tensor.shape) != shapes[name] or str(tensor.dtype) != saved.get("dtype"):
            return (f"matrix {name} reads as {tensor.dtype} {list(tensor.shape)}, "
                    f"saved as {saved.get('dtype')} {shapes[name]}")
        if weight_digest(tensor) != saved.get("sha256"):
            return f"matrix {name} does not match its SHA-256 digest"
    return None
