"""Shared options and paths for the ops tests (run them through deploy/test/run.sh)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser):
    parser.addoption("--xling-binary", default=os.environ.get(
        "XLING_BINARY", str(REPO / "target/release/xling")),
        help="xling binary for the live test (default target/release/xling)")
    parser.addoption("--xling-model", default=str(REPO / "models/mt5-tiny"),
                     help="model folder served in the live test")
    parser.addoption("--xling-corpus", default=str(REPO / "data/demo/corpus.jsonl"),
                     help="corpus the live test indexes")


def tool(name: str) -> str:
    """Path of a required tool: the ops venv's bin first, then PATH; fail with the fix."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run deploy/test/run.sh, which installs it")
    return found
