"""Loading an edit file back into a model (:func:`load_edit`); the format itself is :mod:`.edit_format`.

:func:`load_edit` makes every check before it touches the model: a file that is damaged, made for
another model or at odds with the edits already active is refused, and leaves the model as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .edit import Edit, active_edits, reset_edits, weights_without_edits
from .edit_format import DTYPES, read_file, weight_digest
from .settings import EditSettings
from .sites import architecture, site_projections


def _problems(pipe, path: Path, meta: dict[str, str], stack: bool) -> tuple[dict, str | None]:
    """The model's projections, and what is wrong with loading the file into them (None: nothing)."""
    available = site_projections(pipe)
    made_for = f"made for another model ({meta['model']}, {meta['pipeline']})"
    arch = architecture(pipe)
    if meta.get("architecture", "unet") != arch.name:  # files from before the field were all made on UNets
        return available, (f"{path} was {made_for}, an edit of a {meta.get('architecture', 'unet')!r} model; this "
                           f"is {arch.models}, whose edit sites differ. Load it into the model it was made for.")
    shapes = json.loads(meta["shapes"])
    wrong = [f"{name}: file {shape}, model " + (str(list(available[name].weight.shape)) if name in available
                                                else "has no such layer")
             for name, shape in shapes.items()
             if name not in available or list(available[name].weight.shape) != shape]
    if wrong:
        return available, f"{path} was {made_for}: " + "; ".join(wrong[:3]) + ". Load it into the model it was made for."
    base = ({n: available[n].weight for n in shapes} if stack else weights_without_edits(pipe, list(shapes)))
    digests = json.loads(meta["digests"])
    here = str(next(iter(base.values())).dtype)
    dtype = DTYPES[here if here in digests else meta["dtype"]]  # compare in this model's dtype if the file can
    differ = [n for n, digest in digests[str(dtype)].items() if weight_digest(base[n], dtype) != digest]
    if differ:
        hint = (" It was made on top of another edit (stacked): apply that one first, then this one with "
                "stack=True." if json.loads(meta["stacked"]) else "")
        return available, (f"{path} was {made_for}: the original weights differ from this model's "
                           f"in {len(differ)} of {len(shapes)} matrices (first: {differ[0]}).{hint} "
                           "Load it into the model it was made for.")
    return available, None


def load_edit(pipe, path: str | os.PathLike, stack: bool = False) -> Edit:
    """Apply an edit saved by :meth:`Edit.save` to ``pipe``; refuses files made for another model.

    Every check runs before the model is touched, so a refused file leaves any active edit in place.
    Unless ``stack``, active edits are undone first (the file was made from the original weights).
    """
    path = Path(path)
    meta, tensors = read_file(path)
    available, problem = _problems(pipe, path, meta, stack)
    if problem:
        raise ValueError(problem)
    stacked = stack and bool(active_edits(pipe))
    if not stack:
        reset_edits(pipe)
    original = {name: available[name].weight.detach().clone() for name in tensors}
    edited = {name: tensor.to(device=original[name].device, dtype=original[name].dtype)
              for name, tensor in tensors.items()}
    edit = Edit(pipe=pipe, source=json.loads(meta["source"]), destination=json.loads(meta["destination"]),
                settings=EditSettings.from_json(meta["settings"]), original=original, edited=edited,
                stacked=stacked)
    return edit.activate()  # the digests were just checked against these very weights
