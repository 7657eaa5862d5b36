"""`ray job submit` path: a head node started with `ray start --head` on 127.0.0.1, a job submitted
with the Ray Job SDK (JobSubmissionClient) running jobs/train.py with jobs/configs/tiny_dist.yaml
(2 workers, ZeRO-2), images streamed from the local S3 server (SeaweedFS on 127.0.0.1, the session
fixture of conftest.py) and checkpoints + serving export written back to it; then the job's logs.

The cluster's processes are found by its own temp dir and stopped by PID (`ray stop` would also
stop other Ray instances on this machine)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from crossnet_dist.ports import free_ports
from tests.dist_fixtures import LOCAL_ENV, off_loopback_sockets
from tests.helpers import REPO, write_tiny_dataset

pytestmark = pytest.mark.slow


def processes_under(marker: str) -> list[int]:
    """Processes whose command line names `marker` or that hold a file under it open: Ray renames its
    agents' processes (ray::DashboardAgent), so only their open log files tie them to their node."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace") or any(
                    marker in os.readlink(fd) for fd in (proc / "fd").iterdir()
                ):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def ray_errors(temp_dir: str) -> str:
    """The lines of the node's logs that say why it failed (e.g. a port it could not bind)."""
    lines = []
    for log in sorted(Path(temp_dir).glob("session_*/logs/*")):
        if log.is_file():
            text = log.read_text(errors="replace").splitlines()
            lines += [f"{log.name}: {line}" for line in text if "rror" in line or "Failed" in line][-5:]
    return "\n".join(lines[-40:])


@contextmanager
def started_head(python: Path):
    """`ray start --head` on 127.0.0.1 run by `python`; yields the dashboard URL, stops the node's processes."""
    temp_dir = tempfile.mkdtemp(prefix="rayjob", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    names = ("port", "dashboard", "agent", "agent_grpc", "metrics", "client")
    ports = dict(zip(names, free_ports(len(names))))
    env = {**os.environ, **LOCAL_ENV, "PATH": f"{python.parent}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    try:
        started = subprocess.run([
            str(python), "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
            f"--port={ports['port']}", "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports['dashboard']}", f"--dashboard-agent-listen-port={ports['agent']}",
            f"--dashboard-agent-grpc-port={ports['agent_grpc']}", f"--metrics-export-port={ports['metrics']}",
            f"--ray-client-server-port={ports['client']}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
        ], env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, f"ray start --head failed: {started.stderr[-2000:]}\n{ray_errors(temp_dir)}"
        yield f"http://127.0.0.1:{ports['dashboard']}"
    finally:  # also after a failed start: a half-started head (GCS, dashboard) is stopped too
        pids = processes_under(temp_dir)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 10
            while time.time() < deadline and processes_under(temp_dir):
                time.sleep(0.5)
            pids = processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not pids, f"Ray processes left: {pids}"


@pytest.fixture(scope="module")
def head_node():
    with started_head(Path(sys.executable)) as url:
        yield url


def submit_training(client, s3_server, s3_prefix, local_data: Path, run: str, runtime_env: dict | None = None) -> str:
    """jobs/train.py (tiny_dist: 2 workers, ZeRO-2) on `local_data` uploaded to the bucket; returns the job id."""
    fs = s3_server.filesystem()
    fs.put(str(local_data), f"{s3_prefix[len('s3://'):]}/{run}-data", recursive=True)
    entrypoint = " ".join([
        sys.executable, "jobs/train.py", "jobs/configs/tiny_dist.yaml", f"data.root={s3_prefix}/{run}-data",
        "data.batch_size=2", f"dist.storage_path={s3_prefix}/runs", f"dist.run_name={run}", "train.max_steps=4",
        "train.log_every=1", "dist.checkpoint_every=2",
    ])
    return client.submit_job(entrypoint=entrypoint, runtime_env={
        "working_dir": str(REPO), "excludes": [".venv/", "runs/", ".git/", "*.pt"],
        "env_vars": {"DS_ACCELERATOR": "cpu", **s3_server.env()}, **(runtime_env or {}),
    })


def wait_for_job(client, job_id: str, timeout_s: float = 240):
    from ray.job_submission import JobStatus

    deadline = time.time() + timeout_s
    status = client.get_job_status(job_id)
    while status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED} and time.time() < deadline:
        if status == JobStatus.RUNNING:
            assert not off_loopback_sockets(), off_loopback_sockets()
        time.sleep(2)
        status = client.get_job_status(job_id)
    return status, client.get_job_logs(job_id)


@pytest.mark.timeout(300)
def test_a_job_submitted_with_the_job_sdk_trains_2_workers_zero2_from_s3_and_logs_its_steps(
        head_node, s3_server, s3_prefix, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    local = write_tiny_dataset(tmp_path / "data", n_train=8, n_test=1, size=36)
    fs = s3_server.filesystem()
    bucket_prefix = s3_prefix[len("s3://"):]
    client = JobSubmissionClient(head_node)
    status, logs = wait_for_job(client, submit_training(client, s3_server, s3_prefix, local, "job"))
    assert status == JobStatus.SUCCEEDED, logs[-5000:]
    for step in range(1, 5):
        assert f"[crossnet] step {step}/4" in logs, logs[-5000:]
    assert "done: run job, 4 steps on 2 workers (ZeRO-2)" in logs
    assert f"serving checkpoint: {s3_prefix}/runs/job/generator.pt" in logs
    assert "data/images_read = 32.0000" in logs  # 4 steps x 2 workers x (2 A + 2 B), counted by the loader
    fs.invalidate_cache()
    run = f"{bucket_prefix}/runs/job"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(run) if "/step_" in p) == ["step_00000002", "step_00000004"]
    assert fs.ls(f"{run}/tb"), "TensorBoard events not copied to storage"
    fs.get(f"{run}/generator.pt", str(tmp_path / "generator.pt"))
    from crossnet_dist.checkpoints.translator import load_translator

    method, cfg = load_translator(tmp_path / "generator.pt")
    assert cfg.dist.zero_stage == 2 and cfg.model.image_size == 32


def test_a_job_on_a_python_without_the_stack_fails_in_one_line_naming_what_is_missing(tmp_path):
    """The job's driver runs in the cluster's Python: here the interpreter this project's venv was made
    from, which has none of the stack (as a `ray start` outside the venv would)."""
    import sysconfig

    base = Path(sys.base_prefix) / "bin" / f"python{sysconfig.get_python_version()}"
    probe = subprocess.run([str(base), "-c", "import importlib.util as u; print(u.find_spec('omegaconf') is None)"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        pytest.skip(f"{base} has the stack installed: no bare interpreter to test with")
    for job in ("train", "tune"):
        result = subprocess.run([str(base), f"jobs/{job}.py", "jobs/configs/tiny_dist.yaml"], cwd=REPO,
                                env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
                                capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith(f"crossnet {job} job: error: this Python ({base}) cannot run crossnet-dist")
        assert "omegaconf" in lines[0] and "torch" in lines[0] and '"pip": "requirements.txt"' in lines[0]


@pytest.mark.timeout(420)
def test_a_bare_ray_cluster_runs_the_job_with_the_documented_runtime_env(s3_server, s3_prefix, tmp_path):
    """A head started by a Python that has Ray but none of the stack (tests/bare_ray.py) runs the
    job when the entrypoint and the runtime_env's py_executable name a Python that has it (jobs/train.py's
    docstring and the README give this recipe)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from tests.bare_ray import make_bare_ray_python

    bare = make_bare_ray_python(tmp_path / "bare")
    probe = subprocess.run([str(bare), "-c", "import ray, importlib.util as u; print(u.find_spec('omegaconf'))"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "None", probe.stderr[-2000:]  # Ray, and not the stack
    local = write_tiny_dataset(tmp_path / "data", n_train=8, n_test=1, size=36)
    with started_head(bare) as url:
        client = JobSubmissionClient(url)
        job_id = submit_training(client, s3_server, s3_prefix, local, "bare", {"py_executable": sys.executable})
        status, logs = wait_for_job(client, job_id)
    assert status == JobStatus.SUCCEEDED, logs[-5000:]
    assert "done: run bare, 4 steps on 2 workers (ZeRO-2)" in logs
