"""timelab: learn, teach and use TIME (closed-form editing of text-to-image diffusion models)."""

from .attention import AttentionRecorder
from .editing import Edit, align_tokens, closed_form, edit_sites, leakage, load_edit, reset_edits, time_edit
from .models import load_pipeline
from .version import __version__

__all__ = [
    "AttentionRecorder", "Edit", "__version__", "align_tokens", "closed_form", "edit_sites", "leakage", "load_edit",
    "load_pipeline", "reset_edits", "time_edit",
]
