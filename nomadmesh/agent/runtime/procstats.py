"""Resource usage read from /proc, in the shapes of Nomad's client stats (raw_exec without cgroups).

A task's usage is that of its process tree (the task's pid and every descendant), each pid's
{MemoryStats, CpuStats} as Nomad's executor reports them when it measures pids: RSS and Swap for
memory, System Mode / User Mode / Percent for CPU. CPU figures are percentages over the time since
the previous sample of the same process (or since it started, the first time), as Nomad's CPU
tracker computes them; TotalTicks converts Percent into MHz at the node's 1000 MHz per core
(the CpuShares the node advertises).

Host stats (/v1/client/stats) come from /proc/meminfo, /proc/stat, /proc/uptime and statvfs.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

MHZ_PER_CORE = 1000.0  # what the node advertises: CpuShares = 1000 × cores
MEASURED_MEMORY = ["RSS", "Swap"]
MEASURED_CPU = ["System Mode", "User Mode", "Percent"]
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

_lock = threading.Lock()
_previous: dict[tuple[int, int], tuple[float, float, float]] = {}  # (pid, start) -> (when, user s, system s)
_previous_host: dict[str, tuple[float, ...]] = {}


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces and ')'


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _swap_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmSwap:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _uptime_s() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def pid_usage(pid: int) -> dict[str, Any] | None:
    """One pid's ResourceUsage, or None when it is gone (or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    user_s, system_s = int(fields[11]) / _TICK, int(fields[12]) / _TICK
    start = int(fields[19])
    now = time.monotonic()
    with _lock:
        prev = _previous.get((pid, start))
        _previous[(pid, start)] = (now, user_s, system_s)
        if len(_previous) > 4096:  # forget processes not sampled for a minute (most are gone)
            for key in [k for k, v in _previous.items() if now - v[0] > 60]:
                del _previous[key]
    if prev is None:  # first look: the average since the process started
        elapsed = max(_uptime_s() - start / _TICK, 1e-9)
        d_user, d_system = user_s, system_s
    else:
        elapsed = max(now - prev[0], 1e-9)
        d_user, d_system = user_s - prev[1], system_s - prev[2]
    user_pct, system_pct = 100 * d_user / elapsed, 100 * d_system / elapsed
    percent = user_pct + system_pct
    return {
        "MemoryStats": {"RSS": int(fields[21]) * _PAGE, "Cache": 0, "Swap": _swap_bytes(pid), "MappedFile": 0,
                        "Usage": 0, "MaxUsage": 0, "KernelUsage": 0, "KernelMaxUsage": 0,
                        "Measured": MEASURED_MEMORY},
        "CpuStats": {"SystemMode": system_pct, "UserMode": user_pct, "TotalTicks": percent / 100 * MHZ_PER_CORE,
                     "ThrottledPeriods": 0, "ThrottledTime": 0, "Percent": percent, "Measured": MEASURED_CPU},
        "DeviceStats": [],
    }


def empty_usage(measured: bool = True) -> dict[str, Any]:
    return {
        "MemoryStats": {"RSS": 0, "Cache": 0, "Swap": 0, "MappedFile": 0, "Usage": 0, "MaxUsage": 0,
                        "KernelUsage": 0, "KernelMaxUsage": 0, "Measured": MEASURED_MEMORY if measured else None},
        "CpuStats": {"SystemMode": 0.0, "UserMode": 0.0, "TotalTicks": 0.0, "ThrottledPeriods": 0,
                     "ThrottledTime": 0, "Percent": 0.0, "Measured": MEASURED_CPU if measured else None},
        "DeviceStats": [],
    }


def add_usage(total: dict[str, Any], other: dict[str, Any]) -> None:
    """Nomad's ResourceUsage.Add: sums, and the union of what was measured."""
    for part in ("MemoryStats", "CpuStats"):
        for key, value in other[part].items():
            if key == "Measured":
                mine = total[part][key] or []
                total[part][key] = mine + [m for m in value or [] if m not in mine]
            else:
                total[part][key] += value
    total["DeviceStats"] += other["DeviceStats"]


def task_usage(pid: int) -> dict[str, Any] | None:
    """Nomad's TaskResourceUsage of the tree rooted at `pid` (None when the task's process is gone)."""
    pids = {}
    for p in process_tree(pid):
        if (usage := pid_usage(p)) is not None:
            pids[str(p)] = usage
    if str(pid) not in pids:
        return None
    total = empty_usage()
    for usage in pids.values():
        add_usage(total, usage)
    return {"ResourceUsage": total, "Timestamp": time.time_ns(), "Pids": pids}


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0]) * 1024
    return out


def _cpu_times() -> dict[str, tuple[float, ...]]:
    """Per core: (user, system, idle, total) seconds since boot, from /proc/stat."""
    out: dict[str, tuple[float, ...]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0].startswith("cpu") and parts[0] != "cpu":
            ticks = [int(x) / _TICK for x in parts[1:]]
            user, system, idle = ticks[0] + ticks[1], ticks[2] + ticks[5] + ticks[6], ticks[3] + ticks[4]
            out[parts[0]] = (user, system, idle, float(sum(ticks[:8])))
    return out


def _disk(path: Path) -> dict[str, Any]:
    vfs = os.statvfs(path)
    size, free = vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize
    used = size - vfs.f_bfree * vfs.f_frsize
    inodes_used = vfs.f_files - vfs.f_ffree
    return {"Device": "", "Mountpoint": str(path), "Size": size, "Used": used, "Available": free,
            "UsedPercent": 100 * used / (used + free) if used + free else 0.0,
            "InodesUsedPercent": 100 * inodes_used / vfs.f_files if vfs.f_files else 0.0}


def host_stats(alloc_dir: Path) -> dict[str, Any]:
    """Nomad's HostStats: memory, per-core CPU percentages since the previous call, the alloc dir's disk."""
    mem = _meminfo()
    total, available = mem.get("MemTotal", 0), mem.get("MemAvailable", mem.get("MemFree", 0))
    now = _cpu_times()
    cpus = []
    with _lock:
        for name, (user, system, idle, all_) in sorted(now.items(), key=lambda kv: int(kv[0][3:])):
            p_user, p_system, p_idle, p_all = _previous_host.get(name, (0.0, 0.0, 0.0, 0.0))
            span = max(all_ - p_all, 1e-9)
            u, s, i = 100 * (user - p_user) / span, 100 * (system - p_system) / span, 100 * (idle - p_idle) / span
            cpus.append({"CPU": name, "User": u, "System": s, "Idle": i, "TotalPercent": u + s,
                         "TotalTicks": (u + s) / 100 * MHZ_PER_CORE})
        _previous_host.update(now)
    alloc_disk = _disk(alloc_dir)
    return {
        "Memory": {"Total": total, "Available": available, "Used": total - available,
                   "Free": mem.get("MemFree", 0)},
        "CPU": cpus,
        "DiskStats": [alloc_disk],
        "AllocDirStats": alloc_disk,
        "DeviceStats": [],
        "Uptime": int(_uptime_s()),
        "Timestamp": time.time_ns(),
        "CPUTicksConsumed": sum(c["TotalTicks"] for c in cpus),
    }
