"""Fixtures that run a real plinthd for the end-to-end tests.

The binary is $PLINTHD, else <repo>/.build/debug/plinthd. Without it the
end-to-end tests are skipped, except under CI (env CI set), where they fail:
a CI run that silently tested nothing would look green.

Each daemon gets its own temporary data directory and is stopped by PID
(SIGTERM, then SIGKILL) at teardown. Where plinthd has --ready-file it
listens on port 0 and writes the address it bound there (no race for the
port); otherwise a free port is found by binding a socket to port 0 and
closing it, and the daemon is started on that.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


def plinthd_binary() -> str:
    path = os.environ.get("PLINTHD") or str(REPO / ".build" / "debug" / "plinthd")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        message = (
            "plinthd binary not found at %s: build it (swift build) or set PLINTHD" % path
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Plinthd:
    """One plinthd process on 127.0.0.1 (and optionally a Unix socket)."""

    def __init__(
        self, binary: str, folder: Path, config: Optional[str] = None, unix: bool = False,
        address: Optional[str] = None,
    ) -> None:
        """Start plinthd with its data in `folder`/data (kept across restarts
        in the same folder), on `address` if given, else on a free port."""
        self.data_dir = folder / "data"
        self.log_path = folder / "plinthd.log"
        self.unix_path: Optional[str] = None
        self.ready_file: Optional[Path] = None
        if address is not None:
            self.address = address
        elif plinthd_supports(binary, "--ready-file"):
            self.ready_file = folder / "ready"
            self.address = "127.0.0.1:0"
        else:
            self.address = "127.0.0.1:%d" % free_port()
        args: List[str] = [binary, "--data-dir", str(self.data_dir), "--listen", self.address]
        if self.ready_file is not None:
            args += ["--ready-file", str(self.ready_file)]
        if config is not None:
            config_path = folder / "plinthd.yaml"
            config_path.write_text(config)
            args += ["--config", str(config_path)]
        if unix:
            # Unix socket paths are limited to ~100 bytes: keep it short.
            self.unix_path = "/tmp/plinth-%d-%s.sock" % (os.getpid(), folder.name)
            args += ["--unix", self.unix_path]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _bound_address(self) -> Optional[str]:
        """The TCP address from the ready file, once it is complete."""
        try:
            text = self.ready_file.read_text()  # type: ignore[union-attr]
        except OSError:
            return None
        lines = text.splitlines() if text.endswith("\n") else []
        if self.unix_path is not None and not any(line.startswith("unix:") for line in lines):
            return None
        return next((line for line in lines if not line.startswith("unix:")), None)

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    "plinthd exited with %s before accepting connections:\n%s"
                    % (self.process.returncode, self.log()),
                    pytrace=False,
                )
            if self.ready_file is not None:
                address = self._bound_address()
                if address is not None:
                    self.address = address
                    return
            else:
                host, port = self.address.rsplit(":", 1)
                try:
                    socket.create_connection((host, int(port)), timeout=0.5).close()
                    if self.unix_path is None or os.path.exists(self.unix_path):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        pytest.fail("plinthd did not accept connections within %ss:\n%s" % (START_TIMEOUT, self.log()),
                    pytrace=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)


def plinthd_supports(binary: str, flag: str) -> bool:
    try:
        result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in result.stdout + result.stderr


TOKENS = """\
tokens:
  - {name: reader, token: "r-secret", scopes: [read]}
  - {name: writer, token: "w-secret", scopes: [read, write]}
  - {name: ops, token: "a-secret", scopes: [read, write, admin]}
"""


@pytest.fixture(scope="session")
def plinthd(tmp_path_factory):
    """An open daemon (no tokens), shared by the tests; each test uses its
    own names (see `names`)."""
    daemon = Plinthd(plinthd_binary(), tmp_path_factory.mktemp("plinthd"))
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def secured_plinthd(tmp_path_factory):
    """A daemon that requires tokens (reader, writer, ops)."""
    daemon = Plinthd(plinthd_binary(), tmp_path_factory.mktemp("plinthd-auth"), config=TOKENS)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def unix_plinthd(tmp_path_factory):
    binary = plinthd_binary()
    if not plinthd_supports(binary, "--unix"):
        pytest.skip("this plinthd has no --unix option")
    daemon = Plinthd(binary, tmp_path_factory.mktemp("plinthd-unix"), unix=True)
    yield daemon
    daemon.stop()


@pytest.fixture
def start_plinthd(tmp_path):
    """A factory for daemons of one test (all on `tmp_path`'s data), for
    tests that stop and restart one; every daemon is stopped at teardown."""
    binary = plinthd_binary()
    started: List[Plinthd] = []

    def start(address: Optional[str] = None) -> Plinthd:
        started.append(Plinthd(binary, tmp_path, address=address))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()
