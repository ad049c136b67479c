"""timelab: learn, teach and use TIME (closed-form editing of text-to-image diffusion models)."""

__version__ = "0.1.0"

from .attention import AttentionRecorder
from .editing import Edit, align_tokens, closed_form, leakage, load_edit, reset_edits, time_edit
from .models import load_pipeline

__all__ = [
    "AttentionRecorder", "Edit", "__version__", "align_tokens", "closed_form", "leakage", "load_edit", "load_pipeline",
    "reset_edits", "time_edit",
]
