"""A real two-node Slurm cluster on 127.0.0.1, started from a temp dir and torn down afterwards.

Recipe (../shared/notes/platform-facts.md): ``munged`` on a private socket and key, a ``slurm.conf``
with two logical nodes ``n1``/``n2`` on distinct ``slurmd`` ports, ``slurmctld``, ``slurmd -N n1``,
``slurmd -N n2``, all in the foreground as children of this process so teardown kills exactly them.
Ports are picked free at start, so two test runs on one machine do not collide.
Needs root and the Debian packages ``slurmctld slurmd slurm-client munge`` (scripts/system_deps.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "srun", "scancel")
REPO = Path(__file__).resolve().parents[2]


def missing_binaries() -> list[str]:
    """Names of the Slurm/munge programs that are not on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [b for b in BINARIES if shutil.which(b, path=path) is None]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ensure_hosts_entry(names: tuple[str, ...] = ("n1", "n2")) -> None:
    """Make the node names resolve to 127.0.0.1 (best effort; never removed: other runs may use it)."""
    hosts = Path("/etc/hosts")
    try:
        if all(socket.gethostbyname(n) == "127.0.0.1" for n in names):
            return
    except OSError:
        pass
    try:
        hosts.write_text(hosts.read_text().rstrip("\n") + f"\n127.0.0.1 {' '.join(names)}\n")
    except OSError:
        pass  # the launch scripts use the node's NodeAddr, so resolution is only a convenience


@dataclass
class SlurmCluster:
    """Handle to the running cluster: the environment clients need, and job helpers."""

    root: Path
    conf: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF pointing at this cluster (pass it to sbatch/scontrol)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        # Variables of an enclosing job or launcher would leak into the test jobs (sbatch --export=ALL).
        for k in list(env):
            if k.startswith("SLURM_") and k != "SLURM_CONF" or k in (
                    "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(k)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        """Run a Slurm client command against this cluster and return stdout."""
        out = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def sbatch(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Submit a batch job; returns its id."""
        full = self.env | (env or {})
        out = subprocess.run(["sbatch", "--parsable", *args], env=full, capture_output=True, text=True,
                             timeout=60, cwd=cwd)
        if out.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ExitCode, ...)."""
        text = self.run("scontrol", "show", "job", "-o", job_id)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait(self, job_id: str, states: tuple[str, ...] = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                          "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"),
             timeout: float = 180, poll: float = 0.5) -> dict[str, str]:
        """Poll until the job reaches one of ``states``; returns the job record (TimeoutError otherwise)."""
        end = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < end:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(poll)
        raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {info.get('JobState')} "
                           f"({info.get('Reason')})")

    def preempt_and_requeue(self, job_id: str, log: Path, marker: str, timeout: float = 240) -> None:
        """Once ``marker`` shows in ``log``: ``scancel --signal=USR1``, wait for the requeue, release the job.

        Fails the test (AssertionError, log tail attached) when the job ends instead of being requeued.
        Slurm holds a requeued job ~2 min before it may start again; ``StartTime=now`` releases it once
        the nodes have finished the old instance.
        """
        end = time.monotonic() + timeout

        def text() -> str:
            return log.read_text() if log.exists() else ""

        while marker not in text() and time.monotonic() < end:
            assert self.job(job_id)["JobState"] in ("PENDING", "RUNNING", "CONFIGURING"), text()[-4000:]
            time.sleep(0.2)
        assert marker in text(), f"job {job_id}: {marker!r} not in its log after {timeout} s: {text()[-4000:]}"
        self.run("scancel", "--signal=USR1", job_id)
        while time.monotonic() < end:
            info = self.job(job_id)
            if int(info.get("Restarts", "0")) >= 1 and info["JobState"] == "PENDING":
                break
            assert info["JobState"] not in ("COMPLETED", "FAILED", "CANCELLED"), text()[-4000:]
            time.sleep(0.3)
        else:
            raise AssertionError(f"job {job_id} was not requeued: {text()[-4000:]}")
        # slurmd revokes the old instance's credential with a 1-second timestamp: a new instance
        # allocated within that second is killed ("Job credential revoked", JobState FAILED). Slurm's
        # own hold avoids this; releasing early must wait until the nodes are clean and a second later.
        requeued = time.monotonic()
        self.wait_idle(timeout=max(5.0, end - time.monotonic()))
        time.sleep(max(0.0, requeued + 2.0 - time.monotonic()))
        self.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")

    def daemon_log(self, job_id: str, lines: int = 40) -> str:
        """The last ``lines`` lines of the slurmctld/slurmd logs that mention ``job_id`` (for failure messages)."""
        pat = re.compile(rf"JobId={job_id}\b|batch job {job_id}\b|job[ _]id[= ]{job_id}\b|StepId={job_id}\.|\[{job_id}\.")
        out = []
        for name in ("slurmctld.log", "slurmd-n1.log", "slurmd-n2.log"):
            path = self.root / "log" / name
            if path.exists():
                hits = [ln for ln in path.read_text(errors="replace").splitlines() if pat.search(ln)]
                out += [f"--- {name}"] + hits[-lines:]
        return "\n".join(out)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until both nodes are idle (after start, or between tests)."""
        end = time.monotonic() + timeout
        out = ""
        while time.monotonic() < end:
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"Slurm daemon(s) exited: {dead}; logs in {self.root / 'log'}")
            try:
                out = self.run("sinfo", "-h", "-N", "-o", "%N %t", timeout=10)
            except (RuntimeError, subprocess.TimeoutExpired):
                out = ""
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if states.get("n1") == "idle" and states.get("n2") == "idle":
                return
            time.sleep(0.3)
        raise TimeoutError(f"Slurm nodes not idle after {timeout} s: {out!r}; logs in {self.root / 'log'}")

    def stop(self) -> None:
        """Cancel this cluster's jobs, then kill the daemons this object started (by pid) and wait for them."""
        if self.procs and all(p.poll() is None for p in self.procs):
            try:
                jobs = self.run("squeue", "-h", "-o", "%i", timeout=10).split()
                if jobs:
                    self.run("scancel", *jobs, check=False, timeout=10)
                    end = time.monotonic() + 20
                    while self.run("squeue", "-h", "-o", "%i", timeout=10).split() and time.monotonic() < end:
                        time.sleep(0.3)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs.clear()


def _write_conf(root: Path, ctld_port: int, node_ports: list[int], cpus: int) -> Path:
    host = socket.gethostname()
    conf = root / "slurm.conf"
    nodes = "\n".join(
        f"NodeName=n{i + 1} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} RealMemory=2000"
        for i, port in enumerate(node_ports))
    conf.write_text(f"""\
ClusterName=lwsltest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ReturnToService=2
MinJobAge=600
KillWait=5
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
    return conf


def start_cluster(root: Path, cpus: int = 2, timeout: float = 60) -> SlurmCluster:
    """Start munged, slurmctld and two slurmd under ``root``; returns once both nodes are idle."""
    root = Path(root)
    for d in ("state", "spool/n1", "spool/n2", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    ensure_hosts_entry()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))  # a private key: no dependence on /etc/munge ownership
    key.chmod(0o400)
    ctld_port, p1, p2 = _free_ports(3)
    conf = _write_conf(root, ctld_port, [p1, p2], cpus)
    cluster = SlurmCluster(root=root, conf=conf)
    log = root / "log"

    def spawn(name: str, *cmd: str) -> None:
        out = open(log / f"{name}.out", "wb")
        cluster.procs.append(subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT,
                                              env=cluster.env, start_new_session=True))

    try:
        spawn("munged", "munged", "-F", "--force", f"--socket={root}/munge.sock", f"--key-file={key}",
              f"--pid-file={root}/munged.pid", f"--log-file={log}/munged.log", f"--seed-file={root}/munged.seed")
        end = time.monotonic() + 10
        while not (root / "munge.sock").exists() and time.monotonic() < end:
            time.sleep(0.05)
        spawn("slurmctld", "slurmctld", "-D", "-i", "-f", str(conf))
        spawn("slurmd-n1", "slurmd", "-D", "-f", str(conf), "-N", "n1")
        spawn("slurmd-n2", "slurmd", "-D", "-f", str(conf), "-N", "n2")
        cluster.wait_idle(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
