"""CPU time and memory of a process tree, read from /proc (Linux)."""

from __future__ import annotations

import os
import re
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2:].split()


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int, *, reaped: bool = False) -> float:
    """User + system CPU of the tree; with ``reaped``, also the root's waited-for children
    (PostgreSQL backends that have already exited)."""
    total = 0
    for pid in descendants(root):
        fields = _stat(pid)
        if fields:  # fields[11:15] = utime, stime, cutime, cstime
            total += int(fields[11]) + int(fields[12])
            if reaped and pid == root:
                total += int(fields[13]) + int(fields[14])
    return total / TICKS


def rss_mib(pid: int) -> float:
    fields = _stat(pid)
    return int(fields[21]) * PAGE / 2**20 if fields else 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def workers(root: int, log_text: str) -> list[int]:
    """The request-serving processes of a ``sanic --workers N`` tree: the live ones among
    those its log announces with "Starting worker [pid]" (Sanic's manager spawns helpers
    too, so the process tree alone does not tell)."""
    announced = {int(pid) for pid in re.findall(r"Starting worker \[(\d+)\]", log_text)}
    return sorted(pid for pid in descendants(root) if pid in announced)


def machine_busy_seconds() -> float:
    """CPU-seconds all cores have spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS
