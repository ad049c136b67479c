"""TIME's edit engine: closed-form solver, token alignment, layer discovery and the Edit lifecycle."""

from .alignment import AUGMENTATION_PREFIXES, align_tokens, augment_prompt
from .edit import Edit, edit_pairs, keys_and_aligned_states, load_edit, reset_edits, time_edit
from .layers import cross_attention_layers, projections, select_layers, text_width
from .prompts import encode_prompts, tokenizers
from .solver import apply_update, closed_form, ridge_factor

__all__ = [
    "AUGMENTATION_PREFIXES", "Edit", "align_tokens", "apply_update", "augment_prompt", "closed_form",
    "cross_attention_layers", "edit_pairs", "encode_prompts", "keys_and_aligned_states", "load_edit", "projections", "reset_edits", "ridge_factor",
    "select_layers", "text_width", "time_edit", "tokenizers",
]
