"""Choosing the shipped student: validation scores only, clear error when an evaluation is missing."""

import json

import pytest

from earshot_train import ship


def _cfg(tmp_path, name, acc, cider):
    runs = tmp_path / "runs"
    (runs / name).mkdir(parents=True)
    ev = {"metrics": {"source_accuracy": acc, "CIDEr-D": cider}}
    (runs / name / "eval_val.json").write_text(json.dumps(ev))
    p = tmp_path / f"{name}.toml"
    p.write_text(f'[experiment]\nname = "{name}"\nruns_dir = "{runs}"\n')
    return p


def test_highest_validation_source_accuracy_wins_then_cider(tmp_path):
    a = _cfg(tmp_path, "a", 0.70, 1.9)
    b = _cfg(tmp_path, "b", 0.80, 1.2)
    c = _cfg(tmp_path, "c", 0.80, 1.4)
    best, scores = ship.choose([a, b, c])
    assert best["name"] == "c"
    assert [s["name"] for s in scores] == ["a", "b", "c"]


def test_cli_prints_the_chosen_config(tmp_path, capsys):
    a = _cfg(tmp_path, "a", 0.5, 1.0)
    b = _cfg(tmp_path, "b", 0.6, 0.9)
    assert ship.main([str(a), str(b)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(b)
    assert "* b" in out.err


def test_missing_evaluation_is_one_clear_error(tmp_path, capsys):
    a = _cfg(tmp_path, "a", 0.5, 1.0)
    p = tmp_path / "x.toml"
    p.write_text(f'[experiment]\nname = "x"\nruns_dir = "{tmp_path / "runs"}"\n')
    assert ship.main([str(a), str(p)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--split val" in err


def test_no_candidates_is_an_error():
    with pytest.raises(ValueError):
        ship.choose([])
