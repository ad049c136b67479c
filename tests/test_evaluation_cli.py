"""``timelab eval`` end to end, offline: a tiny SD pipeline and a tiny CLIP judge saved to folders."""

from __future__ import annotations

import json

import torch
from conftest import TIMED_DIR, needs_timed

from timelab.cli import main
from timelab.evaluation import load_timed, write_items


def test_offline_timed_error_reaches_the_command_line(tmp_path, capsys):
    code = main(["eval", "--dataset", "timed-gender", "--timed-dir", str(tmp_path), "--no-download",
                 "--output", str(tmp_path / "out.jsonl")])
    assert code == 2
    assert "could not be downloaded" in capsys.readouterr().err


def test_unknown_dataset_is_named(tmp_path, capsys):
    assert main(["eval", "--dataset", "timed-train", "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "unknown dataset 'timed-train'" in capsys.readouterr().err


@needs_timed
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
    items = write_items(tmp_path / "items.csv", load_timed("validation", TIMED_DIR, download=False)[:1])
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
