"""The main job, ``timelab demo``: TinyWorld's assumption edited, figure written, table printed."""

import re

import pytest

from timelab.demo import pick_item, run_demo


def percent(table: str, row: str, column: int) -> float:
    line = next(l for l in table.splitlines() if l.startswith(f"| {row}"))
    return float(re.findall(r"([\d.]+) ±", line)[column])


def test_demo_flips_the_assumption_and_writes_the_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path))
    table, path = run_demo(seeds=6)
    assert path == tmp_path / "demo.png" and path.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "'a circle' is drawn red" in out, "before the edit TinyWorld should draw circles red"
    assert re.search(r"after Edit.*'a circle' is drawn blue", out), "after it, blue"
    efficacy = {row: percent(table, row, 0) for row in ("unedited", "TIME", "oracle")}
    assert efficacy["unedited"] <= 20 and efficacy["TIME"] >= 70 and efficacy["oracle"] >= 70, efficacy
    assert percent(table, "TIME", 2) >= 60, "specificity: other shapes should mostly keep their colours"


def test_unknown_item_is_a_clear_error():
    with pytest.raises(ValueError, match="no TinyWorld item 'a dog' -> 'a blue dog'; try one of"):
        pick_item("a dog", "a blue dog")
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        run_demo(seeds=0)
