"""The sha256 of each model file of a bundle, in its manifest (docs/bundle-format.md, "Integrity").

``write_file_hashes(bundle)`` sets the manifest's ``files`` section to
``{"<name>": {"sha256": "<hex>", "bytes": N}, ...}`` for every regular file of the bundle directory
except ``manifest.json`` itself and the informational ``MODEL_CARD.md`` and ``parity.json`` (tools
rewrite those after export; the runtime never reads them). The runtime checks the listed files at
load and refuses the bundle when one differs. Every bundle writer calls it last; for a bundle edited
by hand (or an old one):

    python -m earshot_train.integrity BUNDLE
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

_NOT_HASHED = {"manifest.json", "MODEL_CARD.md", "parity.json"}


def write_file_hashes(bundle_dir: str | Path) -> dict[str, dict[str, object]]:
    """Hash the bundle's model files into its manifest (``files``); returns the section."""
    bundle = Path(bundle_dir)
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8-sig"))
    files: dict[str, dict[str, object]] = {}
    for f in sorted(bundle.iterdir()):
        if f.name in _NOT_HASHED or f.name.startswith(".") or not f.is_file():
            continue
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        files[f.name] = {"sha256": h.hexdigest(), "bytes": f.stat().st_size}
    manifest["files"] = files
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path, nargs="+", help="bundle directory (with manifest.json)")
    args = ap.parse_args(argv)
    for b in args.bundle:
        files = write_file_hashes(b)
        print(f"{b}: {len(files)} files hashed ({', '.join(files)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
