"""Host figures for a monitoring sample: CPU, memory, disk, network.

psutil when it is installed (the ``local`` extra); otherwise Linux's ``/proc``
(AWS Lambda has no psutil in its layer: there the figures are those of the
function's own micro-VM, which says little about the platform; ``source`` tells
which was used); elsewhere they are absent (None).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _proc_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies from /proc/stat's first line."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [float(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def _proc_memory() -> dict[str, Any] | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    info = {}
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[name] = int(parts[0]) * 1024
    total = info.get("MemTotal")
    available = info.get("MemAvailable", info.get("MemFree"))
    if not total or available is None:
        return None
    used = total - available
    return {"total_bytes": total, "used_bytes": used, "percent": round(100 * used / total, 1)}


def _proc_network() -> tuple[int, int] | None:
    """(bytes sent, bytes received) over every interface but loopback."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None
    sent = received = 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        received += int(fields[0])
        sent += int(fields[8])
    return sent, received


def _disk(path: Path) -> dict[str, Any] | None:
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    total = stats.f_blocks * stats.f_frsize
    free = stats.f_bavail * stats.f_frsize
    used = total - stats.f_bfree * stats.f_frsize
    return {
        "path": str(path),
        "total_bytes": total,
        "used_bytes": used,
        "percent": round(100 * used / (used + free), 1) if used + free else None,
    }


class HostSampler:
    """Host figures, with CPU and network as rates since the previous call.

    Parameters
    ----------
    disk_path:
        The file system to report (the data directory's).
    """

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._psutil = _psutil()
        self.source: str | None = (
            "psutil" if self._psutil else ("proc" if Path("/proc/stat").exists() else None)
        )
        self._cpu: tuple[float, float] | None = None
        self._net: tuple[float, int, int] | None = None
        if self._psutil is not None:
            self._psutil.cpu_percent(interval=None)  # the first call only starts the count
        self.sample()

    def _cpu_percent(self) -> float | None:
        if self._psutil is not None:
            return float(self._psutil.cpu_percent(interval=None))
        times = _proc_cpu_times()
        if times is None:
            return None
        previous, self._cpu = self._cpu, times
        if previous is None or times[1] <= previous[1]:
            return None
        return round(100 * (times[0] - previous[0]) / (times[1] - previous[1]), 1)

    def _memory(self) -> dict[str, Any] | None:
        if self._psutil is not None:
            vm = self._psutil.virtual_memory()
            return {
                "total_bytes": int(vm.total),
                "used_bytes": int(vm.total - vm.available),
                "percent": float(vm.percent),
            }
        return _proc_memory()

    def _network(self, now: float) -> dict[str, Any] | None:
        if self._psutil is not None:
            counters = self._psutil.net_io_counters()
            totals: tuple[int, int] | None = (int(counters.bytes_sent), int(counters.bytes_recv))
        else:
            totals = _proc_network()
        if totals is None:
            return None
        previous, self._net = self._net, (now, *totals)
        sent_per_s = recv_per_s = None
        if previous is not None and now > previous[0]:
            elapsed = now - previous[0]
            sent_per_s = round(max(0, totals[0] - previous[1]) / elapsed, 1)
            recv_per_s = round(max(0, totals[1] - previous[2]) / elapsed, 1)
        return {
            "bytes_sent": totals[0],
            "bytes_recv": totals[1],
            "sent_per_s": sent_per_s,
            "recv_per_s": recv_per_s,
        }

    def sample(self) -> dict[str, Any]:
        """The ``host`` part of a sample."""
        now = time.monotonic()
        try:
            load: float | None = round(os.getloadavg()[0], 2)
        except (OSError, AttributeError):
            load = None
        return {
            "source": self.source,
            "cpu_percent": self._cpu_percent(),
            "cpu_count": os.cpu_count(),
            "load_1m": load,
            "memory": self._memory(),
            "disk": _disk(self.disk_path),
            "network": self._network(now),
        }
