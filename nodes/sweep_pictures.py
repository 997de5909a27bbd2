"""Pictures and distances of finished sweep cells, measured in batches (no VAE connected).

Without a VAE a cell's picture (the lab model's exact colour map, or a latent preview), its
distances to the reference and its PSNR/SSIM are small tensor jobs. One cell at a time, their
fixed per-operation cost -- or handing them to a thread that then holds the GIL the next cell's
sampling needs -- was most of the sweep's overhead on a fast model. Cells therefore wait here
with their latents and are measured and written together: when the reference changes (cells run
grouped by reference, so one reference is in memory), when the waiting cells took FLUSH_SECONDS
to sample (so a crash loses at most that much work; with a slow model every cell is written as
it finishes), when they hold MAX_BYTES of latents (bounded memory), at the end of the sweep and
on interrupt (nothing finished is lost).
With a VAE, each cell is decoded and measured on its own (nodes/sweep_nodes.py: the decoded
images are large, and such models are slow enough that per-cell work does not show).
"""
import logging

import torch

from ..sweep.grid import thumbnail
from ..sweep.cache import to_numpy
from ..sweep.metrics import latent_distances, psnr_groups, ssim_each

log = logging.getLogger("sampler_lab")
FLUSH_SECONDS = 1.0
MAX_BYTES = 64 << 20


class PendingPictures:
    def __init__(self, run):
        self.run = run
        self.items = []
        self.bytes, self.seconds = 0, 0.0

    def add(self, rec, latent, ref):
        """Queue a finished cell (rec: its record, status ok, with its call_s; ref: [latent, images,
        info] or None)."""
        self.items.append((rec, latent, ref))
        self.bytes += latent.numel() * latent.element_size()
        self.seconds += rec["call_s"]
        if self.seconds >= FLUSH_SECONDS or self.bytes >= MAX_BYTES:
            self.flush()

    def flush(self, write=True):
        """Measure the waiting cells. Their files go to the writer thread, or with write=False
        are returned as a job for the caller (the sweep's end runs it while PNGs compress)."""
        items, self.items, self.bytes, self.seconds = self.items, [], 0, 0.0
        batches, failed = [], []
        for group in _groups(items, lambda item: (id(item[2]), tuple(item[1].shape), item[1].dtype)):
            try:
                batches.append(self._measure(group))
            except Exception as e:  # a broken decode fails these cells, not the sweep
                log.warning("[Sampler Lab] step sweep: measuring cells %s failed: %s", [r["index"] for r, _, _ in group], e)
                for rec, _, _ in group:
                    rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:400])
                    self.run.records[rec["index"]] = rec
                    failed.append(rec)

        def job():
            self._write(batches, failed)
        if not write:
            return job
        if batches or failed:       # one job for the writer thread: fewer hand-overs of the GIL
            self.run.post(job, light=True)
        return None

    def _write(self, batches, failed):
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
        """Distances, PSNR/SSIM and pictures of cells sharing a reference and a latent shape;
        returns (records, latents as numpy) for their batch file."""
        run = self.run
        k = len(group)
        latents = torch.stack([lat for _, lat, _ in group])
        ref = group[0][2]
        metric, pictures = run.decoder.batch_pictures(latents)
        found = {}
        if ref is not None and ref[0] is not None:
            found["rmse"], found["rel_rmse"] = latent_distances(latents, ref[0])
            if metric is not None:
                if ref[1] is None:
                    ref[1] = run.decoder.metric_images(ref[0])
                if tuple(ref[1].shape) == tuple(metric.shape[1:]):
                    a = metric.reshape(-1, *metric.shape[2:]).to(torch.float32).div_(255.0)
                    b = torch.from_numpy(ref[1]).to(torch.float32).div_(255.0)
                    found["psnr"] = psnr_groups(a, b, k)
                    found["ssim"] = ssim_each(a, b).reshape(k, -1).mean(1).tolist()
        size = int(run.kw["cell_size"])
        for i, (rec, _, _) in enumerate(group):
            for name, values in found.items():
                rec[name] = values[i]
            if ref is not None and ref[0] is None:
                rec["reference_error"] = ref[2].get("error")
            run.records[rec["index"]], run.thumbs[rec["index"]] = rec, thumbnail(pictures[i], size)
        return [rec for rec, _, _ in group], to_numpy(latents)

    def show(self, cells):
        """Thumbnails of finished cells read back from their batch files: [(record, latent)]."""
        size = int(self.run.kw["cell_size"])
        for group in _groups(cells, lambda item: (tuple(item[1].shape), item[1].dtype)):
            _, pictures = self.run.decoder.batch_pictures(torch.stack([lat for _, lat in group]))
            for (rec, _), picture in zip(group, pictures):
                self.run.records[rec["index"]], self.run.thumbs[rec["index"]] = rec, thumbnail(picture, size)


def _groups(items, key):
    out = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out.values()
