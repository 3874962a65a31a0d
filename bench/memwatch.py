"""Memory of a process tree over its life, polled from /proc (Linux): private memory (RssAnon) and resident set (VmRSS).

`TreeSampler(pid)` is a thread that, every `interval` seconds, walks the tree under `pid` (the process and all its
descendants) and reads `RssAnon`, `VmRSS` and `VmHWM` from each `/proc/<pid>/status`. It keeps the peak of the tree's
sums, the peak of each subtree rooted at a direct child of `pid` (the worker processes of a launcher such as
torchrun, one per rank), each process's own peaks, and a timeline of the tree's sums.
RssAnon is the private, anonymous memory (heap, tensors): what grows with data held in memory. It leaves out the
file-backed pages (shared libraries, mmapped files), which VmRSS counts and the kernel can drop.
Polling misses spikes shorter than `interval`; VmHWM (the kernel's own peak of VmRSS) does not, so it is kept too.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

KB = 1024
MB = 1024 * 1024
_HAS_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children (every thread may have forked)."""
    if not _HAS_CHILDREN_FILE:
        return _children_by_scan().get(pid, [])
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def _children_by_scan() -> dict[int, list[int]]:
    """ppid → children of every process, for kernels without /proc/<pid>/task/<tid>/children."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[tuple[int, int | None]]:
    """(pid, the direct child of `pid` it descends from, None for `pid` itself) for `pid` and all its descendants."""
    scan = None if _HAS_CHILDREN_FILE else _children_by_scan()
    out: list[tuple[int, int | None]] = [(pid, None)]
    stack = [(c, c) for c in (children(pid) if scan is None else scan.get(pid, []))]
    while stack:
        p, top = stack.pop()
        out.append((p, top))
        stack += [(c, top) for c in (children(p) if scan is None else scan.get(p, []))]
    return out


def read_status(pid: int) -> dict[str, int] | None:
    """RssAnon, VmRSS and VmHWM of one process in bytes; None once it is gone (or a zombie without memory)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("RssAnon", "VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0]) * KB
    return vals if "RssAnon" in vals else None


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


def cmdline_of(pid: int) -> str:
    try:
        return " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")).strip()
    except OSError:
        return ""


@dataclass
class ProcPeak:
    pid: int
    cmd: str
    env_rank: str | None
    first_seen_s: float
    anon: int = 0
    rss: int = 0
    hwm: int = 0


class TreeSampler(threading.Thread):
    """Polls the tree under `pid` until `stop()`; figures in bytes, times in seconds since `t0`."""

    def __init__(self, pid: int, interval: float = 0.2, t0: float | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.t0 = time.monotonic() if t0 is None else t0
        self._halt = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (t, tree RssAnon, tree VmRSS)
        self.procs: dict[int, ProcPeak] = {}
        self.groups: dict[int, int] = {}  # direct child → peak RssAnon of its subtree
        self.current_anon = 0

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        anon = rss = 0
        group_anon: dict[int, int] = {}
        for p, top in tree(self.pid):
            st = read_status(p)
            if st is None:
                continue
            if p not in self.procs:
                self.procs[p] = ProcPeak(p, cmdline_of(p)[:200], environ_of(p).get("RANK"), round(t, 2))
            pk = self.procs[p]
            pk.anon, pk.rss, pk.hwm = (
                max(pk.anon, st["RssAnon"]),
                max(pk.rss, st.get("VmRSS", 0)),
                max(pk.hwm, st.get("VmHWM", 0)),
            )
            anon += st["RssAnon"]
            rss += st.get("VmRSS", 0)
            if top is not None:
                group_anon[top] = group_anon.get(top, 0) + st["RssAnon"]
        for g, v in group_anon.items():
            self.groups[g] = max(self.groups.get(g, 0), v)
        if anon:
            self.samples.append((t, anon, rss))
        self.current_anon = anon

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, until: float | None = None) -> tuple[int, int]:
        """Peak tree RssAnon and peak tree VmRSS (bytes) over the samples up to `until` seconds."""
        s = [x for x in self.samples if until is None or x[0] <= until]
        return (max((x[1] for x in s), default=0), max((x[2] for x in s), default=0))

    def timeline(self, step: float = 2.0) -> list[list[float]]:
        """[t s, tree RssAnon MB] about every `step` seconds, the peak sample always included."""
        out, nxt = [], 0.0
        top = max(self.samples, key=lambda x: x[1], default=None)
        for s in self.samples:
            if s[0] >= nxt or s is top:
                out.append([round(s[0], 1), round(s[1] / MB, 1)])
                nxt = s[0] + step
        return out
