"""TIME's edit engine, in the order data flows: the model's edit sites (:mod:`.sites`) -> prompts and
alignment -> keys and target states -> closed-form solver -> the applied :class:`Edit` (undo, stack) ->
the edit file (save, load); and the leakage an edit predicts for any prompt."""

from .alignment import AUGMENTATION_PREFIXES, align_tokens, augment_prompt
from .edit import Edit, active_edits, reset_edits
from .edit_file import load_edit
from .keys import UnknownWordsWarning, edit_pairs, keys_and_aligned_states
from .leakage import leakage
from .layers import cross_attention_layers, projections, select_layers, text_width
from .prompts import encode_prompts, tokenizers, unknown_words
from .settings import EditSettings
from .sites import ARCHITECTURES, architecture, edit_sites, site_inputs, site_projections
from .solver import apply_update, closed_form, ridge_factor, solve_for_states
from .time_edit import time_edit

__all__ = [
    "active_edits", "align_tokens", "apply_update", "architecture", "ARCHITECTURES", "augment_prompt",
    "AUGMENTATION_PREFIXES", "closed_form", "cross_attention_layers", "Edit", "edit_pairs", "edit_sites",
    "EditSettings", "encode_prompts", "keys_and_aligned_states", "leakage", "load_edit", "projections",
    "reset_edits", "ridge_factor", "select_layers", "site_inputs", "site_projections", "solve_for_states",
    "text_width", "time_edit", "tokenizers", "unknown_words", "UnknownWordsWarning",
]
