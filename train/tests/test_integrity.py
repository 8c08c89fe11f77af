"""``earshot_train.integrity``: the manifest's ``files`` section that the runtime checks at load."""

import hashlib
import json

from earshot_train import integrity


def test_write_file_hashes_lists_model_files_only(tmp_path):
    (tmp_path / "manifest.json").write_text("\ufeff" + json.dumps({"format": "earshot-bundle", "version": 1}))
    (tmp_path / "encoder.onnx").write_bytes(b"abc")
    (tmp_path / "vocab.txt").write_text("<pad>\n")
    for skipped in ("MODEL_CARD.md", "parity.json", ".hidden"):
        (tmp_path / skipped).write_text("x")
    (tmp_path / "sub").mkdir()
    files = integrity.write_file_hashes(tmp_path)
    assert list(files) == ["encoder.onnx", "vocab.txt"]
    assert files["encoder.onnx"] == {"sha256": hashlib.sha256(b"abc").hexdigest(), "bytes": 3}
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["files"] == files and man["version"] == 1
    # Rewriting after a change updates the entry (and is otherwise idempotent).
    (tmp_path / "encoder.onnx").write_bytes(b"abcd")
    again = integrity.write_file_hashes(tmp_path)
    assert again["encoder.onnx"]["bytes"] == 4 and again["vocab.txt"] == files["vocab.txt"]
