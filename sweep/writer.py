"""The sweep's writer thread: one background thread that measures, decodes and writes what the
sampling thread hands it, in order (a reference is decoded and saved before the cells that use it).

Jobs that return results ([(record, thumbnail)]) are collected on the sampling thread by
`apply`. At most two jobs holding decoded images wait (bounded memory); light ones (files of
measured cells: no result, their memory bounded by the pending batch) may queue up to MAX_QUEUED,
so the sampling thread does not wait on the disk.
"""
import time
from concurrent.futures import ThreadPoolExecutor

MAX_QUEUED = 64


class Writer:
    def __init__(self, apply):
        self.apply = apply
        self.inflight = []
        self.busy_s = 0.0           # the thread's time in jobs (report timing: it overlaps the sampling)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler_lab_sweep")

    def _timed(self, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.busy_s += time.perf_counter() - t0     # only the one writer thread adds to it

    def post(self, fn, *args, light=False):
        """Queue fn(*args) on the writer thread; returns its future."""
        while self.inflight and (len(self.inflight) >= MAX_QUEUED or (not light and sum(
                not f.light for f in self.inflight) >= 2)):
            self.collect(self.inflight.pop(0))
        fut = self.pool.submit(self._timed, fn, *args)
        fut.light = light
        self.inflight.append(fut)
        return fut

    def submit(self, fn):
        """Run fn() on the writer thread outside the queue's order (a PNG's compression); a future."""
        return self.pool.submit(self._timed, fn)

    def collect(self, fut):
        got = fut.result()
        if got is not None:
            self.apply(got)

    def drain(self, files_too=True):
        """Wait for the queued jobs; files_too=False leaves the trailing light ones (files only)
        running, to be drained later (the sweep's end draws and compresses meanwhile)."""
        last = len(self.inflight) if files_too else max(
            [i + 1 for i, f in enumerate(self.inflight) if not f.light] or [0])
        for _ in range(last):
            self.collect(self.inflight.pop(0))

    def close(self):
        self.pool.shutdown(wait=True)
