"""RESULTS-ft.md logic on hand-made runs: seed means, the per-run column, rows without runs."""

from earshot_train import config as C
from earshot_train import ft_results


def _run(cider, src, esc, held, broad, deg=0, steps=3340):
    measure = {
        "esc10_fold4": {"source_accuracy": esc},
        "heldout": {"source_accuracy": held, "source_accuracy_broad": broad, "files": 532},
        "mix": {"source_accuracy": 0.01},
        "degenerate": {"degenerate": deg, "windows": 1225},
    }
    return {
        "ran": True,
        "steps": steps,
        "measure": measure,
        "test_single": {"BLEU-4": 0.1, "METEOR": 0.2, "ROUGE-L": 0.3, "CIDEr-D": cider, "source": src},
        "test_mix": {"CIDEr-D": 0.5, "source": 0.02},
    }


def _rows(**runs):
    return [(key, label, frac, runs.get(key, [])) for key, label, frac, _, _ in ft_results.ROWS]


def test_two_seeds_are_averaged_and_listed_per_run():
    md = ft_results.render(
        _rows(
            nokd100=[_run(1.6, 0.60, 0.90, 0.60, 0.75), _run(1.8, 0.62, 0.88, 0.64, 0.77, deg=2)],
            nce100=[_run(1.9, 0.66, 0.91, 0.62, 0.79)],
        ),
        "test",
    )
    row = next(line for line in md.splitlines() if line.startswith("| mn04 fine-tuned, no KD | 100 %"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "2"  # runs
    assert cells[4] == "1.700"  # mean CIDEr-D
    assert cells[9] == "62.0 %"  # mean held-out
    assert cells[10] == "60.0 % / 64.0 %"  # per run
    assert cells[11] == "76.0 %"  # mean broad
    assert cells[14] == "0 + 2 / 1225"  # degenerate windows of each run
    assert "no KD → contrastive): CIDEr-D 1.700 → 1.900" in md
    assert "held-out recordings (binary) 62.0 % → 62.0 %" in md


def test_a_comparison_with_a_row_without_runs_says_so():
    md = ft_results.render(_rows(nokd25=[_run(1.2, 0.4, 0.7, 0.4, 0.7, steps=830)]), "test")
    assert "(no KD → MSE): not measured (a row has no run)." in md
    empty = next(
        line for line in md.splitlines() if line.startswith("| mn04 fine-tuned + encoder KD (MSE) | 25 %")
    )
    assert "| 0 | — |" in empty


def test_every_row_config_loads():
    for _, _, _, cfgs, _ in ft_results.ROWS:
        for cfg in cfgs:
            assert cfg.is_file(), cfg
            C.load_config(cfg)
