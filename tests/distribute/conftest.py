"""The ``cluster`` fixture of the distribution tests: worker processes of the real binaries on localhost ports.

Every worker runs ``tests/distribute/worker.py <module> <flags>`` (the binary's own ``main``) in a
fresh interpreter, with its own ``TF_CONFIG`` and its own ``TMPDIR`` (so a test can see what a
non-chief worker left behind). Workers are always killed when a test ends.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, child_env

WORKER = os.path.join(REPO, "tests", "distribute", "worker.py")


def free_ports(count):
    """``count`` distinct TCP ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """Starts ``workers`` processes of a binary as one multi-worker cluster; kills them on ``stop``."""

    def __init__(self, directory, workers=2):
        self.directory = str(directory)
        self.workers = workers
        self.procs = []
        self.logs = []
        self.round = 0

    def start(self, module, flags, extra_env=None):
        """Starts every worker (``extra_env``: ``{index: {name: value}}``); returns the processes."""
        self.round += 1
        ports = free_ports(self.workers)
        cluster = {"worker": [f"localhost:{port}" for port in ports]}
        self.procs, self.logs = [], []
        for index in range(self.workers):
            tmp = os.path.join(self.directory, f"tmp_w{index}_r{self.round}")
            os.makedirs(tmp, exist_ok=True)
            env = child_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                            TMPDIR=tmp, **(extra_env or {}).get(index, {}))
            log = open(os.path.join(self.directory, f"worker{index}_r{self.round}.log"), "w")
            self.logs.append(log.name)
            self.procs.append(subprocess.Popen([sys.executable, WORKER, module, *flags], cwd=REPO, env=env,
                                               stdout=log, stderr=subprocess.STDOUT))
            log.close()
        return self.procs

    def wait(self, timeout, procs=None):
        """Waits until ``procs`` (all by default) exit; returns their return codes."""
        deadline = time.monotonic() + timeout
        for proc in procs or self.procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                pytest.fail(f"workers still running after {timeout}s:\n{self.tails()}")
        return [proc.returncode for proc in procs or self.procs]

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)

    def tails(self, chars=3000):
        out = []
        for name in self.logs:
            with open(name, errors="replace") as f:
                out.append(f"--- {os.path.basename(name)}\n{f.read()[-chars:]}")
        return "\n".join(out)

    def tmp_dirs(self):
        """``TMPDIR`` of each worker in the latest round."""
        return [os.path.join(self.directory, f"tmp_w{index}_r{self.round}") for index in range(self.workers)]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "cluster")
    os.makedirs(c.directory, exist_ok=True)
    try:
        yield c
    finally:
        c.stop()
