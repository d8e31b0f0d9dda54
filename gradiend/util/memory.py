"""How much memory there is: this process's, the host's (inside its cgroup, as a SLURM job sees it) and an
accelerator's. Each answer is in bytes, None when this machine cannot tell."""
from __future__ import annotations

from pathlib import Path

HOST = "cpu"
"""The host's memory pool: the process, and a model placed on the CPU (or on Apple's unified-memory MPS)."""

_CGROUP_FILES = (("memory.max", "memory.current"),  # cgroup v2
                 ("memory.limit_in_bytes", "memory.usage_in_bytes"))  # cgroup v1
_NO_LIMIT = 1 << 60
"""cgroup v1 writes 'no limit' as a huge number near 2**63."""


def _status_kib(path: str, key: str) -> int | None:
    """The ``key:`` line of a ``/proc`` status-like file (kB values) in bytes; None when unreadable."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def process_bytes() -> int:
    """Resident memory of this process now (the interpreter with torch and transformers loaded)."""
    rss = _status_kib("/proc/self/status", "VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return 0


def _cgroup_room(root: Path) -> int | None:
    """What this process's memory cgroup still allows (its limit less its usage); None without a limit.
    A SLURM job's ``--mem`` is such a limit, and ``MemAvailable`` does not see it."""
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= _NO_LIMIT:
            return None
        return max(0, int(limit) - usage)
    return None


def _own_cgroups() -> list[Path]:
    """The folders of this process's memory cgroup and of every cgroup above it (a SLURM job's limit sits
    on the job's cgroup, its steps run in cgroups below): v1's memory controller, v2's unified tree."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            root = Path("/sys/fs/cgroup")
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
        else:
            continue
        own = root / path.lstrip("/")
        folders += [own, *(parent for parent in own.parents if parent.is_relative_to(root))]
    return folders


def host_available_bytes(cgroup: Path | None = None) -> int | None:
    """Memory the host can give a new allocation now: ``MemAvailable``, or less where this process's
    cgroup allows less; None when unknown."""
    available = _status_kib("/proc/meminfo", "MemAvailable")
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except ImportError:
            return None
    rooms = [room for folder in ([cgroup] if cgroup else _own_cgroups()) if (room := _cgroup_room(folder)) is not None]
    return min([available, *rooms])


def accelerator_free_bytes(device: str, held_here: bool = False) -> int | None:
    """Free memory of a CUDA or XPU ``device`` (``"cuda:1"``); None when this machine has no such device.

    ``held_here``: the run happens in this process, so what its allocator already holds there counts as
    free too. Otherwise the question is asked in a child process: a GPU context opened here would stay
    for the life of this process (Snakemake's own, for a whole workflow) and hold GPU memory its jobs need."""
    if not held_here:
        from gradiend.util.child import call_in_child

        try:
            return call_in_child("gradiend.util.memory.accelerator_free_bytes", device=device, held_here=True)
        except RuntimeError:
            return None
    import torch

    kind, _, index = device.partition(":")
    backend = getattr(torch, kind, None)
    if backend is None or not hasattr(backend, "mem_get_info") or not backend.is_available():
        return None
    number = int(index or 0)
    if number >= backend.device_count():
        return None
    free = int(backend.mem_get_info(number)[0])
    return free + int(backend.memory_reserved(number))
