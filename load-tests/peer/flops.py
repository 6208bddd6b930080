"""Encoder FLOP/s (from `xling bench encoder`) against this CPU's measured sgemm peak.

sgemm peak: a one-node float32 MatMul ONNX model run by onnxruntime (the MLAS kernels the
encoder uses) at the same intra-op thread count, measured before and after the encoder benches;
numpy's BLAS is measured too, for reference. FLOPs per sequence are counted from each model's
ONNX graph: every MatMul with a weight initializer [K, N] costs 2*K*N per token; the attention
MatMuls (both inputs activations: scores Q.K^T and context P.V) cost 2*L*inner per token each,
inner = the query projection's width. Embedding lookups, norms, softmax, GELU, pooling are not
counted (they are not matmuls). Writes one JSON file. See load-tests/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tomllib
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

HOME = Path(os.environ.get("XLING_HOME", Path.home() / ".cache/xling"))
REPO = Path(__file__).resolve().parents[2]


def sgemm_ort(m: int, k: int, n: int, threads: int, runs: int) -> dict:
    """GFLOP/s of A[m,k] @ B[k,n] (B an initializer, like a weight) in onnxruntime."""
    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])], "sgemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, n])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    a = rng.standard_normal((m, k), dtype=np.float32)
    rate = _time(lambda: sess.run(None, {"A": a}), 2.0 * m * k * n, runs)
    return rate | {"m": m, "k": k, "n": n}


def sgemm_numpy(m: int, k: int, n: int, runs: int) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    return _time(lambda: a @ b, 2.0 * m * k * n, runs) | {"m": m, "k": k, "n": n}


def _time(fn, flops: float, runs: int) -> dict:
    for _ in range(2):
        fn()
    secs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        secs.append(time.perf_counter() - t)
    rates = sorted(flops / s / 1e9 for s in secs)
    return {"gflops_median": float(np.median(rates)), "gflops_best": rates[-1], "runs": runs}


def matmul_flops_per_sequence(model_onnx: Path, seq: int) -> dict:
    g = onnx.load(str(model_onnx)).graph
    shapes = {i.name: list(i.dims) for i in g.initializer}
    weight, attention = [], 0
    for node in g.node:
        if node.op_type in ("Gemm", "Einsum"):
            raise SystemExit(f"{model_onnx}: {node.op_type} not counted by this script")
        if node.op_type != "MatMul":
            continue
        w = [shapes[x] for x in node.input if x in shapes]
        if w:
            weight.append(w[0])
        else:
            attention += 1
    if attention % 2:
        raise SystemExit(f"{model_onnx}: odd number of activation MatMuls ({attention})")
    inner = weight[0][1]  # first projection: the query projection
    per_token_weights = sum(2 * k * n for k, n in weight)
    per_token_attention = attention * 2 * seq * inner
    return {
        "weight_matmuls": len(weight), "attention_matmuls": attention, "attention_inner": inner,
        "weight_params_in_matmuls": sum(k * n for k, n in weight), "seq": seq,
        "flops_per_token_weights": per_token_weights,
        "flops_per_token_attention": per_token_attention,
        "flops_per_sequence": seq * (per_token_weights + per_token_attention),
    }


def mean_question_tokens(model_dir: Path, data: Path, langs: list[str]) -> float:
    manifest = tomllib.loads((model_dir / "model.toml").read_text())
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    qs = []
    for lang in langs:
        doc = json.loads((data / f"{lang}.json").read_text(encoding="utf-8"))
        qs += [q["question"] for a in doc["data"] for p in a["paragraphs"] for q in p["qas"]]
    prefix = manifest.get("query_prefix", "")
    return float(np.mean([len(e.ids) for e in tok.encode_batch([prefix + q for q in qs])]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--xling", default=str(REPO / "target/release/xling"))
    ap.add_argument("--model", action="append", help="model folder (repeatable)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/xquad-r")
    ap.add_argument("--langs", default="en,de", help="questions whose mean length is measured")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,4,16,64")
    ap.add_argument("--extra-seq-lens", default="128", help="also bench these lengths")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--sgemm-runs", type=int, default=10)
    args = ap.parse_args()
    models = [Path(m) for m in (args.model or [HOME / "models/multilingual-e5-small",
                                               HOME / "models/mt5-small"])]
    t = args.threads
    square, enc_shape = (2048, 2048, 2048), (2048, 384, 1536)
    out = {
        "what": "encoder matmul FLOP/s from `xling bench encoder` vs onnxruntime sgemm, one run",
        "shared_machine": "yes: other engineers' builds and CI share the 2 cores",
        "cpu_cores": os.cpu_count(), "threads": t, "onnxruntime": ort.__version__,
        "numpy": np.__version__, "argv": sys.argv, "xling_binary": args.xling,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_start": os.getloadavg(), "sgemm": {}, "models": {},
    }
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    out["sgemm"]["ort_before"] = [sgemm_ort(*square, t, args.sgemm_runs),
                                  sgemm_ort(*enc_shape, t, args.sgemm_runs)]
    say(f"sgemm (ort, before): {out['sgemm']['ort_before']}")
    for model in models:
        seq = round(mean_question_tokens(model, args.data, args.langs.split(",")))
        seqs = [seq] + [int(s) for s in args.extra_seq_lens.split(",") if s]
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = [args.xling, "bench", "encoder", "--model", str(model), "--intra-threads",
                   str(t), "--batch-sizes", args.batch_sizes, "--seq-lens",
                   ",".join(map(str, seqs)), "--iters", str(args.iters), "--warmup", "1",
                   "--json", f.name]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            bench = json.loads(Path(f.name).read_text())
        rows = []
        for r in bench["rows"]:
            fl = matmul_flops_per_sequence(model / "model.onnx", r["seq"])
            seq_s = r["batch"] / (r["p50_ms"] / 1e3)  # from the median run, like the sgemm
            rows.append({"batch": r["batch"], "seq": r["seq"], "p50_ms": r["p50_ms"],
                         "sequences_per_s_p50": seq_s,
                         "sequences_per_s_mean": r["sequences_per_s"],
                         "flops_per_sequence": fl["flops_per_sequence"],
                         "gflops": seq_s * fl["flops_per_sequence"] / 1e9})
            say(f"{model.name}: {rows[-1]}")
        out["models"][model.name] = {
            "model_id": bench.get("model_id"), "precision": bench.get("precision"),
            "mean_question_tokens_seq": seq, "bench_cmd": cmd,
            "flops": {s: matmul_flops_per_sequence(model / "model.onnx", s) for s in seqs},
            "rows": rows,
        }
    out["sgemm"]["ort_after"] = [sgemm_ort(*square, t, args.sgemm_runs),
                                 sgemm_ort(*enc_shape, t, args.sgemm_runs)]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(t))  # numpy may already have started BLAS
    out["sgemm"]["numpy"] = [sgemm_numpy(*square, args.sgemm_runs)]
    say(f"sgemm (ort, after): {out['sgemm']['ort_after']}; numpy: {out['sgemm']['numpy']}")
    peak = max(x["gflops_median"] for k in ("ort_before", "ort_after") for x in out["sgemm"][k])
    out["sgemm_peak_gflops"] = peak
    out["sgemm_peak_definition"] = ("largest median GFLOP/s of the onnxruntime MatMuls above "
                                    "(before and after the encoder benches)")
    for m in out["models"].values():
        for r in m["rows"]:
            r["fraction_of_sgemm_peak"] = r["gflops"] / peak
        best = {}
        for r in m["rows"]:
            if r["seq"] not in best or r["gflops"] > best[r["seq"]]["gflops"]:
                best[r["seq"]] = r
        m["best_per_seq"] = {s: {"batch": r["batch"], "gflops": r["gflops"],
                                 "fraction_of_sgemm_peak": r["fraction_of_sgemm_peak"]}
                             for s, r in best.items()}
    out["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
