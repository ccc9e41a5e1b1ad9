"""CPU seconds and resident memory of a server's whole process tree, the same way for
every server compared (ours, uvicorn, node), so that work a server hands to a child
process or a thread pool is counted as its own."""

from __future__ import annotations

import threading

import psutil


class ProcTree:
    """A server process and whatever children it has at the moment of asking."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def members(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_by_pid(self) -> dict[int, float]:
        """user + system seconds of each live member (every thread of each)."""
        out: dict[int, float] = {}
        for p in self.members():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue  # a child that just ended: its time is lost, and said so in the docs
            out[p.pid] = t.user + t.system
        return out

    def cpu_total(self) -> float:
        """user + system seconds of every live member, each with its reaped children's
        (``children_user``/``children_system``): a helper that ended meanwhile (a sandbox
        child that retired, a digest child that exited) is counted once its parent waited
        for it. Differences of two readings are the tree's CPU in between."""
        total = 0.0
        for p in self.members():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def rss(self) -> tuple[int, int]:
        """(resident bytes of the root, of the whole tree)."""
        root, total = 0, 0
        for p in self.members():
            try:
                rss = p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            total += rss
            if p.pid == self.root.pid:
                root = rss
        return root, total


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two ``cpu_by_pid`` readings; a child born in between
    counts from zero."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


class PeakSampler(threading.Thread):
    """Samples the tree's RSS every ``interval`` seconds until stopped; keeps the peaks
    (of the root process and of the tree)."""

    def __init__(self, tree: ProcTree, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.tree, self.interval = tree, interval
        self.peak_root, self.peak_tree = tree.rss()
        self.samples = 1
        self._done = threading.Event()

    def _sample(self) -> None:
        root, total = self.tree.rss()
        self.peak_root, self.peak_tree = max(self.peak_root, root), max(self.peak_tree, total)
        self.samples += 1

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def stop(self) -> tuple[int, int]:
        self._done.set()
        self.join()
        self._sample()
        return self.peak_root, self.peak_tree
