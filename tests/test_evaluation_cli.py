"""``timelab eval`` end to end, offline: a tiny SD pipeline and a tiny CLIP judge saved to folders."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from timed_fixtures import EDIT_CSV

import timelab.evaluation.cli
import timelab.evaluation.experiment
from timelab.cli import main
from timelab.tinyworld import BATCH_SIZE


def test_offline_timed_error_reaches_the_command_line(tmp_path, capsys):
    code = main(["eval", "--dataset", "timed-gender", "--timed-dir", str(tmp_path), "--no-download",
                 "--output", str(tmp_path / "out.jsonl")])
    assert code == 2
    assert "could not be downloaded" in capsys.readouterr().err


def test_unknown_dataset_is_named(tmp_path, capsys):
    assert main(["eval", "--dataset", "timed-train", "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "unknown dataset 'timed-train'" in capsys.readouterr().err


def test_eval_command_with_clip_judge_on_saved_tiny_models(tmp_path, sd1_pipe, clip_tokenizer, monkeypatch):
    from transformers import CLIPConfig, CLIPModel

    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path / "figures"))
    sd1_pipe.save_pretrained(tmp_path / "sd")
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           image_size=16, patch_size=8),
        projection_dim=16))
    clip.save_pretrained(tmp_path / "clip")
    clip_tokenizer.save_pretrained(tmp_path / "clip")
    items = tmp_path / "items.csv"  # one made-up item in TIMED's layout
    items.write_text(EDIT_CSV.split("\n", 2)[0] + "\n" + EDIT_CSV.split("\n", 2)[1] + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    args = ["eval", "--model", str(tmp_path / "sd"), "--dataset", str(items), "--judge", "clip",
            "--clip-model", str(tmp_path / "clip"), "--seeds", "2", "--lamb", "0.1", "1", "--steps", "2",
            "--size", "8", "--batch-size", "32", "--output", str(output), "--device", "cpu"]
    assert main(args) == 0
    header, record = [json.loads(line) for line in output.read_text().splitlines()]
    assert header["config"]["judge"] == f"clip:{tmp_path / 'clip'}" and header["config"]["lambdas"] == [0.1, 1.0]
    assert [(r["model"], r["lamb"]) for r in record["rows"]] == [
        ("unedited", None), ("TIME", 0.1), ("TIME", 1.0), ("oracle", None)]
    assert all(len(r["generality"]) == 5 and len(r["generality"][0]) == 2 for r in record["rows"])
    summary = output.with_suffix(".md").read_text()
    assert "| TIME (lambda=1) |" in summary
    assert (f"Command: `timelab eval --model {tmp_path / 'sd'} --dataset {items} --seeds 2 --lamb 0.1 1 --judge clip "
            f"--clip-model {tmp_path / 'clip'} --steps 2 --size 8 --output {output}`") in summary
    assert (tmp_path / "figures" / "eval_out.png").is_file()


def test_model_defaults_are_one_table_and_fill_only_what_is_not_given():
    from timelab.generation import GenerationSettings
    from timelab.evaluation.experiment import MODEL_DEFAULTS, model_defaults
    from timelab.tinyworld import MODEL_DIR, STEPS

    tiny, other = model_defaults("tinyworld"), model_defaults("CompVis/stable-diffusion-v1-4")
    assert (tiny.judge, tiny.steps, tiny.weights) == ("oracle", STEPS, MODEL_DIR) and other is MODEL_DEFAULTS["*"]
    assert (other.judge, other.steps, other.weights) == ("clip", None, None)
    assert tiny.settings(GenerationSettings()) == GenerationSettings(steps=STEPS)
    given = GenerationSettings(steps=10, guidance_scale=1.0, batch_size=4)
    assert tiny.settings(given) == given and other.settings(GenerationSettings()) == GenerationSettings()
    assert other.seeds == 24, "the paper's seeds for any model but TinyWorld"


def test_tinyworld_default_seeds_judge_each_items_efficacy_within_ten_points():
    """Efficacy is one prompt per item: its share of ``seeds`` images must have a 95% Wilson interval no wider
    than +-10 points wherever it falls (computed here from the formula, not timelab's helper)."""
    from timelab.evaluation.experiment import model_defaults

    n, z = model_defaults("tinyworld").seeds, 1.959964
    for hits in range(n + 1):
        p = hits / n
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert half <= 0.10, f"{hits}/{n}: +-{100 * half:.1f} points"


def test_eval_command_takes_the_models_seeds_and_batch_size_unless_given(monkeypatch):
    seen = {}
    monkeypatch.setattr(timelab.evaluation.cli, "run_eval",
                        lambda *args, **kwargs: seen.update(kwargs, batch=kwargs["settings"].batch_size))
    main(["eval", "--output", "x.jsonl"])
    assert (seen["seeds"], seen["batch"]) == (None, BATCH_SIZE)
    main(["eval", "--model", "some/sd-model", "--output", "x.jsonl", "--seeds", "5", "--batch-size", "3"])
    assert (seen["seeds"], seen["batch"]) == (5, 3)
    main(["eval", "--model", "some/sd-model", "--output", "x.jsonl"])
    assert seen["batch"] == 8


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.mark.parametrize("name", ["tinyworld_eval", "tinyworld_bias", "tinyworld_bias_guidance1"])
def test_shipped_results_resume_with_their_own_command_and_report_the_same_table(name, tmp_path, monkeypatch,
                                                                                 capsys):
    """The command in each shipped summary, run again on a copy of its results, finds every item done
    (nothing is drawn) and renders the table it shows."""
    evaluate_module = timelab.evaluation.experiment

    def nothing_left(*args, **kwargs):
        raise AssertionError("a finished run must not evaluate any item again")

    monkeypatch.setattr(evaluate_module, "evaluate_edit_item", nothing_left)
    monkeypatch.setattr(evaluate_module, "evaluate_bias_item", nothing_left)
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path / "figures"))
    shipped = (RESULTS / f"{name}.md").read_text()
    output = tmp_path / f"{name}.jsonl"
    shutil.copy(RESULTS / f"{name}.jsonl", output)
    words = re.search(r"Command: `timelab (.*)`", shipped).group(1).split()
    words[words.index("--output") + 1] = str(output)
    assert main(words) == 0
    table = shipped.split("\n\n")[1]
    assert table.startswith("| ") and table in capsys.readouterr().out
    assert table in output.with_suffix(".md").read_text()
    assert (tmp_path / "figures" / f"eval_{name}.png").is_file()
