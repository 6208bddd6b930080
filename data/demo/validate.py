#!/usr/bin/env python3
"""Check the demo corpus, its query set and the ghz query file; print a summary.

Usage: python3 data/demo/validate.py   (from the repository root; exits 1 on any problem)

Checks: every line is a JSON object with the documented fields, ids are unique and
follow `<lang>-<topic>-<n>`, each passage is 1-3 sentences of 15-60 words (or a
character range for scripts written without spaces), the text is in the script of
its language, every language has at least 25 passages, every query's relevant ids
exist, and every ghz message is a valid `xling.v1.SearchRequest` in JSON form.
"""

import collections
import json
import re
import statistics
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data/demo/corpus.jsonl"
QUERIES = ROOT / "data/demo/queries.jsonl"
GHZ = ROOT / "load-tests/data/queries-multilingual.json"

MIN_PER_LANGUAGE = 25
MIN_LANGUAGES = 12
MIN_PASSAGES = 360
MIN_QUERIES = 60
MIN_GHZ_MESSAGES = 100
# A sentence ends at . ! ? ؟ or the Devanagari danda before a space or the end, except after a
# digit ("9. November"), a one-letter abbreviation ("a. C.", "н. э.") or "Chr."; the last one
# always counts; CJK full stops need no space.
SENTENCE_END = re.compile(r"(?<![0-9])(?<!\b\w)(?<!Chr)[.!?؟।](?=\s|$)|[.!?؟।]$|[。！？]")
ID_RE = re.compile(r"^([a-z]{2})-([a-z0-9]+(?:-[a-z0-9]+)*)-([1-9][0-9]*)$")

# Unicode name prefixes of the script each language must mostly use (letters only).
SCRIPT = {
    "ru": ("CYRILLIC",),
    "el": ("GREEK",),
    "ar": ("ARABIC",),
    "hi": ("DEVANAGARI",),
    "th": ("THAI",),
    "ko": ("HANGUL",),
    "zh": ("CJK UNIFIED",),
    "ja": ("HIRAGANA", "KATAKANA", "CJK UNIFIED"),
}
LATIN = ("LATIN",)
# Scripts written without spaces between words: length is checked in characters.
CHAR_LIMITS = {"zh": (40, 200), "ja": (40, 200), "th": (60, 300)}
WORD_LIMITS = (15, 60)

problems = []


def fail(msg):
    problems.append(msg)


def script_share(text, prefixes):
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    hits = sum(1 for c in letters if unicodedata.name(c, "").startswith(prefixes))
    return hits / len(letters)


def read_jsonl(path):
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            fail(f"{path.name}:{n}: invalid JSON: {e}")
            continue
        if not isinstance(row, dict):
            fail(f"{path.name}:{n}: not a JSON object")
            continue
        rows.append((n, row))
    return rows


def check_corpus():
    rows = read_jsonl(CORPUS)
    ids, texts = set(), set()
    by_lang, by_topic = collections.Counter(), collections.Counter()
    topic_langs = collections.defaultdict(set)
    words, chars = collections.defaultdict(list), collections.defaultdict(list)
    for n, r in rows:
        where = f"corpus.jsonl:{n}"
        extra = set(r) - {"id", "text", "language", "title", "metadata"}
        if extra:
            fail(f"{where}: unknown fields {sorted(extra)}")
        pid, text, lang = r.get("id"), r.get("text"), r.get("language")
        if not all(isinstance(x, str) and x.strip() for x in (pid, text, lang)):
            fail(f"{where}: id, text and language must be non-empty strings")
            continue
        if not isinstance(r.get("title", ""), str):
            fail(f"{where}: title must be a string")
        m = ID_RE.match(pid)
        if not m or m.group(1) != lang:
            fail(f"{where}: id {pid!r} is not <{lang}>-<topic>-<n>")
            continue
        if pid in ids:
            fail(f"{where}: duplicate id {pid}")
        if text in texts:
            fail(f"{where}: duplicate text")
        ids.add(pid)
        texts.add(text)
        topic = m.group(2)
        by_lang[lang] += 1
        by_topic[topic] += 1
        topic_langs[topic].add(lang)
        nw, nc = len(text.split()), len(text)
        words[lang].append(nw)
        chars[lang].append(nc)
        if lang in CHAR_LIMITS:
            lo, hi = CHAR_LIMITS[lang]
            if not lo <= nc <= hi:
                fail(f"{where}: {pid} has {nc} characters, want {lo}-{hi}")
        elif not WORD_LIMITS[0] <= nw <= WORD_LIMITS[1]:
            fail(f"{where}: {pid} has {nw} words, want {WORD_LIMITS[0]}-{WORD_LIMITS[1]}")
        sentences = len(SENTENCE_END.findall(text))
        if lang != "th" and not 1 <= sentences <= 3:
            fail(f"{where}: {pid} has {sentences} sentences, want 1-3")
        share = script_share(text, SCRIPT.get(lang, LATIN))
        if share < 0.8:
            fail(f"{where}: {pid} is only {share:.0%} in the script of {lang!r}")
    if len(ids) < MIN_PASSAGES:
        fail(f"corpus: {len(ids)} passages, want >= {MIN_PASSAGES}")
    if len(by_lang) < MIN_LANGUAGES:
        fail(f"corpus: {len(by_lang)} languages, want >= {MIN_LANGUAGES}")
    for lang, c in by_lang.items():
        if c < MIN_PER_LANGUAGE:
            fail(f"corpus: {lang} has {c} passages, want >= {MIN_PER_LANGUAGE}")
    return ids, by_lang, by_topic, topic_langs, words, chars


def check_queries(ids, langs):
    rows = read_jsonl(QUERIES)
    by_lang = collections.Counter()
    cross = 0
    for n, r in rows:
        where = f"queries.jsonl:{n}"
        q, lang, rel = r.get("query"), r.get("language"), r.get("relevant")
        if not (isinstance(q, str) and q.strip() and isinstance(lang, str)):
            fail(f"{where}: query and language must be non-empty strings")
            continue
        if not (isinstance(rel, list) and rel):
            fail(f"{where}: relevant must be a non-empty list")
            continue
        missing = [x for x in rel if x not in ids]
        if missing:
            fail(f"{where}: relevant ids not in the corpus: {missing}")
        by_lang[lang] += 1
        if all(not x.startswith(lang + "-") for x in rel):
            cross += 1
    if len(rows) < MIN_QUERIES:
        fail(f"queries: {len(rows)} queries, want >= {MIN_QUERIES}")
    if len(by_lang) < MIN_LANGUAGES:
        fail(f"queries: {len(by_lang)} languages, want >= {MIN_LANGUAGES}")
    unknown = set(by_lang) - set(langs)
    if unknown:
        fail(f"queries: languages not in the corpus: {sorted(unknown)}")
    return len(rows), by_lang, cross


def check_ghz(langs):
    try:
        msgs = json.loads(GHZ.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        fail(f"{GHZ.name}: invalid JSON: {e}")
        return 0, 0, []
    if not isinstance(msgs, list):
        fail(f"{GHZ.name}: must be a JSON array of SearchRequest messages")
        return 0, 0, []
    filtered, lengths = 0, []
    for i, m in enumerate(msgs):
        where = f"{GHZ.name}[{i}]"
        if not isinstance(m, dict) or set(m) - {"query", "top_k", "languages", "ef"}:
            fail(f"{where}: not a SearchRequest object")
            continue
        q = m.get("query")
        if not (isinstance(q, str) and q.strip()):
            fail(f"{where}: empty query")
            continue
        if not (isinstance(m.get("top_k"), int) and m["top_k"] > 0):
            fail(f"{where}: top_k must be a positive integer")
        if "languages" in m:
            filtered += 1
            bad = [x for x in m["languages"] if x not in langs]
            if bad or not m["languages"]:
                fail(f"{where}: languages {m['languages']} not all in the corpus")
        lengths.append(len(q))
    if len(msgs) < MIN_GHZ_MESSAGES:
        fail(f"{GHZ.name}: {len(msgs)} messages, want >= {MIN_GHZ_MESSAGES}")
    return len(msgs), filtered, lengths


def main():
    ids, by_lang, by_topic, topic_langs, words, chars = check_corpus()
    nq, q_lang, cross = check_queries(ids, by_lang)
    nm, filtered, lengths = check_ghz(by_lang)

    print(f"corpus: {len(ids)} passages, {len(by_lang)} languages, {len(by_topic)} topics")
    for lang in sorted(by_lang):
        w, c = words[lang], chars[lang]
        print(
            f"  {lang}: {by_lang[lang]:3d} passages, words {min(w)}-{max(w)} "
            f"(median {statistics.median(w):g}), chars {min(c)}-{max(c)}"
        )
    multi = sum(1 for s in topic_langs.values() if len(s) >= 3)
    print(f"  topics with passages in >= 3 languages: {multi}/{len(topic_langs)}")
    print(f"queries: {nq} in {len(q_lang)} languages; {cross} have no relevant passage in their own language")
    print("  per language: " + " ".join(f"{k}={v}" for k, v in sorted(q_lang.items())))
    if lengths:
        print(
            f"ghz: {nm} messages, {filtered} with a language filter, query length "
            f"{min(lengths)}-{max(lengths)} characters (median {statistics.median(lengths):g})"
        )
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
