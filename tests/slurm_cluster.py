"""A throwaway single-node SLURM on this machine, for the opt-in `slurm` tests.

Real cluster software, nothing mocked: Debian's `slurm-wlm` and `munge` (installed with apt-get
when missing), one `munged`, one `slurmctld` and one `slurmd`, all with their state, sockets, logs
and a generated `slurm.conf` in a fresh temporary folder, on free ports, so nothing under /etc or
/run is touched and a SLURM elsewhere on the machine is not disturbed. The daemons run in the
foreground as children of the test process and are stopped by their process ids.

The one system path used: /etc/slurm/slurm.conf becomes a link to the generated file while the
cluster runs (and is removed afterwards). Client commands would find the cluster through
`SLURM_CONF` alone, but the Snakemake SLURM plugin strips every `SLURM_*` variable before its
`srun` inside a job, and `srun` then reads the default path. If that path already exists (a SLURM
configured on this machine), the test is skipped rather than touching it.

    with local_slurm() as cluster:      # pytest.skip(...) with the reason when it cannot start
        subprocess.run(["sbatch", ...], env=cluster.env)
"""
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "local"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
START_TIMEOUT_S = 60


@dataclass
class Cluster:
    """What a test needs from the running cluster."""

    state_dir: Path
    conf: Path
    partition: str
    cpus: int
    memory_mb: int
    env: dict

    def run(self, *command: str) -> str:
        """A SLURM client command against this cluster; its stdout (an error names the command)."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


def _missing_commands() -> list[str]:
    return [name for name in (*DAEMONS, "sbatch", "squeue", "sinfo") if shutil.which(name) is None]


def ensure_installed() -> None:
    """apt-get install the packages if a daemon or client is missing; skip the test if impossible."""
    if not _missing_commands():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"SLURM is not installed ({', '.join(_missing_commands())} missing) and "
                    "apt-get as root is unavailable to install slurm-wlm and munge")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")
    if _missing_commands():
        pytest.skip(f"still missing after installing {PACKAGES}: {', '.join(_missing_commands())}")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _machine() -> tuple[int, int]:
    """(CPUs, memory in MB) as slurmd itself detects them, so the node registers as configured."""
    fields = dict(item.split("=", 1) for item in
                  subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout.split()
                  if "=" in item)
    return int(fields.get("CPUs", os.cpu_count() or 1)), int(fields.get("RealMemory", 1024))


def write_slurm_conf(state: Path, munge_socket: Path, cpus: int, memory_mb: int) -> Path:
    """A minimal one-node, one-partition configuration without accounting storage."""
    node = socket.gethostname()
    ctld_port, slurmd_port = _free_ports(2)
    lines = {
        "ClusterName": "gradiendtest",
        "SlurmctldHost": f"{node}(127.0.0.1)",
        "SlurmctldPort": ctld_port,
        "SlurmdPort": slurmd_port,
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket}",
        "StateSaveLocation": state / "ctld",
        "SlurmdSpoolDir": state / "slurmd",
        "SlurmctldPidFile": state / "slurmctld.pid",
        "SlurmdPidFile": state / "slurmd.pid",
        "SlurmctldLogFile": state / "slurmctld.log",
        "SlurmdLogFile": state / "slurmd.log",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "MpiDefault": "none",
        "ReturnToService": 2,
        # squeue must still list a finished job when the Snakemake plugin polls its status.
        "MinJobAge": 600,
        "SchedulerParameters": "sched_interval=1",
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    text += (f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN\n"
             f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP\n")
    conf = state / "slurm.conf"
    conf.write_text(text)
    return conf


def _prepare_munge(state: Path) -> Path:
    """A key and a socket folder owned by the munge user (munged refuses a looser key, and a
    socket folder that not everyone may traverse)."""
    folder = state / "munge"
    folder.mkdir()
    folder.chmod(0o711)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    user = pwd.getpwnam("munge")
    for path in (folder, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    return folder


def _wait_until(ready, what: str, logs: list[Path], processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            break
        if ready():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n" + log.read_text()[-1500:] for log in logs if log.exists())
    raise RuntimeError(f"local SLURM: {what} not ready after {START_TIMEOUT_S} s\n{tails}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """Terminate each daemon we started, by its own process id, youngest first."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def local_slurm():
    """Install (if needed) and start munge + slurmctld + slurmd; yield a Cluster; stop them."""
    ensure_installed()
    if os.geteuid() != 0:
        pytest.skip("the local SLURM runs its daemons as root (SlurmUser=root); run the test as root")
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        pytest.skip(f"{SYSTEM_CONF} exists: a SLURM is configured on this machine; not replacing it")
    # mkdtemp is 0700 and root-owned: open it so the munge user can reach its own subfolder.
    state = Path(tempfile.mkdtemp(prefix="gradiend-slurm-"))
    state.chmod(0o755)
    munge_dir = _prepare_munge(state)
    munge_socket = munge_dir / "munge.socket"
    cpus, memory_mb = _machine()
    conf = write_slurm_conf(state, munge_socket, cpus, memory_mb)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) and k != "SLURM_CONF"]:
        del env[key]  # a surrounding SLURM job's settings must not leak into this cluster
    logs = [state / "munged.log", state / "slurmctld.log", state / "slurmd.log"]
    processes: list[subprocess.Popen] = []
    munge_log = logs[0].open("w")  # munged in the foreground logs to stderr
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)
    try:
        munge_user = pwd.getpwnam("munge")
        processes.append(subprocess.Popen(
            ["munged", "--foreground", f"--socket={munge_socket}", f"--key-file={munge_dir / 'munge.key'}",
             f"--pid-file={munge_dir / 'munged.pid'}", f"--seed-file={munge_dir / 'munged.seed'}"],
            user=munge_user.pw_uid, group=munge_user.pw_gid, stdin=subprocess.DEVNULL,
            stdout=munge_log, stderr=subprocess.STDOUT))
        _wait_until(munge_socket.exists, "munged", logs, processes)
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            processes.append(subprocess.Popen([*daemon, "-f", str(conf)], env=env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))

        def node_idle() -> bool:
            done = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True)
            return done.returncode == 0 and done.stdout.strip() == "idle"

        _wait_until(node_idle, "the node (sinfo state idle)", logs, processes)
        yield Cluster(state, conf, PARTITION, cpus, memory_mb, env)
    finally:
        _stop(processes)
        munge_log.close()
        SYSTEM_CONF.unlink()
        shutil.rmtree(state, ignore_errors=True)
