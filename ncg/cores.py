"""How many of this process's cores other processes keep busy, measured from ``/proc/stat``.

The kernel counts, per CPU, the time spent busy (user, nice, system, irq, softirq, steal) in
clock ticks. Over a window, the busy time of the CPUs this process may run on, minus this
process's own CPU time (``time.process_time``: all of its threads), is the work of everything
else; divided by the window's length it is a number of cores. :mod:`ncg.threads` gives torch
the cores that remain.

Only Linux has ``/proc/stat``; elsewhere :meth:`CoreUse.sample` returns ``None`` and callers
keep torch's setting. CPU quotas (a container's ``cpu.max``) are not seen: only the CPUs the
process may run on (``os.sched_getaffinity``).

Examples
--------
>>> use = CoreUse()
>>> first = use.sample()  # the first call starts the window
>>> first is None
True
>>> busy = use.sample()   # cores other processes used since the previous call
>>> busy is None or 0.0 <= busy <= use.num_cpus
True
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CoreUse", "available_cpus", "busy_ticks"]

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
"""Columns of a ``cpuN`` line of ``/proc/stat`` that count busy time: user, nice, system, irq,
softirq, steal (guest time is already inside user)."""


def available_cpus() -> list[int]:
    """The CPUs this process may run on (all of ``os.cpu_count()`` where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def busy_ticks(text: str, cpus: list[int]) -> int | None:
    """Busy clock ticks of ``cpus`` summed, from the text of ``/proc/stat`` (``None`` when a CPU
    has no line).

    >>> busy_ticks("cpu  9 0 9 90 0 0 0 0\\ncpu0 4 0 5 40 0 0 0 0\\ncpu1 5 0 4 50 1 0 0 2\\n", [0, 1])
    20
    """
    ticks: dict[int, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            fields = rest.split()
            ticks[int(name[3:])] = sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
    if any(cpu not in ticks for cpu in cpus):
        return None
    return sum(ticks[cpu] for cpu in cpus)


class CoreUse:
    """Cores that other processes keep busy, averaged over the time between two samples.

    Parameters
    ----------
    stat : path
        The kernel's CPU counters (``/proc/stat``); a file that cannot be read makes every
        sample ``None``.
    clock, own : callables
        Wall seconds and this process's CPU seconds (``time.monotonic``, ``time.process_time``);
        replaced in tests.
    """

    def __init__(self, stat: str | os.PathLike[str] = "/proc/stat", clock: Callable[[], float] = time.monotonic,
                 own: Callable[[], float] = time.process_time) -> None:
        self.stat, self.clock, self.own = Path(stat), clock, own
        self.cpus = available_cpus()
        self.tick_seconds = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
        self._last: tuple[float, float, int] | None = None

    @property
    def num_cpus(self) -> int:
        """The CPUs this process may run on."""
        return len(self.cpus)

    def _read(self) -> tuple[float, float, int] | None:
        try:
            ticks = busy_ticks(self.stat.read_text(), self.cpus)
        except OSError:
            return None
        return None if ticks is None else (self.clock(), self.own(), ticks)

    def sample(self) -> float | None:
        """Cores other processes used since the previous sample, in ``[0, num_cpus]``; ``None`` on
        the first call, when no time has passed, or without readable counters."""
        now, last = self._read(), self._last
        if now is None:
            return None
        self._last = now
        if last is None or now[0] <= last[0]:
            return None
        wall = now[0] - last[0]
        others = (now[2] - last[2]) * self.tick_seconds - (now[1] - last[1])
        return min(max(others / wall, 0.0), float(self.num_cpus))

    def age(self) -> float | None:
        """Seconds since the last sample (``None`` before the first)."""
        return None if self._last is None else self.clock() - self._last[0]
