"""``earshot-train <command> --config train/configs/X.toml [--set section.key=value ...]``.

Commands: corpus (build the captioned corpus), teacher (cache mn04 features, train the teacher decoder,
write its beam captions + embeddings for KD), student (train a student with the configured losses), eval
(decode a split and score it), export (ONNX bundle + parity check), golden (runtime golden files),
convert (the paper's released effb2-trm checkpoint -> bundle: ``--checkpoint DIR --tokenizer FILE
--out DIR``), quantize (an int8 copy of a bundle: ``--bundle DIR --out DIR [--mode dynamic|static]``).
Multi-GPU: ``torchrun --nproc_per_node N -m earshot_train student --config ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from earshot_train.config import load_config, run_dir


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="experiment TOML (train/configs/*.toml)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. optim.lr=1e-3"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="earshot-train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("corpus", help="build the captioned corpus (deterministic, cached)")
    _common(p)
    p.add_argument("--out", default=None)
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    for name, what in (
        ("teacher", "train the teacher decoder on cached mn04 frames"),
        ("student", "train a student"),
    ):
        p = sub.add_parser(name, help=what)
        _common(p)
        p.add_argument("--resume", action="store_true", help="continue from <run>/ckpt/last.pt")
        if name == "teacher":
            p.add_argument("--outputs-only", action="store_true", help="skip training; (re)write kd/ outputs")
            p.add_argument(
                "--no-kd-outputs",
                action="store_true",
                help="train only: skip writing the teacher captions/embeddings for KD",
            )
    p = sub.add_parser("eval", help="decode a split and score it (writes <run>/eval_<split>.json)")
    _common(p)
    p.add_argument("--split", default="test_mix")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--limit", type=int, default=0, help="only the first N clips (0 = all)")
    p = sub.add_parser(
        "export", help="export the trained model as a bundle (ONNX + manifest) with parity check"
    )
    _common(p)
    p.add_argument("--out", default=None, help="bundle folder (default <run>/bundle)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p = sub.add_parser("golden", help="write tests/golden (tiny bundle, input, expectations, front end)")
    p.add_argument("--out", default=None)
    p.add_argument("--no-frontend", action="store_true")
    p = sub.add_parser(
        "teacher-cache", help="cache teacher features only (see: teacher-cache --help)", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help="earshot_train.teacher_cache arguments")
    from earshot_train.convert_wsntxxn import add_arguments as convert_arguments

    p = sub.add_parser("convert", help="convert the paper's released effb2-trm checkpoint to a bundle")
    convert_arguments(p)
    from earshot_train.quantize import add_arguments as quantize_arguments

    p = sub.add_parser("quantize", help="write an int8 copy of a bundle (onnxruntime.quantization)")
    quantize_arguments(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "teacher-cache":  # its own parser takes every argument
        from earshot_train import teacher_cache

        return teacher_cache.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "convert":
        from earshot_train.convert_wsntxxn import run as convert_run

        return convert_run(args)
    if args.cmd == "quantize":
        from earshot_train.quantize import run as quantize_run

        return quantize_run(args)
    if args.cmd == "golden":
        from earshot_train import golden

        return golden.main(
            (["--out", args.out] if args.out else []) + (["--no-frontend"] if args.no_frontend else [])
        )
    cfg = load_config(args.config, args.set)
    if args.cmd == "corpus":
        from earshot_train.config import corpus_table
        from earshot_train.corpus import CorpusConfig, build_corpus

        ccfg = CorpusConfig.from_dict(corpus_table(cfg))
        out = build_corpus(ccfg, args.out, force=args.force, progress=not args.no_progress)
        info = json.loads((Path(out) / "corpus_info.json").read_text())
        print(f"corpus {ccfg.name}: {info['n_clips']} clips in {out}")
        return 0
    from earshot_train import trainer

    if args.cmd in ("teacher", "student"):
        if cfg["experiment"]["kind"] != args.cmd:
            raise ValueError(
                f"config {args.config} is a {cfg['experiment']['kind']} experiment, not a {args.cmd}"
            )
        if not getattr(args, "outputs_only", False):
            summary = trainer.train(cfg, resume=args.resume)
            print(json.dumps(summary))
        if args.cmd == "teacher":
            import os

            if (
                int(os.environ.get("RANK", "0")) == 0 and not args.no_kd_outputs
            ):  # once, also after a torchrun (DDP) training
                kd = trainer.write_teacher_outputs(cfg)
                print(f"teacher captions and embeddings in {kd}")
        return 0
    if args.cmd == "eval":
        res = trainer.evaluate(cfg, args.split, args.checkpoint, args.limit)
        print(json.dumps({"split": res["split"], "n_clips": res["n_clips"], **res["metrics"]}, default=str))
        return 0
    if args.cmd == "export":
        from earshot_train.export import export_run

        out = Path(args.out) if args.out else run_dir(cfg) / "bundle"
        rep = export_run(cfg, out, args.checkpoint)
        print(
            json.dumps(
                {"bundle": str(out), **{k: v for k, v in rep.items() if "diff" in k or "identical" in k}}
            )
        )
        return 0
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    raise SystemExit(main())
