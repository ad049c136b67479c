"""Evaluation on TinyWorld: everything that measures an edit or the model *on* TinyWorld, on one side of
one seam. It reads the world (:mod:`timelab.tinyworld`: spec, captions, the exact judge) and the
evaluation's general parts (judges, metrics, the item loop); neither of those imports anything here.

    attributes     what an edit changes and what it must keep (the one place that says it)
    oracle         the exact judge and TinyWorld's tiny CLIP behind the evaluation's judge protocol
    items          the TinyWorld edit and bias item sets, in TIMED's formats
    localisation   does an object word's attention fall on the object the judge found?
    measure        ``timelab tinyworld measure``: every figure of the model card
    model_card     the model card, written from those figures
"""

from .attributes import added_attribute, attributes_kept, edited_attributes, kept_attributes, left_alone
from .items import bias_items, edit_items
from .oracle import OracleJudgeAdapter, tinyworld_clip_judge

__all__ = [
    "OracleJudgeAdapter", "added_attribute", "attributes_kept", "bias_items", "edit_items", "edited_attributes",
    "kept_attributes", "left_alone", "tinyworld_clip_judge",
]
