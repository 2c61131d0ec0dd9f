"""A local run opens no port beyond loopback, and keeps Ray's token authentication on (dedup.ray_env)."""
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dedup.synth import make_corpus

ROOT = Path(__file__).resolve().parents[2]


def _listening(pid: int) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of ``pid`` and its descendants."""
    found = set()
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    found.add((c.laddr.ip, c.laddr.port, p.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip)
    return bool(a.is_loopback or (getattr(a, "ipv4_mapped", None) and a.ipv4_mapped.is_loopback))  # ::ffff:127.0.0.1


@pytest.mark.slow
def test_a_local_run_listens_on_loopback_alone(tmp_path):
    root = tmp_path / "imgs"
    make_corpus(root, groups=3)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")}
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "jobs.dedup", "run", "--input", str(root), "--output", str(out), "--model", "thumb"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: set = set()
    try:
        while p.poll() is None:  # sample for the whole run: services come and go
            seen |= _listening(p.pid)
            time.sleep(0.1)
        log = p.stdout.read()
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert p.returncode == 0, log[-3000:]
    names = {name for _, _, name in seen}
    assert len(seen) >= 4 and {"gcs_server", "raylet"} <= names, seen  # the sampling saw Ray's services
    outside = {s for s in seen if not _loopback(s[0])}
    assert outside == set(), f"listening beyond loopback: {sorted(outside)}"
    ray_info = json.loads((out / "summary.json").read_text())["parameters"]["ray"]
    assert ray_info["gcs_address"].startswith("127.0.0.1:") and ray_info["token_auth"] is True
