"""The runner: results item by item, resume without redoing work, refuse mixing runs, shard across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
from evaluation_fakes import PromptPipe, ReadBackJudge, substitution_editor, value_editor

from timelab.evaluation import evaluate, read_results, summarize_bias, summarize_edits, write_report
from timelab.evaluation.tinyworld.items import edit_items
from timelab.evaluation.experiment import sampling
from timelab.evaluation.runner import part_files
from timelab.generation import GenerationSettings

ITEMS = edit_items()[:5]
EDITOR = substitution_editor(lambda seed, lamb: seed % 2 == 0)


@pytest.fixture(autouse=True)
def figures_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path / "figures"))


class StopAfter(ReadBackJudge):
    """Raises once it has judged ``n`` items' worth of calls, like a run killed midway."""

    def __init__(self, pipe, calls: int) -> None:
        super().__init__(pipe)
        self.left = calls

    def choose(self, images, candidates):
        if self.left == 0:
            raise KeyboardInterrupt("stopped")
        self.left -= 1
        return super().choose(images, candidates)


def run(output, judge_for=ReadBackJudge, **kw):
    pipe = PromptPipe()
    judge = judge_for(pipe, **kw) if kw else judge_for(pipe)
    records = evaluate(pipe, ITEMS, output, judge, seeds=3, lambdas=[0.1], editor=EDITOR, tags={"model": "fake"})
    return records, pipe


def test_results_file_has_a_header_and_one_line_per_item(tmp_path):
    output = tmp_path / "run.jsonl"
    records, _ = run(output)
    assert records == read_results(output)
    assert not output.with_suffix(".md").exists(), "evaluate returns records; rendering is the report's"
    table = write_report(output)
    summary = summarize_edits(records)
    lines = [json.loads(x) for x in output.read_text().splitlines()]
    assert lines[0]["config"]["model"] == "fake" and lines[0]["config"]["seeds"] == [0, 1, 2]
    assert [r["index"] for r in lines[1:]] == list(range(len(ITEMS)))
    assert [r["key"] for r in lines[1:]] == [i.key for i in ITEMS]
    # Seeds 0 and 2 of 3 are edited: efficacy 2/3 for TIME; the oracle draws the destination: 1.
    assert summary["TIME (lambda=0.1)"]["efficacy"][0] == pytest.approx(2 / 3)
    assert summary["oracle"]["efficacy"][0] == 1.0 and summary["unedited"]["efficacy"][0] == 0.0
    assert "| TIME (lambda=0.1) | 66.7 ± 0.0 |" in table and table in output.with_suffix(".md").read_text()
    assert "standard error of the mean over items" in table
    assert (tmp_path / "figures" / "eval_run.png").is_file()
    assert not part_files(output)


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    reference, _ = run(tmp_path / "reference.jsonl")
    output = tmp_path / "run.jsonl"
    # Each item makes 3 rows x 3 judge calls; 2 items and a bit, then the "kill".
    with pytest.raises(KeyboardInterrupt):
        run(output, StopAfter, calls=2 * 9 + 4)
    (part,) = part_files(output)
    assert [r["index"] for r in read_results(part)] == [0, 1], "finished items are on disk at once"
    with open(part, "a") as f:
        f.write('{"index": 2, "key": "half-writ')  # a line cut short by the kill
    records, pipe = run(output)
    assert records == reference
    assert read_results(output) == read_results(tmp_path / "reference.jsonl")
    assert not part_files(output)
    # Only items 2, 3, 4 were drawn again (every item costs the same number of pipeline calls).
    assert "a green circle" not in pipe.shown and "a blue circle" not in pipe.shown  # items 0 and 1
    assert "a yellow circle" in pipe.shown
    _, fresh = run(tmp_path / "fresh.jsonl")
    assert pipe.calls * 5 == fresh.calls * 3


def test_a_finished_run_is_not_redone(tmp_path):
    output = tmp_path / "run.jsonl"
    first, _ = run(output)
    again, pipe = run(output)
    assert again == first and pipe.calls == 0


def test_resuming_with_other_settings_is_refused(tmp_path):
    output = tmp_path / "run.jsonl"
    run(output)
    pipe = PromptPipe()
    with pytest.raises(ValueError, match="different run.*seeds"):
        evaluate(pipe, ITEMS, output, ReadBackJudge(pipe), seeds=4, lambdas=[0.1], editor=EDITOR,
                 tags={"model": "fake"})
    with pytest.raises(ValueError, match="different run.*items"):
        evaluate(pipe, ITEMS[:2], output, ReadBackJudge(pipe), seeds=3, lambdas=[0.1], editor=EDITOR,
                 tags={"model": "fake"})
    # Same keys, one related prompt changed: still other items.
    changed = [replace(ITEMS[0], related=(("a round thing", "a round blue thing"), *ITEMS[0].related[1:])),
               *ITEMS[1:]]
    assert [i.key for i in changed] == [i.key for i in ITEMS]
    with pytest.raises(ValueError, match="different run.*items"):
        evaluate(pipe, changed, output, ReadBackJudge(pipe), seeds=3, lambdas=[0.1], editor=EDITOR,
                 tags={"model": "fake"})


def test_the_header_names_the_sampler_that_drew_the_images():
    """The pipeline's own scheduler is named when none is given (so runs drawn by another default never
    resume each other); one with other options than a named sampler's is named by its class."""
    pipe = PromptPipe()
    assert sampling(pipe, GenerationSettings(batch_size=7)) == {
        "steps": None, "guidance_scale": None, "height": None, "width": None, "sampler": "ddim"}
    assert sampling(pipe, GenerationSettings(sampler="dpm-solver++"))["sampler"] == "dpm-solver++"
    pipe.scheduler = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                                 beta_schedule="scaled_linear", timestep_spacing="linspace")
    assert sampling(pipe, GenerationSettings())["sampler"] == "dpm-solver++"
    pipe.scheduler = DDIMScheduler(beta_schedule="scaled_linear")  # the final alpha set to one: not SD's DDIM
    assert sampling(pipe, GenerationSettings())["sampler"] == "DDIMScheduler"
    pipe.scheduler = PNDMScheduler()
    assert sampling(pipe, GenerationSettings())["sampler"] == "PNDMScheduler"


def test_a_bias_run_writes_its_table_and_figure(tmp_path):
    from timelab.evaluation.tinyworld.items import bias_items

    pipe = PromptPipe()
    pipe.rewrite = lambda text, seed: "a purple cross"  # unedited: always the majority value
    # The edit shows the destination on seeds below 4 / lambda (of 0..3): lambda 1 -> all, 2 -> half.
    editor = value_editor(lambda seed, lamb: seed < 4 / lamb, "a purple cross")
    output = tmp_path / "bias.jsonl"
    records = evaluate(pipe, bias_items(), output, ReadBackJudge(pipe), seeds=4, lambdas=[1.0, 2.0, 8.0],
                       refine=0, editor=editor)
    summary = summarize_bias(records)
    assert summary["unedited"]["Delta"][0] == 1.0 and summary["TIME"]["Delta"][0] == 0.0
    write_report(output)
    assert "| a cross -> a yellow cross | 2 |" in output.with_suffix(".md").read_text()
    assert (tmp_path / "figures" / "eval_bias.png").is_file()


WORKER = Path(__file__).with_name("evaluation_shard_worker.py")


def launch(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TIMELAB_FIGURES_DIR": str(tmp_path / "fig"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_split_the_items_and_merge_one_result(tmp_path):
    from timelab.evaluation.tinyworld.items import edit_items

    (tmp_path / "single").mkdir()
    (tmp_path / "sharded").mkdir()
    launch([str(WORKER), str(tmp_path / "single.jsonl"), str(tmp_path / "single")], tmp_path)
    launch(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
            str(WORKER), str(tmp_path / "sharded.jsonl"), str(tmp_path / "sharded")], tmp_path)
    single, sharded = read_results(tmp_path / "single.jsonl"), read_results(tmp_path / "sharded.jsonl")
    assert [r["index"] for r in sharded] == [0, 1, 2]
    assert sharded == single
    assert not part_files(tmp_path / "sharded.jsonl")
    # Each process judged its own items: rank 0 items 0 and 2, rank 1 item 1.
    items = edit_items()[:3]
    for rank, expected in ((0, [0, 2]), (1, [1])):
        log = (tmp_path / "sharded" / f"rank{rank}.txt").read_text().splitlines()
        judged = {tuple(line.split("\t")) for line in log}
        assert [i for i, item in enumerate(items) if (item.source, item.destination) in judged] == expected
