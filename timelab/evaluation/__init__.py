"""Measure an editing method the way the TIME paper does: item sets (TIMED; TinyWorld's in
:mod:`timelab.evaluation.tinyworld`), judges (CLIP; TinyWorld's exact one), efficacy / generality /
specificity and the bias gap Delta, the attributes an edit kept, a resumable sharded runner, reports.

The names here are the ones a user calls; the modules hold the rest:

    experiment   evaluate(pipe, items, ...), run_eval(model, dataset, ...): ``timelab eval``
    edits, bias  one edit item / one bias item, measured
    judges       the judge protocol and the CLIP zero-shot judge
    metrics      hits -> scores, Wilson intervals, Delta, total variation, attributes-kept summaries
    runner       the resumable, shardable loop and its results files
    report       Markdown tables and figures of a results file
    formats      TIMED's CSV formats; timed: the TIMED files themselves
"""

from .bias import DEFAULT_LAMBDAS, evaluate_bias_item, search_lambda
from .edits import evaluate_edit_item
from .experiment import DATASETS, evaluate, load_dataset, make_judge, run_eval
from .formats import BiasItem, EditItem, read_items, write_items
from .judges import DEFAULT_CLIP, ClipJudge, Judge
from .metrics import delta, item_score, kept_score, summarize_bias, summarize_edits, summarize_kept
from .report import write_report
from .runner import read_results
from .timed import TIMED_SETS, TimedUnavailableError, download_timed, load_timed
from .tinyworld import OracleJudgeAdapter, tinyworld_clip_judge

__all__ = [
    "DATASETS", "DEFAULT_CLIP", "DEFAULT_LAMBDAS", "TIMED_SETS", "BiasItem", "ClipJudge", "EditItem", "Judge",
    "OracleJudgeAdapter", "TimedUnavailableError", "delta", "download_timed", "evaluate", "evaluate_bias_item",
    "evaluate_edit_item", "item_score", "kept_score", "load_dataset", "load_timed", "make_judge", "read_items",
    "read_results", "run_eval", "search_lambda", "summarize_bias", "summarize_edits", "summarize_kept",
    "tinyworld_clip_judge", "write_items", "write_report",
]
