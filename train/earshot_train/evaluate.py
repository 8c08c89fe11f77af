"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap, offline) and source accuracy.

Tokenisation is the standard PTB tokenizer of the COCO caption toolkit (Stanford CoreNLP jar, run with
the machine's Java); METEOR is meteor-1.5.jar with its bundled paraphrase table (also Java). The
``Cider`` scorer of pycocoevalcap is CIDEr-D (Gaussian length penalty, clipped counts, x10), reported as
``CIDEr-D``. SPICE needs Stanford CoreNLP models that are downloaded on first use, and FENSE needs
pretrained sentence-BERT/error-detector weights: neither can be computed offline here, so they (and
SPIDEr = mean of SPICE and CIDEr-D) are reported as ``"unavailable (needs download)"`` and never
substituted by another number.

``python -m earshot_train.evaluate --preds preds.jsonl --corpus <corpus dir> [--splits test_single test_mix]``
where each line of ``preds.jsonl`` is ``{"id": ..., "caption": ...}``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from earshot_train.captions import names_all_sources

UNAVAILABLE = "unavailable (needs download)"
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


def java_available() -> bool:
    return shutil.which("java") is not None


_PUNCT = re.compile(r"[^a-z0-9' ]+")


def simple_tokenize(text: str) -> str:
    """Lower-case, punctuation to spaces (fallback when Java is missing; PTB output is the same for
    plain lower-case captions)."""
    return " ".join(_PUNCT.sub(" ", text.lower().replace("\n", " ")).split())


def _tokenize(data: Mapping[str, Sequence[str]], use_java: bool) -> dict[str, list[str]]:
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize(
            {k: [{"caption": c.replace("\n", " ")} for c in v] for k, v in data.items()}
        )
    return {k: [simple_tokenize(c) for c in v] for k, v in data.items()}


_METEOR: Any = None


def _close_meteor() -> None:
    global _METEOR
    if _METEOR is not None:
        m, _METEOR = _METEOR, None
        del m  # its __del__ stops the java process


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """METEOR 1.5 via one long-lived java process (loading its paraphrase table takes seconds)."""
    global _METEOR
    from pycocoevalcap.meteor.meteor import Meteor

    if _METEOR is None or _METEOR.meteor_p.poll() is not None:
        _METEOR = Meteor()
        atexit.register(_close_meteor)
    try:
        score, _ = _METEOR.compute_score(gts, res)
    except (BrokenPipeError, ValueError) as e:
        _close_meteor()
        raise RuntimeError(f"METEOR (java) failed: {e}") from e
    return float(score)


def score(
    preds: Mapping[str, str],
    refs: Mapping[str, Sequence[str]],
    sources: Mapping[str, Sequence[str]] | None = None,
    use_java: bool | None = None,
    names_sources: Callable[[str, Sequence[str]], bool] = names_all_sources,
) -> dict[str, Any]:
    """Corpus-level metrics of ``preds`` (id → caption) against ``refs`` (id → reference captions).

    Every id of ``preds`` needs at least one reference. ``sources`` (id → canonical source names) adds
    ``source_accuracy`` over the ids that have sources, judged by ``names_sources(caption, sources)``
    (:func:`source_rule` gives the corpus' own rule). Java is used when available (``use_java=None``);
    without it METEOR is reported as unavailable and a simple tokenizer replaces the PTB one.
    """
    if not preds:
        raise ValueError("score: no predictions")
    missing = [i for i in preds if not refs.get(i)]
    if missing:
        raise ValueError(f"score: {len(missing)} prediction id(s) without references, e.g. {missing[:3]}")
    for i, p in preds.items():
        if not isinstance(p, str):
            raise ValueError(f"score: prediction for {i!r} is not a string")
    ids = sorted(preds)
    java = java_available() if use_java is None else use_java
    if java and not java_available():
        raise ValueError("score: use_java=True but no java executable on PATH")
    gts = _tokenize({i: list(refs[i]) for i in ids}, java)
    # an empty hypothesis is legal and scores 0; the toolkit's scorers need at least one token
    hyp = _tokenize({i: [preds[i]] for i in ids}, java)
    res = {i: [hyp[i][0] if hyp[i][0].strip() else "<empty>"] for i in ids}

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    out: dict[str, Any] = {"n_clips": len(ids)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"BLEU-{n + 1}"] = float(bleu[n])
    out["METEOR"] = _meteor(gts, res) if java else "unavailable (needs java)"
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    out["SPICE"] = UNAVAILABLE
    out["SPIDEr"] = UNAVAILABLE
    out["FENSE"] = UNAVAILABLE
    out["tokenizer"] = "ptb (stanford corenlp 3.4.1)" if java else "simple (no java)"
    if sources is not None:
        with_src = [i for i in ids if sources.get(i)]
        if with_src:
            out["source_accuracy"] = sum(names_sources(preds[i], sources[i]) for i in with_src) / len(
                with_src
            )
            out["source_accuracy_n"] = len(with_src)
    return out


def read_predictions(path: str | Path) -> dict[str, str]:
    """``{"id", "caption"}`` per line (JSONL) → dict."""
    preds: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            preds[str(d["id"])] = str(d["caption"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: expected {{'id': ..., 'caption': ...}} ({e})") from None
    return preds


def source_rule(corpus_dir: str | Path) -> Callable[[str, Sequence[str]], bool]:
    """How a caption names the sources of a clip of this corpus: corpus v2 (``corpus_info.json`` by
    ``corpus_v2.build``) by its taxonomy (:func:`corpus_v2.build.taxonomy_rule`), v1 by the synonym table
    (:func:`captions.names_all_sources`)."""
    info = Path(corpus_dir) / "corpus_info.json"
    if info.is_file() and json.loads(info.read_text()).get("builder") == "corpus_v2.build":
        from earshot_train.corpus_v2.build import taxonomy_rule

        return taxonomy_rule()
    return names_all_sources


def evaluate_predictions(
    preds: Mapping[str, str],
    corpus_dir: str | Path,
    splits: Sequence[str] | None = None,
    use_java: bool | None = None,
) -> dict[str, Any]:
    """Scores per split (and ``all``) of the manifest entries that have a prediction."""
    from earshot_train.corpus import read_manifest

    rows = [r for r in read_manifest(corpus_dir, splits) if r["captions"]]
    known = {r["id"] for r in rows}
    unknown = [i for i in preds if i not in known]
    if unknown and splits is None:
        raise ValueError(f"{len(unknown)} prediction id(s) not in the corpus, e.g. {unknown[:3]}")
    results: dict[str, Any] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["id"] in preds:
            groups.setdefault(r["split"], []).append(r)
    if not groups:
        raise ValueError("no prediction matches a captioned clip of the selected splits")
    everything = [r for g in groups.values() for r in g]
    rule = source_rule(corpus_dir)
    for name, group in [*sorted(groups.items()), ("all", everything)]:
        results[name] = score(
            {r["id"]: preds[r["id"]] for r in group},
            {r["id"]: r["captions"] for r in group},
            {r["id"]: r["sources"] for r in group},
            use_java=use_java,
            names_sources=rule,
        )
    return results


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="earshot-train score", description=__doc__.split("\n")[0])
        p.add_argument("--preds", required=True, help='JSONL, one {"id", "caption"} per line')
        p.add_argument("--corpus", required=True, help="corpus directory (manifest.jsonl)")
        p.add_argument("--splits", nargs="*", default=None)
        p.add_argument("--out", default=None, help="write the scores as JSON here")
        p.add_argument("--no-java", action="store_true", help="skip METEOR and the PTB tokenizer")
        args = p.parse_args(args)
    try:
        use_java = False if getattr(args, "no_java", False) else None
        res = evaluate_predictions(read_predictions(args.preds), args.corpus, args.splits, use_java)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
