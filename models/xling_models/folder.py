"""The xling model folder: `model.toml` (flat TOML read by crates/xling-encoder) and atomic writes.

A folder is assembled in a sibling temp directory and renamed into place, so a reader never sees a
half-written folder and re-running replaces the folder whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST_FILE = "model.toml"


@dataclass(frozen=True)
class Manifest:
    """Every field the Rust `Manifest` accepts (it denies unknown ones), in file order."""

    id: str
    dim: int
    max_length: int
    precision: str
    onnx: str = "model.onnx"
    tokenizer: str = "tokenizer.json"
    output: str = "sentence_embedding"
    pooling: str = "graph"
    query_prefix: str = ""
    passage_prefix: str = ""
    pad_id: int = 0
    description: str = ""

    def toml(self) -> str:
        return "".join(f"{k} = {_toml_value(v)}\n" for k, v in asdict(self).items())

    def write(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(self.toml(), encoding="utf-8")


def _toml_value(v: object) -> str:
    if isinstance(v, int):
        return str(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


class Staging:
    """A temp directory beside ``dst`` that becomes ``dst`` on success and is removed otherwise."""

    def __init__(self, dst: Path):
        self.dst = dst

    def __enter__(self) -> Path:
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.dst.name}.tmp-", dir=self.dst.parent))
        self.path.chmod(0o755)  # mkdtemp makes it private; model folders are meant to be shared
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        old = None
        if self.dst.exists():
            old = self.dst.with_name(f".{self.dst.name}.old-{os.getpid()}")
            os.replace(self.dst, old)
        os.replace(self.path, self.dst)
        if old is not None:
            shutil.rmtree(old)
