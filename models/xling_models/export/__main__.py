"""python -m xling_models.export --checkpoint HF_DIR --out DIR [--precision fp32|fp16|int8]"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ..folder import Manifest, Staging
from . import checkpoint, onnx_export
from .verify import Verdict, verify


class VerificationError(RuntimeError):
    def __init__(self, verdict: Verdict):
        super().__init__(f"verification failed, nothing written: {verdict}")
        self.verdict = verdict


def export(ckpt: Path, out: Path, precision: str = "fp32", max_length: int = 512, model_id: str | None = None,
           query_prefix: str = "", passage_prefix: str = "") -> Verdict:  # fmt: skip
    """Export, convert and verify; ``out`` is written (replaced whole) only if verification passes."""
    if precision not in onnx_export.PRECISIONS:
        raise ValueError(f"precision {precision!r}; expected one of {', '.join(onnx_export.PRECISIONS)}")
    model, dim, model_type = checkpoint.load(ckpt)
    tok_json = checkpoint.tokenizer_json(ckpt)
    manifest = Manifest(
        id=model_id or ckpt.resolve().name,
        dim=dim,
        max_length=max_length,
        precision=precision,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        description=f"{model_type} encoder from {ckpt.resolve().name}, mean-pooled and L2-normalised in the graph",
    )
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.onnx"
        onnx_export.export_fp32(model, fp32)
        with Staging(out) as tmp:
            onnx_path = tmp / manifest.onnx
            if precision == "fp32":
                fp32.replace(onnx_path)
            else:
                onnx_export.convert(fp32, onnx_path, precision)
            verdict = verify(model, onnx_path, precision, tok_json, max_length)
            if not verdict.passed:
                raise VerificationError(verdict)
            (tmp / manifest.tokenizer).write_text(tok_json, encoding="utf-8")
            manifest.write(tmp)
    return verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xling_models.export", description=__doc__)
    ap.add_argument("--checkpoint", required=True, type=Path, help="Hugging Face checkpoint folder")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write (replaced whole)")
    ap.add_argument("--precision", default="fp32", choices=onnx_export.PRECISIONS)
    ap.add_argument("--max-length", type=int, default=512, help="model.toml max_length (default 512)")
    ap.add_argument("--id", dest="model_id", help="model.toml id (default: the checkpoint folder name)")
    ap.add_argument("--query-prefix", default="")
    ap.add_argument("--passage-prefix", default="")
    args = ap.parse_args(argv)
    if not 2 <= args.max_length <= 8192:
        ap.error("--max-length must be within 2..8192")
    t0 = time.perf_counter()
    try:
        verdict = export(args.checkpoint, args.out, args.precision, args.max_length, args.model_id,
                         args.query_prefix, args.passage_prefix)  # fmt: skip
    except (checkpoint.CheckpointError, VerificationError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    print(f"verified {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
