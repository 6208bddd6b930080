"""hnswlib and faiss-cpu HNSW on one data set (make_data.py's output), at the M,
ef_construction and thread count xling builds with; prints one JSON object per library.

Per library: build time (on --threads), on-disk size, startup (load from disk) time and RSS
growth over the load (measured in a fresh child process), and on one thread recall@k and QPS
for each search ef, with and without the 1% language filter (faiss: an IDSelector inside the
walk; hnswlib: its filter callback, a Python function per visited node, so slow by design).

Usage: bench_libs.py DATA WORK [--m 16] [--ef-construction 200] [--threads 2]
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def recall(found, truth):
    hit = sum(len(set(f) & set(t)) for f, t in zip(found, truth))
    return hit / truth.size


def build(lib, data, path, m, efc, threads):
    vectors = np.load(data / "vectors.npy", mmap_mode="r")
    started = time.perf_counter()
    if lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        index.init_index(max_elements=len(vectors), M=m, ef_construction=efc)
        index.set_num_threads(threads)
        for s in range(0, len(vectors), 100_000):
            index.add_items(
                np.ascontiguousarray(vectors[s : s + 100_000]),
                np.arange(s, s + min(100_000, len(vectors) - s)),
            )
        seconds = time.perf_counter() - started
        index.save_index(str(path))
    else:
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        for s in range(0, len(vectors), 100_000):
            index.add(np.ascontiguousarray(vectors[s : s + 100_000]))
        seconds = time.perf_counter() - started
        faiss.write_index(index, str(path))
    return seconds


def load(lib, path, dim):
    """Loads the index; returns it, seconds and the RSS it added (KiB)."""
    before = rss_kib()
    started = time.perf_counter()
    if lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path))
    else:
        import faiss

        index = faiss.read_index(str(path))
    return index, time.perf_counter() - started, rss_kib() - before


def search(lib, index, queries, k, ef, rows=None):
    """One thread; returns the row numbers found and the seconds taken."""
    if lib == "hnswlib":
        index.set_num_threads(1)
        index.set_ef(max(ef, k))
        allowed = None if rows is None else set(rows.tolist())
        started = time.perf_counter()
        if allowed is None:
            labels, _ = index.knn_query(queries, k=k, num_threads=1)
        else:
            labels, _ = index.knn_query(
                queries, k=k, num_threads=1, filter=allowed.__contains__
            )
        return labels, time.perf_counter() - started
    import faiss

    faiss.omp_set_num_threads(1)
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(ef, k)
    if rows is not None:
        params.sel = faiss.IDSelectorBatch(rows.astype(np.int64))
    started = time.perf_counter()
    _, labels = index.search(queries, k, params=params)
    return labels, time.perf_counter() - started


def child(lib, data, path):
    """In a fresh process: startup and RSS of the load, then the ef sweeps."""
    queries = np.load(data / "queries.npy")
    gt, gt_rare = np.load(data / "gt.npy"), np.load(data / "gt_rare.npy")
    k = gt.shape[1]
    index, seconds, rss = load(lib, path, queries.shape[1])
    meta = json.loads((data / "data.json").read_text())
    rows = []
    for line_no, line in enumerate(open(data / "corpus.jsonl")):
        if line.startswith('{"id": "' + meta["rare"] + "-"):
            rows.append(line_no)
    rows = np.array(rows)
    sweep = []
    for ef in EFS:
        found, secs = search(lib, index, queries, k, ef)
        sweep.append(
            {"ef": ef, "recall": recall(found, gt), "qps": len(queries) / secs}
        )
    rare = []
    # hnswlib's Python filter callback is slow: fewer queries and efs there.
    nq = len(queries) if lib == "faiss" else 200
    for ef in [16, 64, 256]:
        try:
            found, secs = search(lib, index, queries[:nq], k, ef, rows)
        except RuntimeError as e:
            # hnswlib raises when a filtered walk ends with fewer than k hits.
            rare.append({"ef": ef, "error": str(e)})
            continue
        rare.append({"ef": ef, "recall": recall(found, gt_rare[:nq]), "qps": nq / secs})
    print(
        json.dumps(
            {
                "startup_s": seconds,
                "rss_load_mib": rss / 1024,
                "sweep": sweep,
                "rare": rare,
            }
        )
    )


def at_recall(sweep, target):
    """The first ef reaching `target`, and its QPS (None if none does)."""
    for row in sweep:
        if row["recall"] >= target:
            return {
                "ef": row["ef"],
                "recall": round(row["recall"], 4),
                "qps": round(row["qps"]),
            }
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data", type=pathlib.Path)
    p.add_argument("work", type=pathlib.Path)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--libs", default="hnswlib,faiss")
    p.add_argument("--child", nargs=2)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.data, pathlib.Path(a.child[1]))
        return
    a.work.mkdir(parents=True, exist_ok=True)
    for lib in a.libs.split(","):
        path = a.work / f"{lib}.index"
        seconds = build(lib, a.data, path, a.m, a.ef_construction, a.threads)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                str(a.data),
                str(a.work),
                "--child",
                lib,
                str(path),
            ],
            check=True,
            stdout=subprocess.PIPE,  # stderr passes through: a failing child says why
            text=True,
        ).stdout
        result = json.loads(out)
        result.update(
            {
                "lib": lib,
                "m": a.m,
                "ef_construction": a.ef_construction,
                "threads": a.threads,
                "build_s": round(seconds, 1),
                "disk_mib": round(path.stat().st_size / 2**20, 1),
                "at_recall": {
                    str(t): at_recall(result["sweep"], t) for t in (0.90, 0.95, 0.99)
                },
            }
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
