"""How busy the machine is with other programs than this node (BOINC's "suspend when non-BOINC CPU usage is above").

The load other programs put on the machine is the CPU time every core spent busy (/proc/stat's first line: user,
nice, system, irq, softirq, steal) less this process's own CPU time (every thread: the trainer's included), over the
wall time of all cores, in percent: 100 means other programs kept every core busy. Idle and iowait are not busy.
The node's own IPFS daemon is another program: serving a checked segment's checkpoints counts as load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (idle 3 and iowait 4 are not busy)
MIN_INTERVAL_S = 1.0  # a shorter sample says more about one scheduler tick than about the machine
STALE_AFTER_S = 30.0  # an older reading does not describe now: sample afresh


@dataclass(frozen=True)
class CpuReading:
    busy_s: float  # CPU seconds every core has spent busy since boot
    total_s: float  # CPU seconds every core has existed since boot (busy, idle and waiting)
    own_s: float  # this process's CPU seconds, every thread
    at: float  # time.monotonic() of the reading


def parse_proc_stat(text: str, ticks_per_s: int) -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores from /proc/stat's aggregate `cpu` line."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            jiffies = [int(x) for x in fields[1:9]]
            jiffies += [0] * (8 - len(jiffies))  # old kernels lack steal
            return sum(jiffies[i] for i in BUSY_FIELDS) / ticks_per_s, sum(jiffies) / ticks_per_s
    raise ValueError("no aggregate cpu line in /proc/stat")


def read_cpu() -> CpuReading:
    times = os.times()
    busy, total = parse_proc_stat(Path("/proc/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    return CpuReading(busy, total, times.user + times.system, time.monotonic())


def others_load_pct(before: CpuReading, after: CpuReading) -> float:
    """Percent of the whole machine's CPU that programs other than this one used between two readings."""
    total = after.total_s - before.total_s
    if total <= 0:
        return 0.0
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return min(max(others / total * 100, 0.0), 100.0)


class BusyProbe:
    """Whether other programs use more than `threshold_pct` of the machine's CPU, sampled at most once a second.

    The verdict of the last whole sample stands until the next one is due, so asking after every training step
    costs one file read a second, however short the steps."""

    def __init__(
        self,
        threshold_pct: float,
        read: Callable[[], CpuReading] = read_cpu,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= threshold_pct < 100:
            raise ValueError(f"busy threshold {threshold_pct}% is not in [0, 100)")
        self.threshold_pct = threshold_pct
        self._read, self._sleep = read, sleep
        self._last: CpuReading | None = None
        self.load_pct: float | None = None  # others' load over the last whole sample

    def busy(self) -> bool:
        now = self._read()
        if self._last is None or now.at - self._last.at > STALE_AFTER_S:
            self._last = now  # nothing recent to compare with: sample a second now
            self._sleep(MIN_INTERVAL_S)
            now = self._read()
        if now.at - self._last.at >= MIN_INTERVAL_S:
            self.load_pct = others_load_pct(self._last, now)
            self._last = now
        return self.load_pct is not None and self.load_pct > self.threshold_pct
