"""Measure an editing method the way the TIME paper does: TIMED and TinyWorld item sets, CLIP and
oracle judges, efficacy / generality / specificity and the bias gap Delta, the attributes an edit kept
(TinyWorld's oracle), a resumable sharded runner."""

from .bias import DEFAULT_LAMBDAS, evaluate_bias_item, search_lambda
from .edits import evaluate_edit_item
from .evaluate import DATASETS, evaluate, load_dataset, make_judge, run_eval
from .formats import BiasItem, EditItem, read_items, write_items
from .judges import DEFAULT_CLIP, ClipJudge, Judge, OracleJudgeAdapter, tinyworld_clip_judge
from .metrics import (
    attributes_kept, delta, item_score, kept_score, summarize_bias, summarize_edits, summarize_kept, total_variation,
)
from .report import write_report
from .runner import read_results, run_items
from .timed import TIMED_SETS, TimedUnavailableError, download_timed, load_timed, timed_path

__all__ = [
    "DATASETS", "DEFAULT_CLIP", "DEFAULT_LAMBDAS", "TIMED_SETS", "BiasItem", "ClipJudge", "EditItem",
    "Judge", "OracleJudgeAdapter", "TimedUnavailableError", "attributes_kept", "delta", "download_timed",
    "evaluate", "evaluate_bias_item", "evaluate_edit_item", "item_score", "kept_score", "load_dataset",
    "load_timed", "make_judge", "read_items", "read_results", "run_eval", "run_items", "search_lambda",
    "summarize_bias", "summarize_edits", "summarize_kept", "timed_path", "tinyworld_clip_judge",
    "total_variation", "write_items", "write_report",
]
