"""RESULTS.md logic on hand-made rows: seed spread, two-seed means in the answers, shipped-row choice."""

from earshot_train import results


def _row(exp, cider_single, cider_mix, src_single, src_mix, **extra):
    r = {
        "exp": exp,
        "label": exp,
        "fraction": exp.rsplit("-", 1)[-1] if "-s" not in exp.rsplit("-", 1)[-1] else "100",
        "ran": True,
        "epochs": 10,
        "seed": 1234,
        "single": {"CIDEr-D": cider_single, "source_accuracy": src_single},
        "mix": {"CIDEr-D": cider_mix, "source_accuracy": src_mix, "pair_source_accuracy": (src_mix, 10)},
    }
    r.update(extra)
    return r


def test_seed_spread_and_two_seed_means():
    recs = [
        _row("kd-student-seqkd-100", 1.0, 1.0, 0.8, 0.4),
        _row("kd-student-seqkd-100-s2", 1.2, 1.0, 0.7, 0.4, replicate_of="kd-student-seqkd-100", seed=2),
        _row("kd-student-infonce-100", 1.3, 1.1, 0.8, 0.5),
        _row("kd-student-infonce-100-s2", 1.1, 1.1, 0.8, 0.5, replicate_of="kd-student-infonce-100", seed=2),
    ]
    pairs = results._pairs(recs)
    assert [(a["exp"], b["exp"]) for a, b in pairs] == [
        ("kd-student-seqkd-100", "kd-student-seqkd-100-s2"),
        ("kd-student-infonce-100", "kd-student-infonce-100-s2"),
    ]
    lines = results.seed_findings(recs)
    assert "up to 0.100 mean CIDEr-D" in lines[0]
    assert "10.0 points of single-clip" in lines[0]
    # two-seed means: seqkd (1.1+1.0)/2 = 1.05, infonce (1.2+1.1)/2 = 1.15 -> +0.100, equal to the spread
    ans = "\n".join(results.answers(recs))
    assert "helps at 100 % labels (+0.100 CIDEr-D, within the seed spread of 0.100)" in ans
    section = "\n".join(results.seed_section(recs))
    assert "| 1234 / 2 |" in section


def test_without_replicates_the_single_runs_are_used_and_no_noise_claim():
    recs = [
        _row("kd-student-seqkd-100", 1.0, 1.0, 0.8, 0.4),
        _row("kd-student-infonce-100", 1.4, 1.0, 0.8, 0.4),
    ]
    assert results.seed_findings(recs) == []
    assert results.seed_section(recs) == []
    ans = "\n".join(results.answers(recs))
    assert "helps at 100 % labels (+0.200 CIDEr-D)" in ans and "seed spread" not in ans


def test_shipped_row_is_the_marked_one_else_the_study_row():
    study = _row("kd-student-infonce-100", 1.0, 1.0, 0.8, 0.4)
    cand = _row("ship-x", 1.0, 1.0, 0.8, 0.4, shipped=True)
    assert results._shipped([study, cand]) is cand
    assert results._shipped([study]) is study
