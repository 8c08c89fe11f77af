"""Write ``train/RESULTS.md`` for the KD study from logged metrics — never typed by hand.

Reads, for the teacher, every student row of ``train/configs/kd/`` and every shipped-student candidate of
``train/configs/ship/`` (the study's best recipe trained longer) and every seed replicate of
``train/configs/kd-seed/``: ``<runs>/<exp>/config.json``,
``eval_test_single.json`` and ``eval_test_mix.json`` (written by ``earshot-train eval``), the trained
checkpoint (parameters and multiply-accumulates, counted here with forward hooks) and, when the exported
bundle and the ``earshot`` binary exist, ``earshot bench --json`` timings (tract, one run, same machine).
Rows that were not run are listed as such, never filled in. The shipped row (targets section) is the run
whose exported bundle name matches ``models/default/manifest.json``.

    python -m earshot_train.results [--runs train/runs] [--out train/RESULTS.md]
        [--earshot target/release/earshot] [--input CLIP.wav]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earshot_train import augment
from earshot_train.captions import names_all_sources
from earshot_train.config import MN04_ENCODERS
from earshot_train.shared import REPO_ROOT

TEACHER = "kd-teacher"
ROWS = [
    ("nokd", "student, no KD"),
    ("seqkd", "student + sequence-level KD"),
    ("mse", "student + seq-KD + MSE encoder KD"),
    ("infonce", "student + seq-KD + contrastive encoder KD"),
]
FRACTIONS = ("100", "25")
METRICS = [("BLEU-4", "BLEU-4"), ("METEOR", "METEOR"), ("ROUGE-L", "ROUGE-L"), ("CIDEr-D", "CIDEr-D")]
TARGETS = {"single_src": 0.90, "pair_src": 0.75, "cider_share": 0.95, "speedup": 10.0}
KD_DIR = REPO_ROOT / "train" / "configs" / "kd"
SHIP_DIR = REPO_ROOT / "train" / "configs" / "ship"
SEED_DIR = REPO_ROOT / "train" / "configs" / "kd-seed"
SHIPPED_MANIFEST = REPO_ROOT / "models" / "default" / "manifest.json"


def _load_json(p: Path) -> dict[str, Any] | None:
    return json.loads(p.read_text()) if p.is_file() else None


# ------------------------------------------------------------------------------------------ model size


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass: Conv1d/2d, Linear and attention products, by hooks."""
    total = 0

    def conv_hook(m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = int(torch.tensor(m.kernel_size).prod()) * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear_hook(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def mha_hook(m: nn.MultiheadAttention, inp: Any, _out: Any) -> None:
        nonlocal total
        q, k = inp[0], inp[1]
        lq, lk, e = (
            q.shape[-2] if m.batch_first else q.shape[0],
            k.shape[-2] if m.batch_first else k.shape[0],
            m.embed_dim,
        )
        b = q.shape[0] if m.batch_first else q.shape[1]
        # input projections (q, k, v), the two attention products, the output projection
        total += b * (lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e)

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear) and not _inside_mha(module, m):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.MultiheadAttention):
            hooks.append(m.register_forward_hook(mha_hook))
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return total


def _inside_mha(root: nn.Module, lin: nn.Module) -> bool:
    return any(
        isinstance(m, nn.MultiheadAttention) and any(c is lin for c in m.modules()) for m in root.modules()
    )


def model_size(run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Parameters and MACs (encoder per 10 s window; decoder per token at a 12-token prefix)."""
    from earshot_train import trainer
    from earshot_train.frontend import n_frames

    model, tok = trainer.load_trained(run_cfg, "best", torch.device("cpu"))
    model.eval()
    seconds = float(run_cfg["export"]["window_seconds"])
    out: dict[str, Any] = {}
    dec_params = sum(p.numel() for p in model.decoder.parameters())
    if run_cfg["model"]["encoder"] in MN04_ENCODERS:
        from earshot_train.frontend import MN04_FRONTEND
        from earshot_train.teacher.mn04 import default_mn04_dir, load_mn04

        tuned = run_cfg["model"]["encoder"] == "mn04_tuned"
        enc = model.encoder.to_mn04() if tuned else load_mn04(default_mn04_dir()).eval()
        spec = MN04_FRONTEND
        mel = torch.zeros(1, spec.n_mels, n_frames(int(seconds * spec.sample_rate), spec))
        enc_params = sum(p.numel() for n, p in enc.named_parameters() if not n.startswith("classifier"))
        enc_macs = count_macs(enc, mel)
        memory = enc(mel)["frames"]
    else:
        spec = trainer.input_spec(run_cfg)
        mel = torch.zeros(1, spec.n_mels, n_frames(int(seconds * spec.sample_rate), spec))
        enc_params = sum(p.numel() for p in model.encoder.parameters())
        enc_macs = count_macs(model.encoder, mel)
        memory = model.encoder(mel)["memory"]
    tokens = torch.ones(1, 12, dtype=torch.long)
    dec_macs = count_macs(model.decoder, tokens, memory)
    out.update(
        params=enc_params + dec_params,
        enc_params=enc_params,
        dec_params=dec_params,
        enc_macs=enc_macs,
        dec_macs_per_token=dec_macs / 12,
    )
    return out


# ------------------------------------------------------------------------------------------ timing


def bench(earshot: Path, bundle: Path, input_wav: Path | None, windows: int) -> dict[str, Any] | None:
    if not earshot.is_file() or not (bundle / "manifest.json").is_file():
        return None
    cmd = [
        str(earshot),
        "bench",
        "--model",
        str(bundle),
        "--windows",
        str(windows),
        "--threads",
        "1",
        "--json",
    ]
    if input_wav is not None:
        cmd += ["--input", str(input_wav)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        print(f"bench failed for {bundle}: {res.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    rep = json.loads(res.stdout)
    st = rep["stages_ms"]
    return {
        "encoder_ms": st["encoder"]["median"],
        "decoder_ms": st["decoder"]["median"],
        "total_ms": st["encoder"]["median"] + st["decoder"]["median"],
        "cmd": " ".join(cmd),
    }


# ------------------------------------------------------------------------------------------ metrics


def split_scores(ev: dict[str, Any] | None, manifest: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if ev is None:
        return None
    m = dict(ev["metrics"])
    by_kind: dict[str, list[bool]] = {}
    for cid, cap in ev["predictions"].items():
        row = manifest.get(cid)
        if row and row.get("sources"):
            by_kind.setdefault(row["kind"], []).append(names_all_sources(cap, row["sources"]))
    m["source_by_kind"] = {k: (sum(v) / len(v), len(v)) for k, v in sorted(by_kind.items())}
    pair = [ok for k in ("overlap", "sequence") for ok in by_kind.get(k, [])]
    m["pair_source_accuracy"] = (sum(pair) / len(pair), len(pair)) if pair else None
    return m


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def _human(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


# ------------------------------------------------------------------------------------------ report


def candidates(ship_dir: Path) -> list[tuple[str, str, str, Path]]:
    """(experiment, label, label fraction, config) for every shipped-student candidate config."""
    import tomllib

    out = []
    for path in sorted(ship_dir.glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        frac = float(raw.get("data", {}).get("caption_fraction", 1.0))
        epochs = raw.get("optim", {}).get("epochs", "?")
        aug = augment.enabled(raw.get("augment", {}))
        w = float(raw.get("loss", {}).get("enc_infonce", 1.0))
        nce = "contrastive" if w == 1.0 else f"contrastive (weight {w:g})"
        label = f"candidate: seq-KD + {nce}, {epochs} epochs" + (" + SpecAugment" if aug else "")
        out.append((raw["experiment"]["name"], label, f"{round(100 * frac)}", path))
    return out


def replicates(seed_dir: Path) -> list[tuple[str, str, str, Path]]:
    """(experiment, label, fraction, config) for every seed replicate ``<study row>-s<seed>``."""
    import tomllib

    out = []
    for path in sorted(seed_dir.glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        name = raw["experiment"]["name"]
        base = name.rsplit("-s", 1)[0]
        row = next((label for r, label in ROWS if base.startswith(f"kd-student-{r}-")), base)
        frac = base.rsplit("-", 1)[-1]
        out.append((name, f"{row} (seed {raw['experiment'].get('seed', '?')})", frac, path))
    return out


def collect(
    runs: Path, earshot: Path, input_wav: Path | None, windows: int, passes: int = 3
) -> list[dict[str, Any]]:
    from earshot_train import trainer
    from earshot_train.config import load_config

    names = [(TEACHER, "teacher (mn04 + large decoder)", "100", KD_DIR / "teacher.toml")]
    names += [
        (f"kd-student-{r}-{f}", label, f, KD_DIR / f"student-{r}-{f}.toml")
        for f in FRACTIONS
        for r, label in ROWS
    ]
    names += candidates(SHIP_DIR)
    names += replicates(SEED_DIR)
    shipped_name = (_load_json(SHIPPED_MANIFEST) or {}).get("name")
    out = []
    corpus: dict[str, Any] | None = None
    manifest: dict[str, dict[str, Any]] | None = None
    for exp, label, frac, cfg_path in names:
        rdir = runs / exp
        rec: dict[str, Any] = {"exp": exp, "label": label, "fraction": frac, "ran": False}
        rec["candidate"] = cfg_path.parent == SHIP_DIR
        if cfg_path.parent == SEED_DIR:
            rec["replicate_of"] = exp.rsplit("-s", 1)[0]
        single = _load_json(rdir / "eval_test_single.json")
        mix = _load_json(rdir / "eval_test_mix.json")
        if single is None and mix is None:
            out.append(rec)
            continue
        cfg = load_config(cfg_path, [f"experiment.runs_dir={runs}"])
        rec["ran"] = True
        if manifest is None:  # the corpus (one for every row) is read once
            cdir, rows = trainer.corpus_info(cfg)
            manifest = {r["id"]: r for r in rows}
            info = json.loads((cdir / "corpus_info.json").read_text())
            corpus = {
                "name": info["name"],
                "builder_version": info.get("builder_version", 1),
                "counts": {
                    k: sum(v.values()) if isinstance(v, dict) else v for k, v in info["counts"].items()
                },
            }
        rec["single"] = split_scores(single, manifest)
        rec["mix"] = split_scores(mix, manifest)
        rec["epochs"] = cfg["optim"]["epochs"]
        rec["seed"] = cfg["experiment"]["seed"]
        rec["loss"] = {k: cfg["loss"][k] for k in ("ce", "seq_kd", "enc_mse", "enc_infonce")}
        rec["size"] = model_size(cfg)
        rec["bundle"] = rdir / "bundle"
        man = _load_json(rdir / "bundle" / "manifest.json") or {}
        rec["cached_decoder"] = "decoder_cached" in man
        rec["shipped"] = bool(shipped_name) and cfg["export"]["name"] == shipped_name
        out.append(rec)
    # timings: several passes that alternate between the bundles, so that load changes on a shared
    # machine hit every row alike; the median pass per bundle is reported
    times: dict[str, list[dict[str, Any]]] = {}
    for _ in range(passes):
        for rec in out:
            if rec["ran"] and not rec.get("replicate_of"):  # replicates share their row's graph shapes
                t = bench(earshot, rec["bundle"], input_wav, windows)
                if t is not None:
                    times.setdefault(rec["exp"], []).append(t)
    for rec in out:
        ts = sorted(times.get(rec["exp"], []), key=lambda t: t["total_ms"])
        rec["time"] = ts[len(ts) // 2] if ts else None
        if ts:
            rec["time"]["passes"] = len(ts)
        rec.pop("bundle", None)
    for rec in out:
        rec["corpus"] = corpus
    return out


def render(recs: list[dict[str, Any]], cmdline: str) -> str:
    teacher = next((r for r in recs if r["exp"] == TEACHER and r["ran"]), None)
    t_time = teacher["time"]["total_ms"] if teacher and teacher.get("time") else None
    lines = [
        "# KD study results (generated)",
        "",
        "Generated by `python -m earshot_train.results` from the logged evaluations of the runs in",
        "`train/configs/kd/` (the study) and `train/configs/ship/` (*candidate* rows: the best recipe",
        "trained longer, from which the shipped student is chosen) — do not edit by hand. Reproduce with",
        "`train/scripts/kd_study.sh` then `train/scripts/ship_student.sh`",
        f"(this file: `{cmdline}`).",
        "",
        "Held-out data: **single** = every ESC-10 fold-4 clip (one event in 10 s); **mix** = mixtures built",
        "only from held-out clips (event over an unseen ambience bed, two events at once, one event then",
        "another). Source accuracy = share of clips whose caption names every source (synonym table);",
        "*pairs* = two-event mixtures only (overlap + sequence). SPICE, SPIDEr and FENSE need downloads",
        "(Stanford CoreNLP, a BERT model) and are unavailable offline: not reported.",
        "",
    ]
    corpus = next((r["corpus"] for r in recs if r.get("corpus")), None)
    if corpus:
        lines += [
            f"Corpus `{corpus['name']}` (builder version {corpus['builder_version']}), clips per split: "
            + ", ".join(f"{k} {v}" for k, v in corpus["counts"].items())
            + ". Every row uses the same corpus, vocabulary (the teacher's) and seed (1234), except the seed"
            " replicates.",
            "",
        ]
    for split, title in (("single", "held-out single clips"), ("mix", "held-out mixtures")):
        lines += [f"## Caption quality — {title}", ""]
        head = "| model | labels | " + " | ".join(h for _, h in METRICS) + " | source acc. |"
        if split == "mix":
            head += " pairs |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for r in recs:
            if r.get("replicate_of"):
                continue  # in the seed section
            if not r["ran"]:
                lines.append(f"| {_label(r)} | {r['fraction']} % | not run |" + " |" * (head.count("|") - 4))
                continue
            s = r.get(split)
            if s is None:
                lines.append(
                    f"| {_label(r)} | {r['fraction']} % | not evaluated |" + " |" * (head.count("|") - 4)
                )
                continue
            cells = [_fmt(s.get(k)) for k, _ in METRICS] + [_pct(s.get("source_accuracy"))]
            if split == "mix":
                p = s.get("pair_source_accuracy")
                cells.append(_pct(p[0]) if p else "—")
            lines.append(f"| {_label(r)} | {r['fraction']} % | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Size and speed",
        "",
        "MACs: encoder per 10 s window; decoder per generated token (12-token prefix), counted with forward",
        "hooks. Time: `earshot bench` (tract, 1 thread, beam 3, the key/value-cached decoder where the",
        "bundle has one — column *kv*), median encoder time + median decoding time",
        "per 10 s clip, all rows in one run on the same machine, in passes alternating between the bundles",
        "(median pass kept). The machine was shared with other jobs: absolute times are noisy, ratios",
        "less so.",
        "",
        "| model | labels | epochs | params | encoder MACs / 10 s | decoder MACs / token | encoder ms"
        " | kv | decoding ms | total ms | speed-up vs teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        if not r["ran"] or r.get("replicate_of"):
            continue
        z, t = r["size"], r.get("time")
        sp = f"{t_time / t['total_ms']:.1f}×" if t and t_time else "—"
        lines.append(
            f"| {_label(r)} | {r['fraction']} % | {r['epochs']} | {_human(z['params'])} | "
            f"{_human(z['enc_macs'])} | "
            f"{_human(z['dec_macs_per_token'])} | {_fmt(t and t['encoder_ms'], 1)} | "
            f"{'yes' if r.get('cached_decoder') else 'no'} | "
            f"{_fmt(t and t['decoder_ms'], 1)} | "
            f"{_fmt(t and t['total_ms'], 1)} | {sp} |"
        )
    bench_cmd = next((r["time"]["cmd"] for r in recs if r["ran"] and r.get("time")), None)
    if bench_cmd:
        lines += ["", f"Timing command (per bundle): `{bench_cmd}`"]
    lines += seed_section(recs)
    lines += ["", "## Findings (computed from the tables above)", ""]
    lines += findings(recs, teacher)
    return "\n".join(lines) + "\n"


def _scored(r: dict[str, Any] | None) -> bool:
    """The row ran and was evaluated on both held-out sets."""
    return bool(r and r["ran"] and r.get("single") and r.get("mix"))


def _pairs(recs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(study row, its seed replicate) for every replicate whose row and itself were evaluated."""
    ok = [r for r in recs if _scored(r)]
    return [(base, r) for r in ok if r.get("replicate_of") for base in ok if base["exp"] == r["replicate_of"]]


def _mean_of(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """A row whose scores are the mean of two runs' (the metrics the comparisons use)."""
    out = {"exp": a["exp"], "ran": True}
    for split in ("single", "mix"):
        out[split] = {
            k: (a[split][k] + b[split][k]) / 2 for k in ("CIDEr-D", "source_accuracy") if k in a[split]
        }
    return out


def seed_section(recs: list[dict[str, Any]]) -> list[str]:
    """How much a row moves when only the seed changes (initialisation and data order)."""
    pairs = _pairs(recs)
    if not pairs:
        return []
    lines = [
        "",
        "## Run-to-run spread (seed replicates)",
        "",
        "The same configuration trained again with another seed (initialisation, data order, dropout);",
        "configs in `train/configs/kd-seed/`. Mean CIDEr-D = mean of the two held-out sets.",
        "",
        "| row | labels | seeds | mean CIDEr-D | single source acc. | mix source acc. |",
        "|---|---|---|---|---|---|",
    ]
    for base, r in pairs:
        seed_b = base.get("seed", "?")
        seed_r = r.get("seed", "?")
        lines.append(
            f"| {base['label']} | {base['fraction']} % | {seed_b} / {seed_r} | "
            f"{_cider(base):.3f} / {_cider(r):.3f} | "
            f"{_pct(base['single']['source_accuracy'])} / {_pct(r['single']['source_accuracy'])} | "
            f"{_pct(base['mix']['source_accuracy'])} / {_pct(r['mix']['source_accuracy'])} |"
        )
    return lines


def _label(r: dict[str, Any]) -> str:
    return r["label"] + (" **(shipped)**" if r.get("shipped") else "")


def _shipped(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row whose bundle is models/default (else the study's seq-KD + contrastive 100 % row)."""
    r = next((x for x in recs if x.get("shipped") and _scored(x)), None)
    return r or _get_one(recs, "infonce", "100")


def _get_one(recs: list[dict[str, Any]], row: str, frac: str) -> dict[str, Any] | None:
    """The study row (seed 1234 run) if it ran and was evaluated on both held-out sets."""
    r = next((x for x in recs if x["exp"] == f"kd-student-{row}-{frac}"), None)
    return r if _scored(r) else None


def _cider(r: dict[str, Any]) -> float:
    return (r["single"]["CIDEr-D"] + r["mix"]["CIDEr-D"]) / 2


def _summary(r: dict[str, Any]) -> str:
    return (
        f"CIDEr-D {_cider(r):.3f}, source accuracy {_pct(r['single']['source_accuracy'])} single / "
        f"{_pct(r['mix']['source_accuracy'])} mix"
    )


def _compare(what: str, a: dict[str, Any], b: dict[str, Any]) -> str:
    d_c = _cider(b) - _cider(a)
    d_s = b["single"]["source_accuracy"] - a["single"]["source_accuracy"]
    d_m = b["mix"]["source_accuracy"] - a["mix"]["source_accuracy"]
    better = sum(x > 0 for x in (d_c, d_s, d_m))
    verdict = {3: "helps on all three", 0: "helps on none"}.get(better, f"helps on {better} of 3")
    return (
        f"- {what}: {_summary(a)} → {_summary(b)} (CIDEr-D {d_c:+.3f}, single {100 * d_s:+.1f} pts, "
        f"mix {100 * d_m:+.1f} pts) — {verdict}."
    )


def _two_seed(recs: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], float | None]:
    """(two-seed mean row by study experiment, largest seed-to-seed change of mean CIDEr-D or None)."""
    pairs = _pairs(recs)
    means = {a["exp"]: _mean_of(a, b) for a, b in pairs}
    return means, max((abs(_cider(a) - _cider(b)) for a, b in pairs), default=None)


def _study_comparisons(get: Any, what: str) -> list[str]:
    """The study's four row comparisons; ``get(row)`` gives the row to use (or None when missing)."""
    base, seq, mse, nce = get("nokd"), get("seqkd"), get("mse"), get("infonce")
    out = []
    if base and seq:
        out.append(_compare(f"{what}, sequence-level KD vs no KD", base, seq))
    for name, r in (("MSE", mse), ("contrastive", nce)):
        if seq and r:
            out.append(_compare(f"{what}, + {name} encoder KD vs seq-KD only", seq, r))
    if mse and nce:
        out.append(_compare(f"{what}, contrastive vs MSE encoder KD", mse, nce))
    return out


def seed_findings(recs: list[dict[str, Any]]) -> list[str]:
    """The seed-to-seed spread, and the 100 % comparisons again on two-seed means where both exist."""
    pairs = _pairs(recs)
    if not pairs:
        return []
    means, d_c = _two_seed(recs)
    d_s = max(abs(a["single"]["source_accuracy"] - b["single"]["source_accuracy"]) for a, b in pairs)
    d_m = max(abs(a["mix"]["source_accuracy"] - b["mix"]["source_accuracy"]) for a, b in pairs)
    out = [
        f"- Seed spread ({len(pairs)} rows trained twice): up to {d_c:.3f} mean CIDEr-D,"
        f" {100 * d_s:.1f} points of single-clip and {100 * d_m:.1f} points of mixture source accuracy"
        " between two seeds of the same configuration. Differences between rows smaller than that"
        " are within run-to-run noise."
    ]
    out += _study_comparisons(lambda row: means.get(f"kd-student-{row}-100"), "100 % labels, two-seed means")
    return out


def answers(recs: list[dict[str, Any]]) -> list[str]:
    """The study's two questions, answered from the rows (and where the answer disagrees with the paper)."""
    out = ["", "### Answers", ""]
    means, spread = _two_seed(recs)

    def get(row: str, frac: str) -> dict[str, Any] | None:
        # the two-seed mean where the row was trained twice, else the single run
        return means.get(f"kd-student-{row}-{frac}") or _get_one(recs, row, frac)

    def noise(d: float) -> str:
        return f", within the seed spread of {spread:.3f}" if spread is not None and abs(d) <= spread else ""

    if means:
        out.append(
            "Rows trained with two seeds are compared on their two-seed means (the 100 % rows);"
            " the others on their single run."
        )
        out.append("")
    for name, label in (("infonce", "contrastive"), ("mse", "MSE")):
        verdicts = []
        for frac in FRACTIONS:
            seq, r = get("seqkd", frac), get(name, frac)
            if seq and r:
                d = _cider(r) - _cider(seq)
                verdicts.append(
                    f"{'helps' if d > 0 else 'hurts'} at {frac} % labels ({d:+.3f} CIDEr-D{noise(d)})"
                )
        if verdicts:
            out.append(
                f"- Does {label} encoder-level KD help (on top of seq-KD)? It " + "; ".join(verdicts) + "."
            )
    full_m, q_m = get("mse", "100"), get("mse", "25")
    full_c, q_c = get("infonce", "100"), get("infonce", "25")
    if full_m and q_m and full_c and q_c:
        keep_m, keep_c = _cider(q_m) / _cider(full_m), _cider(q_c) / _cider(full_c)
        same = keep_c > keep_m and _cider(q_c) > _cider(q_m)
        out.append(
            f"- Is contrastive more robust than MSE with 25 % of the labels? "
            f"{'Yes' if same else 'No'}: at 25 % contrastive reaches {_cider(q_c):.3f} mean CIDEr-D vs MSE "
            f"{_cider(q_m):.3f}, and keeps {100 * keep_c:.1f} % of its full-label score vs "
            f"{100 * keep_m:.1f} % "
            f"— {'as' if same else 'unlike what'} the paper claims."
        )
    for frac in FRACTIONS:
        base, seq = get("nokd", frac), get("seqkd", frac)
        if base and seq and _cider(seq) < _cider(base):
            d_src = seq["single"]["source_accuracy"] - base["single"]["source_accuracy"]
            out.append(
                f"- Disagreement with the paper: at {frac} % labels sequence-level KD alone lowers mean"
                f" CIDEr-D ({_cider(base):.3f} → {_cider(seq):.3f}{noise(_cider(seq) - _cider(base))});"
                f" single-clip source accuracy changes by"
                f" {100 * d_src:+.1f} points. A possible cause: the students copy the teacher's wording,"
                " which differs from the template references that CIDEr-D rewards."
            )
        mse = get("mse", frac)
        if seq and mse and _cider(mse) < _cider(seq):
            out.append(
                f"- Disagreement with the paper: at {frac} % labels MSE encoder KD makes the student worse"
                f" than seq-KD alone ({_cider(seq):.3f} → {_cider(mse):.3f} mean CIDEr-D"
                f"{noise(_cider(mse) - _cider(seq))}). A possible cause:"
                " regressing the teacher's 384-d mn04 embedding exactly is a hard target for a much smaller"
                " encoder, while the contrastive loss only asks for the right neighbours."
            )
    return out


def findings(recs: list[dict[str, Any]], teacher: dict[str, Any] | None) -> list[str]:
    """Comparisons between rows (mean CIDEr-D over the two held-out sets, and source accuracy)."""
    out = []
    for frac in FRACTIONS:
        out += _study_comparisons(lambda row, frac=frac: _get_one(recs, row, frac), f"{frac} % labels")
    for name in ("nokd", "seqkd", "mse", "infonce"):
        full, quarter = _get_one(recs, name, "100"), _get_one(recs, name, "25")
        if full and quarter:
            out.append(
                f"- {name}: with 25 % of the labels it keeps "
                f"{100 * _cider(quarter) / max(_cider(full), 1e-9):.1f} % of its 100 %-label mean CIDEr-D."
            )
    base = _get_one(recs, "infonce", "100")
    for r in recs:
        if r.get("candidate") and base and _scored(r):
            out.append(_compare(f"{r['label']} vs the study's {base['epochs']}-epoch row", base, r))
    out += seed_findings(recs)
    out += answers(recs)
    missing = [r["exp"] for r in recs if not r["ran"]]
    if missing:
        text = "- Not run (no numbers, so no conclusion from them): " + ", ".join(missing) + "."
        if any(m in missing for m in ("kd-student-mse-25", "kd-student-infonce-25")):
            text += (
                " The paper's claim that contrastive encoder KD is more robust than MSE with 25 % of the"
                " labels is only testable once both 25 % KD rows exist."
            )
        out.append(text)
    if not out:
        out.append("- Not enough completed rows to compare.")
    out += ["", "## Targets for the shipped student", ""]
    ship = _shipped(recs)
    if ship is None:
        out.append("- The shipped row (seq-KD + contrastive, 100 %) has not been evaluated yet.")
        return out
    out.append(f"- Shipped student (`models/default`): {ship['label']} (run `{ship['exp']}`).")
    s_acc = ship["single"]["source_accuracy"]
    p = ship["mix"]["pair_source_accuracy"]
    checks = [
        ("source accuracy, held-out single clips", s_acc, TARGETS["single_src"]),
        ("source accuracy, held-out two-event mixtures", p[0] if p else None, TARGETS["pair_src"]),
    ]
    if teacher and teacher.get("single") and teacher.get("mix"):
        checks.append(
            (
                "CIDEr-D share of the teacher's",
                _cider(ship) / max(_cider(teacher), 1e-9),
                TARGETS["cider_share"],
            )
        )
    if ship.get("time"):
        t = ship["time"]
        out.append(
            f"- Decoding is {100 * t['decoder_ms'] / t['total_ms']:.0f} % of the shipped student's time per"
            " clip (beam 3): the student's encoder is far cheaper than the teacher's, but the decoders"
            " (2 x 256 vs 3 x 384) differ much less, which caps the end-to-end ratio."
        )
    if teacher and teacher.get("time") and ship.get("time"):
        checks.append(
            (
                "speed-up vs the teacher (tract, per 10 s clip)",
                teacher["time"]["total_ms"] / ship["time"]["total_ms"],
                TARGETS["speedup"],
            )
        )
    for what, v, target in checks:
        if v is None:
            out.append(f"- {what}: not measured.")
            continue
        ok = v >= target
        fmt = (lambda x: f"{x:.1f}×") if target > 1 else (lambda x: f"{100 * x:.1f} %")
        out.append(
            f"- {what}: {fmt(v)} (target {fmt(target)}) — "
            + (
                "met."
                if ok
                else f"**missed** by {fmt(target - v) if target > 1 else f'{100 * (target - v):.1f} points'}."
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="earshot-train results", description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=str(REPO_ROOT / "train" / "runs"))
    p.add_argument("--out", default=str(REPO_ROOT / "train" / "RESULTS.md"))
    p.add_argument("--earshot", default=str(REPO_ROOT / "target" / "release" / "earshot"))
    p.add_argument("--input", default=None, help="10 s clip to time on (default: synthetic audio)")
    p.add_argument("--windows", type=int, default=10)
    p.add_argument("--passes", type=int, default=3, help="timing passes over all bundles (median kept)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    recs = collect(Path(a.runs), Path(a.earshot), Path(a.input) if a.input else None, a.windows, a.passes)
    cmdline = "python -m earshot_train.results " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(a.out).write_text(render(recs, cmdline.strip()))
    (Path(a.out).with_suffix(".json")).write_text(json.dumps(recs, indent=1, default=str) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
