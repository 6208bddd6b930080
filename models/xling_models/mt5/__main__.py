"""python -m xling_models.mt5 --shape tiny|mt5-small|mt5-base --out DIR [--seed 0]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import generate
from .tokenizer import CorpusError
from .weights import SHAPES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xling_models.mt5", description=__doc__)
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--out", required=True, type=Path, help="model folder to write (replaced whole)")
    ap.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    ap.add_argument("--corpus", type=Path, action="append",
                    help="tokenizer training text: .txt lines, .jsonl corpus, SQuAD .json, or a folder "
                         "of them; repeatable (default: the built-in corpus)")  # fmt: skip
    ap.add_argument("--vocab-size", type=int, help="target vocabulary (default: per shape)")
    args = ap.parse_args(argv)
    if args.seed < 0 or (args.vocab_size is not None and args.vocab_size < 16):
        ap.error("--seed must be >= 0 and --vocab-size >= 16")
    try:
        r = generate(args.shape, args.out, args.seed, args.corpus, args.vocab_size)
    except (CorpusError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {r.out} in {r.seconds:.1f} s (vocabulary {r.vocab})")
    for name, (size, digest) in r.files.items():
        print(f"  {name:16} {size:>12,} bytes  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
