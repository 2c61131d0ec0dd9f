"""A real two-node Ray cluster on this machine, and the cluster/ deployment files.

`ray start --head` (with the dashboard, whose job server `ray job submit` talks to) plus a second node
joined through the loopback address, both started by the test with their own temp dir and ports, so they
neither touch nor are touched by the local `ray.init()` of the other tests (the `ray_local` fixture). The
job is submitted exactly as cluster/README.md says: `ray job submit --working-dir <repo> -- python -m
jobs.dedup run ...`. The cluster is always stopped (its processes found by process group and parentage,
never by name: `ray stop` would also kill the other tests' Ray), and the test fails if any is left.

Needs `ray[default]` (the dashboard and job server); the test says so if it is missing.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dedup.cli import build_parser, config_from_args
from dedup.synth import make_corpus

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "cluster"
BIN = Path(sys.executable).parent  # the project's virtual environment
RAY = BIN / "ray"

pytestmark = pytest.mark.slow  # a two-node Ray cluster started by the test: a minute


# ---------------------------------------------------------------------------------------------------
# Processes


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its closing one
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z":  # a zombie is already dead; only its parent can reap it
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cluster_pids(pgids: set[int], marker: str) -> set[int]:
    """Processes of our cluster: in a process group a `ray start` of ours led, descendants of those
    (the job driver runs in a session of its own), or naming our temp dir on their command line."""
    table = _proc_table()
    me = os.getpid()
    found = {pid for pid, (_, pgid) in table.items() if pgid in pgids}
    found |= {pid for pid in table if marker in _cmdline(pid)}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in table.items() if ppid in found and pid not in found}
        found |= kids
        grew = bool(kids)
    found.discard(me)
    return {pid for pid in found if pid not in _ancestors(me, table)}


def _ancestors(pid: int, table: dict[int, tuple[int, int]]) -> set[int]:
    out = set()
    while pid in table and pid not in out:
        out.add(pid)
        pid = table[pid][0]
    return out


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))  # free on every interface: Ray binds the node IP, not only loopback
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------------------------------
# The cluster


class TwoNodeCluster:
    """Head (with the dashboard / job server) + one worker node, both on this machine."""

    def __init__(self, cpus_per_node: int = 2):
        # Short path: Ray puts unix sockets under it (108-byte limit).
        self.tmp = Path(tempfile.mkdtemp(prefix="raycl-", dir="/tmp"))
        self.cpus = cpus_per_node
        self.pgids: set[int] = set()
        drop = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # a real cluster, not the tests' single-machine Ray
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        # What an activated venv (or a node's setup_commands) gives: `python` in the job is the venv's.
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["RAY_USAGE_STATS_ENABLED"] = "0"
        # Token auth with a token of this cluster's own, given to every node and client explicitly.
        # Without it, Ray 2.60 decides per process from ~/.ray/auth_token (which a local ray.init() of
        # another test may create at any moment): a head with auth and a worker without cannot talk.
        # Everything that talks to the cluster therefore runs as a subprocess with this environment
        # (the test process itself may hold the other tests' Ray, in token mode with another token).
        self.env["RAY_AUTH_MODE"] = "token"
        self.env["RAY_AUTH_TOKEN"] = uuid.uuid4().hex + uuid.uuid4().hex
        (self.gcs_port, self.dashboard_port, client_port, *rest) = _free_ports(3 + 2 * 6)
        self.node_ports = [rest[:6], rest[6:]]
        self.client_port = client_port
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.log: list[str] = []

    def _node_args(self, i: int) -> list[str]:
        nm, om, agent_http, agent_grpc, rt_env, metrics = self.node_ports[i]
        return [
            "--node-ip-address", "127.0.0.1",  # Ray turns loopback into the machine's own address
            "--num-cpus", str(self.cpus), "--num-gpus", "0",
            "--object-store-memory", str(256 * 1024 * 1024),
            "--node-manager-port", str(nm), "--object-manager-port", str(om),
            # Two nodes on one machine must not share the agents' fixed default ports (52365, ...).
            "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(rt_env), "--metrics-export-port", str(metrics),
            # Random worker ports (the default range 10002-19999 is the same for both raylets).
            "--min-worker-port", "0", "--max-worker-port", "0",
            # A temp dir per node, as on two machines (runtime_resources/ unpacked once per node).
            "--temp-dir", str(self.tmp / f"node{i}"),
            "--disable-usage-stats",
        ]

    def _ray_start(self, args: list[str]) -> None:
        p = subprocess.Popen(
            [str(RAY), "start", *args], env=self.env, cwd=str(self.tmp),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.pgids.add(p.pid)  # every daemon `ray start` leaves behind stays in this process group
        out, _ = p.communicate(timeout=120)
        self.log.append(out)
        if p.returncode != 0:
            hint = ""
            if "dashboard" in out.lower() and ("aiohttp" in out or "default" in out):
                hint = "\n(the job server needs ray[default]: pip install 'ray[data,default]==<ray version>')"
            raise RuntimeError(f"ray start {' '.join(args)} failed ({p.returncode}):\n{out}{hint}")

    def start(self) -> "TwoNodeCluster":
        t0 = time.monotonic()
        self._ray_start([
            "--head", "--port", str(self.gcs_port),
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--ray-client-server-port", str(self.client_port),
            *self._node_args(0),
        ])
        # The second node joins through the loopback address.
        self._ray_start(["--address", f"127.0.0.1:{self.gcs_port}", *self._node_args(1)])
        self.start_seconds = time.monotonic() - t0
        return self

    def query(self, code: str, timeout: float = 60):
        """Run `code` (which prints one JSON value last) in a fresh venv python that talks to the cluster."""
        r = subprocess.run(
            [sys.executable, "-c", code, self.dashboard], env=self.env, cwd=str(self.tmp),
            capture_output=True, text=True, timeout=timeout,
        )
        assert r.returncode == 0, f"cluster query failed:\n{code}\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout.strip().splitlines()[-1])

    def wait_for_nodes(self, n: int, timeout: float = 60) -> list[dict]:
        """Alive nodes, once there are `n` of them (or the timeout passed)."""
        return self.query(WAIT_FOR_NODES % {"n": n, "timeout": timeout}, timeout=timeout + 30)

    def submit(self, entrypoint: list[str], submission_id: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """`ray job submit` from the repository root, waiting for the job (it tails the job's logs)."""
        cmd = [
            str(RAY), "job", "submit", "--address", self.dashboard, "--working-dir", str(REPO),
            "--submission-id", submission_id, "--", *entrypoint,
        ]
        try:
            return subprocess.run(cmd, env=self.env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            def text(b):
                return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

            status = self.query(JOB_WORK % {"submission_id": submission_id})
            actors = sorted({(a["class_name"], a["node_id"][:8]) for a in status.get("actors", [])})
            pytest.fail(
                f"job {submission_id} not finished after {timeout}s ({status.get('status')}); actors: {actors}\n"
                f"{text(e.stdout)[-6000:]}\n{text(e.stderr)[-2000:]}"
            )

    def stop(self) -> set[int]:
        """Stop every process of this cluster; returns those still alive afterwards (should be none)."""
        marker = str(self.tmp)
        pids = _cluster_pids(self.pgids, marker)
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            time.sleep(0.25)
            pids = _cluster_pids(self.pgids, marker)
        for _ in range(3):
            pids = _cluster_pids(self.pgids, marker)
            if not pids:
                break
            _signal_all(pids, signal.SIGKILL)
            time.sleep(1)
        left = _cluster_pids(self.pgids, marker)
        if not left:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return left


def _start_cluster(attempts: int = 2) -> TwoNodeCluster:
    """A started cluster. Ray gives a node 30 s (fixed) to register with the GCS; on a machine busy with
    other work that can run out, so a start that timed out is stopped and tried once more."""
    for attempt in range(1, attempts + 1):
        cluster = TwoNodeCluster()
        try:
            return cluster.start()
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            left = cluster.stop()
            assert not left, f"cluster processes left behind after a failed start: {sorted(left)}"
            if attempt == attempts or "timed out during startup" not in str(e):
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def two_node_cluster():
    import importlib.util

    missing = [m for m in ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"the Ray job server (`ray job submit`) needs ray[default]; missing: {', '.join(missing)}")
    cluster = _start_cluster()
    failed = True
    try:
        yield cluster
        failed = False
    finally:
        left = cluster.stop()
        if left:
            details = "\n".join(f"{pid}: {_cmdline(pid)[:200]}" for pid in sorted(left))
            msg = f"cluster processes left behind:\n{details}"
            if failed:  # do not hide the test's own failure; say it as well
                print(msg, file=sys.stderr)
            else:
                pytest.fail(msg)


# ---------------------------------------------------------------------------------------------------
# The job on the cluster


WAIT_FOR_NODES = """
import json, sys, time
from ray.util.state import list_nodes
deadline = time.monotonic() + %(timeout)s
while True:
    try:
        nodes = [n for n in list_nodes(address=sys.argv[1], raise_on_missing_output=False) if n.state == "ALIVE"]
    except Exception:  # the dashboard may still be starting
        nodes = []
    if len(nodes) >= %(n)s or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([{"node_id": n.node_id, "is_head_node": n.is_head_node, "node_ip": n.node_ip} for n in nodes]))
"""

JOB_WORK = """
import json, sys
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_actors, list_tasks
address, submission_id = sys.argv[1], %(submission_id)r
info = JobSubmissionClient(address).get_job_info(submission_id)
out = {"status": str(info.status.value if hasattr(info.status, "value") else info.status), "job_id": info.job_id}
if info.job_id:
    f = [("job_id", "=", info.job_id)]
    tasks = list_tasks(address=address, filters=f, limit=10000, raise_on_missing_output=False)
    actors = list_actors(address=address, filters=f, limit=10000, raise_on_missing_output=False)
    out["tasks"] = [{"name": t.name, "node_id": t.node_id} for t in tasks]
    out["actors"] = [{"class_name": a.class_name, "node_id": a.node_id} for a in actors]
print(json.dumps(out))
"""

PROBE = (
    "import json, os, sys, ray, dedup, jobs.dedup; "
    "ray.init(logging_level='ERROR'); "
    "print('PROBE ' + json.dumps({"
    "'python': sys.executable, 'dedup': dedup.__file__, 'jobs': jobs.dedup.__file__, 'cwd': os.getcwd(), "
    "'ray_address': os.environ.get('RAY_ADDRESS'), 'gcs': ray.get_runtime_context().gcs_address, "
    "'alive_nodes': sum(n['Alive'] for n in ray.nodes()), "
    "'venv_uploaded': os.path.exists('.venv'), 'pipeline_uploaded': os.path.exists('dedup/job.py')}))"
)


def _job_record(cluster: TwoNodeCluster, submission_id: str) -> dict:
    """Status, Ray job id, and the job's tasks and actors with the node each ran on."""
    return cluster.query(JOB_WORK % {"submission_id": submission_id})


def test_dedup_job_on_two_node_cluster(two_node_cluster, tmp_path):
    cluster = two_node_cluster
    t_start = time.monotonic()
    nodes = cluster.wait_for_nodes(2)
    t_nodes = time.monotonic() - t_start
    assert len(nodes) == 2, f"expected 2 alive nodes, got {nodes}"
    assert sum(1 for n in nodes if n["is_head_node"]) == 1

    # 1. What the job's driver sees: the venv's python, the uploaded working dir (without .venv), and
    #    this cluster (RAY_ADDRESS set by the job server), not a Ray of its own.
    probe_id = f"probe-{uuid.uuid4().hex[:8]}"
    t_probe = time.monotonic()
    r = cluster.submit(["python", "-c", PROBE], probe_id, timeout=120)
    t_probe = time.monotonic() - t_probe
    assert r.returncode == 0, f"probe job failed:\n{r.stdout}\n{r.stderr}"
    assert _job_record(cluster, probe_id)["status"] == "SUCCEEDED"
    line = next(x for x in r.stdout.splitlines() if x.startswith("PROBE "))
    probe = json.loads(line[len("PROBE "):])
    assert Path(probe["python"]).parent == BIN, probe  # `python` is the venv's python
    cwd = Path(probe["cwd"])
    assert cwd != REPO and str(cluster.tmp) in str(cwd), probe  # runs in the unpacked upload ...
    assert Path(probe["dedup"]).is_relative_to(cwd) and Path(probe["jobs"]).is_relative_to(cwd), probe  # ... and its code
    assert probe["pipeline_uploaded"] and not probe["venv_uploaded"], probe  # .gitignore keeps .venv out
    assert probe["ray_address"] and probe["ray_address"].endswith(f":{cluster.gcs_port}"), probe
    assert probe["gcs"].endswith(f":{cluster.gcs_port}") and probe["alive_nodes"] == 2, probe

    # 2. The job itself, as cluster/README.md submits it.
    corpus = tmp_path / "corpus"
    truth = make_corpus(corpus)
    out = tmp_path / "out"
    job_id = f"dedup-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    r = cluster.submit(
        [
            "python", "-m", "jobs.dedup", "run", "--input", str(corpus), "--output", str(out),
            "--model", "thumb", "--threshold", "0.9",
            "--writers", "2", "--search-actors", "2", "--decode-batch", "4",
            # Milvus writes and searches from actor pools even for 22 images (by default a corpus this
            # small is stored from the driver and searched exactly in memory), so that they run across
            # the nodes too.
            "--local-below", "0", "--search-engine", "milvus",
        ],
        job_id, timeout=240,
    )
    seconds = time.monotonic() - t0
    info = _job_record(cluster, job_id)
    assert r.returncode == 0 and info["status"] == "SUCCEEDED", f"job {info['status']} after {seconds:.0f}s:\n{r.stdout}\n{r.stderr}"
    assert "dedup finished" in r.stdout  # the driver's summary, tailed from the cluster

    # The manifest: every input once, each cluster exactly one true group, the originals kept.
    man = pd.read_csv(out / "manifest.csv")
    assert len(man) == len(truth) and len(pd.read_csv(out / "errors.csv")) == 0
    man["rel"] = man["path"].map(lambda p: os.path.relpath(p, corpus))
    assert set(man["rel"]) == set(truth)
    groups = sorted(sorted(truth[r] for r in g) for _, g in man.groupby("cluster_id")["rel"])
    want = sorted(sorted(r for r in truth.values() if r == name) for name in set(truth.values()))
    assert groups == want
    kept = set(man.loc[man["is_canonical"], "rel"])
    assert kept == {f"a/g{g}.jpg" for g in range(5)} | {"solo/s0.jpg", "solo/s1.jpg"}
    assert sorted((out / "keep.txt").read_text().splitlines()) == sorted(man.loc[man["is_canonical"], "path"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["clusters"] == 7 and summary["counts"]["duplicates"] == 15

    # The job's own work (not Ray Data's bookkeeping actors) ran on both nodes: hashing and decode tasks
    # (the weight-free thumb model is computed in them), Milvus writer and search actors, by node.
    ours = ("hash_units", "decode_units", "embed_light", "MilvusWriter", "Searcher")
    tasks = [t for t in info["tasks"] if any(k in (t["name"] or "") for k in ours) and t["node_id"]]
    actors = [a for a in info["actors"] if any(k in (a["class_name"] or "") for k in ours) and a["node_id"]]
    task_nodes = {t["node_id"] for t in tasks}
    actor_nodes = {a["node_id"] for a in actors}
    all_nodes = {n["node_id"] for n in nodes}
    for stage in ("hash_units", "embed_light", "MilvusWriter", "Searcher"):
        assert any(stage in t["name"] for t in tasks) or any(stage in a["class_name"] for a in actors), stage
    assert task_nodes | actor_nodes == all_nodes, (task_nodes, actor_nodes, all_nodes)
    print(f"cluster up {cluster.start_seconds:.1f}s, nodes {t_nodes:.1f}s, probe job {t_probe:.1f}s, "
          f"dedup job on 2 nodes: {seconds:.1f}s; {len(tasks)} tasks on {len(task_nodes)} nodes, "
          f"{len(actors)} actors on {len(actor_nodes)} nodes: {sorted({a['class_name'] for a in actors})}")


# ---------------------------------------------------------------------------------------------------
# The deployment files


def _yaml_files() -> list[Path]:
    return sorted(p for p in CLUSTER_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


_COMMAND = re.compile(r"(?:^|[\s/`])(?:python -m jobs\.dedup|dedup) run\b([^\n`\"']*)")


def _dedup_commands(text: str) -> list[list[str]]:
    """Every `python -m jobs.dedup run ...` / `dedup run ...` with arguments in a text (comment lines
    included, shell line continuations joined), as the arguments after `run`. A bare mention of the
    command in prose has no arguments and is not a command line."""
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = [shlex.split(m.group(1).split(" #")[0]) for m in _COMMAND.finditer(joined)]
    return [args for args in found if args]


def test_cluster_yaml_files_load_and_fit_their_schemas():
    import jsonschema
    import ray.autoscaler

    files = _yaml_files()
    names = {p.relative_to(CLUSTER_DIR).as_posix() for p in files}
    assert {"aws.yaml", "kuberay-rayjob.yaml", "milvus/values.yaml", "milvus/docker-compose.yml"} <= names
    for p in files:
        docs = _yaml_docs(p)
        assert docs and all(isinstance(d, dict) for d in docs), p

    # The cluster launcher config, against the schema `ray up` validates with.
    aws = _yaml_docs(CLUSTER_DIR / "aws.yaml")[0]
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(aws, schema)
    assert aws["provider"]["type"] == "aws"
    types = aws["available_node_types"]
    assert aws["head_node_type"] in types
    assert types[aws["head_node_type"]]["resources"].get("CPU") == 0  # the head runs the driver only
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu and all(t["node_config"]["InstanceType"].startswith(("g5.", "g6.")) for t in gpu)
    assert any(t["resources"].get("CPU", 0) >= 16 and not t["resources"].get("GPU") for t in types.values())
    setup = " ".join(aws["setup_commands"])
    assert "~/ray-image-dedup" in setup and "s3fs" in setup and "gcsfs" in setup
    assert aws["file_mounts"]["~/ray-image-dedup"] == "."

    # The RayJob: head + a GPU worker group, running the job with a Milvus server.
    docs = _yaml_docs(CLUSTER_DIR / "kuberay-rayjob.yaml")
    job = next(d for d in docs if d["kind"] == "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m jobs.dedup run ")
    assert "--milvus-uri http://" in spec["entrypoint"] and "--gpus-per-embed-actor 1" in spec["entrypoint"]
    assert spec["rayClusterSpec"]["rayVersion"] == _ray_version()
    limits = [
        c["resources"]["limits"].get("nvidia.com/gpu")
        for g in spec["rayClusterSpec"]["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]
    ]
    assert any(limits), "the RayJob needs a GPU worker group"
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert any(d["spec"]["accessModes"] == ["ReadWriteMany"] for d in docs if d["kind"] == "PersistentVolumeClaim")
    for group in [spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} <= claims
        assert all(m["mountPath"] == "/mnt/dedup" for c in pod["containers"] for m in c["volumeMounts"])
    assert "--output /mnt/dedup/" in spec["entrypoint"]  # the output is on the shared volume
    assert f"rayproject/ray:{_ray_version()}-py311" in (CLUSTER_DIR / "Dockerfile").read_text()

    values = _yaml_docs(CLUSTER_DIR / "milvus" / "values.yaml")[0]
    assert values["cluster"]["enabled"] is True and values["queryNode"]["replicas"] >= 1
    compose = _yaml_docs(CLUSTER_DIR / "milvus" / "docker-compose.yml")[0]
    assert {"etcd", "minio", "standalone"} <= set(compose["services"])
    assert "19530:19530" in compose["services"]["standalone"]["ports"]


def _ray_version() -> str:
    import ray

    return ray.__version__


def test_cluster_commands_use_real_flags():
    """Every `dedup run` command in cluster/ (YAML values, comments, README) parses with the real CLI into
    a valid config."""
    parser = build_parser()
    commands = []
    for p in [*_yaml_files(), CLUSTER_DIR / "README.md", CLUSTER_DIR / "Dockerfile"]:
        texts = [p.read_text()]
        if p.suffix in (".yaml", ".yml"):
            texts += [s for d in _yaml_docs(p) for s in _strings(d)]  # folded YAML strings, joined
        for text in texts:
            commands += [(p.name, args) for args in _dedup_commands(text)]
    found = {name for name, _ in commands}
    assert {"kuberay-rayjob.yaml", "aws.yaml", "README.md"} <= found, found
    for name, args in commands:
        try:
            ns = parser.parse_args(["run", *args])
        except SystemExit:
            pytest.fail(f"{name}: `dedup run {' '.join(args)}` does not parse")
        config_from_args(ns).validate()


def test_command_extraction_sees_what_it_should():
    """The check above is only as good as the extraction: it must find commands in every form used."""
    text = (
        "# ray job submit -- \\\n#     python -m jobs.dedup run --input a b --output /x \\\n#     --threshold 0.9\n"
        "    .venv/bin/dedup run --input ./p --output ./o   # a comment\n"
        "`dedup run --input s3://b/i` and ray-image-dedup run-time, then `python -m jobs.dedup run` alone\n"
    )
    assert _dedup_commands(text) == [
        ["--input", "a", "b", "--output", "/x", "--threshold", "0.9"],
        ["--input", "./p", "--output", "./o"],
        ["--input", "s3://b/i"],
    ]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--input", "a", "--no-such-flag", "1"])
