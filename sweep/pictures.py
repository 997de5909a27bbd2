"""Pictures and distances of finished sweep cells without a VAE, measured in batches or, for a
slow model, on the writer thread.

Without a VAE a cell's picture (the lab model's exact colour map, or a latent preview), its
distances to the reference and its PSNR/SSIM are tensor jobs of a millisecond or two. Beside a
slow model's sampling (torch releases the GIL while it computes) they overlap on the writer
thread, one cell at a time, as soon as it finishes. Beside a fast model's sampling they do not:
that thread then holds the GIL the sampling needs, and their fixed per-operation cost was most of
the sweep's overhead. So a fast cell (under SLOW_CELL_S of sampling) waits here with its latent and
is measured together with others, on the sampling thread: when the reference changes (cells run
grouped by reference, so one reference is in memory), when the waiting cells took FLUSH_SECONDS to
sample (a crash loses at most that much work), when they hold MAX_BYTES of latents (bounded
memory), at the end of the sweep and on interrupt. Either way a measured cell is written as part
of a batch file (sweep/cache.py).
With a VAE, each cell is decoded and measured on its own (sweep/engine.py).
"""
import logging

import torch

from .grid import thumbnail
from .cache import to_numpy
from .metrics import latent_distances, psnr_groups, ssim_each

log = logging.getLogger("sampler_lab")
FLUSH_SECONDS = 1.0
SLOW_CELL_S = 0.25
MAX_BYTES = 64 << 20


class PendingPictures:
    def __init__(self, run):
        self.run = run
        self.items = []
        self.bytes, self.seconds = 0, 0.0

    def add(self, rec, latent, ref):
        """A finished cell (rec: its record, status ok, with its call_s; ref: [latent, images,
        info] or None): measured now on the writer thread if it was slow to sample, else queued."""
        if rec["call_s"] >= SLOW_CELL_S:
            self.run.post(self._measure_and_write, [(rec, latent, ref)])
            return
        self.items.append((rec, latent, ref))
        self.bytes += latent.numel() * latent.element_size()
        self.seconds += rec["call_s"]
        if self.seconds >= FLUSH_SECONDS or self.bytes >= MAX_BYTES:
            self.flush()

    def flush(self, write=True):
        """Measure the waiting cells here. Their files go to the writer thread, or with write=False
        are returned as a job for the caller (the sweep's end runs it while PNGs compress)."""
        items, self.items, self.bytes, self.seconds = self.items, [], 0, 0.0
        measured = self._measure_all(items)
        self.run.apply(measured[0])

        def job():
            self._write(*measured)
        if not write:
            return job
        if items:                   # one job for the writer thread: fewer hand-overs of the GIL
            self.run.post(job, light=True)
        return None

    def _measure_and_write(self, items):
        """Writer thread: measure and write slow cells; returns [(record, thumbnail)] for the
        sampling thread to collect."""
        measured = self._measure_all(items)
        self._write(*measured)
        return measured[0]

    def _measure_all(self, items):
        """([(record, thumbnail or None)], [(records, latents)] batches to write, failed records)."""
        results, batches, failed = [], [], []
        for group in _groups(items, lambda item: (id(item[2]), tuple(item[1].shape), item[1].dtype)):
            try:
                recs, thumbs, latents = self._measure(group)
                results += zip(recs, thumbs)
                batches.append((recs, latents))
            except Exception as e:  # a broken decode fails these cells, not the sweep
                log.warning("[Sampler Lab] step sweep: measuring cells %s failed: %s", [r["index"] for r, _, _ in group], e)
                for rec, _, _ in group:
                    rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400])
                    results.append((rec, None))
                    failed.append(rec)
        return results, batches, failed

    def _write(self, results, batches, failed):
        """The cells' files (on the writer thread, or where flush(write=False)'s job is run)."""
        cache = self.run.cache
        try:
            for records, latents in batches:
                cache.save_batch(records[0]["key"], records, latents)
            for rec in failed:
                cache.save_cell(rec["key"], rec)
        except OSError as e:  # a full disk costs the resume of these cells, not the sweep
            log.warning("[Sampler Lab] step sweep: writing cells failed: %s", e)

    def _measure(self, group):
        """Distances, PSNR/SSIM and thumbnails of cells sharing a reference and a latent shape:
        (records, thumbnails, latents as numpy for their batch file)."""
        run = self.run
        latents = torch.stack([lat for _, lat, _ in group])
        size = run.cell_size
        metric, pictures = run.decoder.batch_pictures(latents, size)
        recs = [rec for rec, _, _ in group]
        measure_cells(recs, latents, metric, group[0][2], run.decoder)
        return recs, [thumbnail(p, size) for p in pictures], to_numpy(latents)

    def show(self, cells):
        """Thumbnails of finished cells read back from their batch files: [(record, latent)]."""
        size = self.run.cell_size
        for group in _groups(cells, lambda item: (tuple(item[1].shape), item[1].dtype)):
            _, pictures = self.run.decoder.batch_pictures(torch.stack([lat for _, lat in group]), size)
            self.run.apply([(rec, thumbnail(p, size)) for (rec, _), p in zip(group, pictures)])


def measure_cells(records, latents, metric, ref, decoder):
    """Set the distances of K cells to their reference on their records: latent RMSE and relative
    RMSE (latents stacked (K, *shape)) and, when both have images, PSNR/SSIM (metric: uint8 tensor
    (K, n, h, w, 3) or None). ref: [latent, images, info], or None without a reference. The lab
    model's reference images are its exact colour map, made here the first time; a VAE's are
    decoded once by the writer thread before any of its cells (sweep/engine.py)."""
    if ref is None:
        return
    if ref[0] is None:
        for rec in records:
            rec["reference_error"] = ref[2].get("error")
        return
    k = len(records)
    found = dict(zip(("rmse", "rel_rmse"), latent_distances(latents, ref[0])))
    if metric is not None and ref[1] is None and decoder.kind == "lab":
        ref[1] = decoder.metric_images(ref[0])
    if metric is not None and ref[1] is not None and tuple(ref[1].shape) == tuple(metric.shape[1:]):
        a = metric.reshape(-1, *metric.shape[2:]).to(torch.float32).div_(255.0)
        b = torch.from_numpy(ref[1]).to(torch.float32).div_(255.0)
        found["psnr"] = psnr_groups(a, b, k)
        found["ssim"] = ssim_each(a, b).reshape(k, -1).mean(1).tolist()
    for i, rec in enumerate(records):
        rec.update({name: values[i] for name, values in found.items()})


def _groups(items, key):
    out = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out.values()
