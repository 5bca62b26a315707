"""A volunteer's say over its machine (BOINC's computing preferences): pause and resume, a duty cycle, hours.

- **Pause** is a file in the node's work directory (`shardwork node pause` writes it, `resume` removes it), so the
  command reaches a running daemon without a socket or a signal. A paused node claims nothing and holds its
  current training between two steps; it still answers bisection games, whose moves are due within a verify
  window whatever the volunteer wants. The lease of a held task keeps running: a pause that outlasts it
  loses the task (and its lease penalty) by the volunteer's own choice.
- **Duty cycle** d: after each step the node rests (1/d − 1) × that step's time, so training takes a fraction d
  of the wall clock. Threads cannot be capped instead: the spec fixes them, because they change the numerics.
- **Hours**: new tasks are claimed only within the window (local time); a task under way is finished, since
  stopping it would only spend its lease.
- **Busy** (node.busy): while other programs use more than a threshold of the machine's CPU, the node claims
  nothing and holds its current training between two steps, as when paused; unlike a pause, the hold ends when
  the lease needs the rest of its time, so a busy machine never costs the volunteer a lease penalty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from node.busy import BusyProbe

PAUSE_FILE = "paused"


def pause_file(work_dir: Path) -> Path:
    return work_dir / PAUSE_FILE


def pause(work_dir: Path, reason: str = "") -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    pause_file(work_dir).write_text(reason + "\n")


def resume(work_dir: Path) -> bool:
    """Removes the pause; False when the node was not paused."""
    try:
        pause_file(work_dir).unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Hours:
    """Whole hours of local time, start inclusive, end exclusive; a window may wrap midnight (22-7)."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Hours:
        try:
            start, end = (int(part) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"{text!r} is not hours: expected START-END in whole hours, e.g. 22-7") from None
        if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
            raise ValueError(f"{text!r} is not a window: hours run 0-24, start and end must differ")
        return cls(start, end)

    def contains(self, hour: int) -> bool:
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end  # wraps midnight

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class Controls:
    work_dir: Path
    duty_cycle: float = 1.0  # the fraction of wall time spent training
    hours: Hours | None = None
    busy_probe: BusyProbe | None = None  # hold while other programs load the machine (None: never)

    def __post_init__(self) -> None:
        if not 0 < self.duty_cycle <= 1:
            raise ValueError(f"duty cycle {self.duty_cycle} is not in (0, 1]")

    def paused(self) -> bool:
        return pause_file(self.work_dir).exists()

    def busy(self) -> bool:
        return self.busy_probe is not None and self.busy_probe.busy()

    def outside_hours(self, now: dt.datetime | None = None) -> bool:
        return self.hours is not None and not self.hours.contains((now or dt.datetime.now()).hour)

    def rest_after(self, step_seconds: float) -> float:
        """How long to rest after a step that took `step_seconds`, so training keeps to the duty cycle."""
        return step_seconds * (1 / self.duty_cycle - 1)
