"""The meters the timed phases read, in the client process: percentiles, a process tree's memory, the CPU
time of every process on a call's path, and the slope of memory over calls."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def worker_tree_memory(pid: int) -> dict[str, float]:
    """Summed RSS and PSS (MiB) of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {"rss_mib": float("nan"), "pss_mib": float("nan"), "processes": 0}
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mib": rss / 2**20, "pss_mib": pss / 2**20, "processes": len(procs)}


def worker_tree_rss(pid: int) -> float:
    """Summed RSS (MiB) of a process tree: the cheap reading (no smaps), for frequent samples."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def slope_per_1000(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (calls, MiB) points, in MiB per 1,000 calls."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx * 1000 if sxx else 0.0


class CpuMeter:
    """CPU seconds spent by the processes on the path, between two snapshots.

    With ``relay_pid`` (the outbox row) the relay and every PostgreSQL process are on the path too; on a
    shared machine the latter includes other people's queries.
    """

    def __init__(self, worker_pid: int | None, receiver_pid: int, relay_pid: int | None = None) -> None:
        import psutil

        self.groups: dict[str, list] = {"receiver": [psutil.Process(receiver_pid)]}
        if worker_pid:
            root = psutil.Process(worker_pid)
            self.groups["worker"] = [root, *root.children(recursive=True)]
        if relay_pid:
            self.groups["relay"] = [psutil.Process(relay_pid)]
            self.groups["postgres"] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        # The broker's VM, not the short-lived VMs of rabbitmqctl runs (also named beam.smp).
        self.groups["rabbitmq"] = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "beam.smp" and "rabbit" in (p.info["cmdline"] or [])
        ]
        self.groups["redis"] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]

    def snapshot(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, procs in self.groups.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
                if name == "worker":
                    out["worker_system"] = out.get("worker_system", 0.0) + times.system
            out[name] = total
        cpu = psutil.cpu_times()
        out["machine"] = sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)
        return out

    @staticmethod
    def per_call_ms(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        return {name: (after[name] - before[name]) / n * 1000 for name in before}
