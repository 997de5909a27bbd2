"""Resume cache: every finished cell and every reference are written to the sweep folder as
soon as they are measured, under a key made from their settings. Re-running the same sweep loads
them instead of sampling again. Writes are atomic (temp file + rename), and what marks a cell
done is written last, so a cell counts as done only when all of it is on disk.

Two forms, one file operation per cell or fewer (every one of them, done while other cells
sample or at the sweep's end, costs a fast model's sweep time):
- a VAE-decoded cell: its full-size first image as PNG with its record in a text chunk;
- cells without a VAE (their pictures come back from the latent in a moment): one batch of them
  in two files, cells/<name>.npy with their latents stacked and cells/<name>.json with their
  records (written last).
Failed cells are written as cells/<key>.json records, for inspection only (they run again)."""
import io
import json
import os

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .report import _clean

PNG_LEVEL = 1            # Pillow's fastest deflate: ~35 % less time than SaveImage's level 4, ~8 % larger


def _atomic(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def _text_writer(text):
    def write(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return write


def _bytes_writer(data):
    def write(path):
        with open(path, "wb") as f:
            f.write(data)
    return write


def _npy_writer(array):
    def write(path):
        with open(path, "wb") as f:
            np.save(f, array)
    return write


def to_numpy(tensor):
    """A tensor as a numpy array on the CPU (bfloat16 and other types numpy lacks become float32)."""
    t = tensor.detach().cpu()
    if t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t.numpy()


RECORD_CHUNK = "sampler_lab_cell"


def png_bytes(image, text=None, level=PNG_LEVEL):
    """uint8 (H, W, 3) -> PNG file bytes written by Pillow, as ComfyUI's SaveImage writes them
    (text: {keyword: str} as tEXt chunks, PngInfo.add_text), at compress_level `level` (SaveImage's
    is 4; the sweep's own files take level 1, bench/drawing_speed.py times both)."""
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(str(key), str(value))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, "PNG", pnginfo=info, compress_level=level)
    return buf.getvalue()


class SweepCache:
    def __init__(self, folder):
        self.folder = folder
        self.cells_dir = os.path.join(folder, "cells")
        self.refs_dir = os.path.join(folder, "references")
        os.makedirs(self.cells_dir, exist_ok=True)
        os.makedirs(self.refs_dir, exist_ok=True)
        self._batches = None

    # cells ------------------------------------------------------------------------------
    def cell_image_name(self, key):
        return os.path.join("cells", f"{key}.png")

    def save_cell(self, key, record, image=None, text=None, level=PNG_LEVEL):
        """image: uint8 (H, W, 3) first image of the cell (full size), saved as PNG with the record
        in its RECORD_CHUNK text chunk (beside `text`, e.g. ComfyUI's workflow metadata; level:
        Pillow's compress_level); None for a failed cell, whose record is written as JSON (for
        inspection: failed cells run again)."""
        if image is None:
            _atomic(os.path.join(self.cells_dir, f"{key}.json"), _text_writer(json.dumps(_clean(record), indent=1)))
            return
        chunks = dict(text or {}, **{RECORD_CHUNK: json.dumps(_clean(record))})
        _atomic(os.path.join(self.folder, self.cell_image_name(key)), _bytes_writer(png_bytes(image, chunks, level)))

    def load_cell(self, key):
        """(record, uint8 image, None) of a finished VAE-decoded cell, (record, None, latent) of a
        finished cell from a batch; None if absent, failed or damaged."""
        path = os.path.join(self.folder, self.cell_image_name(key))
        if os.path.isfile(path):
            try:
                with Image.open(path) as im:
                    record = json.loads(im.text[RECORD_CHUNK])
                    image = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
                return (record, image, None) if record.get("status") == "ok" else None
            except (OSError, ValueError, KeyError, SyntaxError):
                return None
        got = self.batch_index().get(key)
        if got is None:
            return None
        record, npy, row = got
        try:
            return record, None, torch.from_numpy(np.array(np.load(npy, mmap_mode="r")[row]))
        except (OSError, ValueError, IndexError):
            return None

    def save_batch(self, name, records, latents):
        """Finished cells measured together: records (status ok) and their latents (numpy, stacked
        in record order), as cells/<name>.npy and then cells/<name>.json."""
        base = os.path.join(self.cells_dir, name)
        _atomic(base + ".npy", _npy_writer(latents))
        _atomic(base + ".json", _text_writer(json.dumps({"batch": [_clean(r) for r in records]})))

    def batch_index(self):
        """{cell key: (record, latents file, row)} over every batch in the folder (read once)."""
        if self._batches is None:
            self._batches = {}
            for name in sorted(os.listdir(self.cells_dir)):
                if not name.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(self.cells_dir, name), encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    continue
                npy = os.path.join(self.cells_dir, name[:-5] + ".npy")
                if not isinstance(doc, dict) or not isinstance(doc.get("batch"), list) or not os.path.isfile(npy):
                    continue
                for row, rec in enumerate(doc["batch"]):
                    if isinstance(rec, dict) and rec.get("status") == "ok" and "key" in rec:
                        self._batches[rec["key"]] = (rec, npy, row)
        return self._batches

    # references -------------------------------------------------------------------------
    def save_reference(self, key, latent, images=None, info=None):
        base = os.path.join(self.refs_dir, key)
        _atomic(base + ".latent.npy", _npy_writer(to_numpy(latent)))
        if images is not None:
            _atomic(base + ".images.npy", _npy_writer(images))
        _atomic(base + ".json", _text_writer(json.dumps(_clean(info or {}))))

    def load_reference(self, key):
        """(latent, images or None, info) or None."""
        base = os.path.join(self.refs_dir, key)
        if not os.path.isfile(base + ".json"):
            return None
        try:
            latent = torch.from_numpy(np.load(base + ".latent.npy"))
            images = np.load(base + ".images.npy") if os.path.isfile(base + ".images.npy") else None
            with open(base + ".json", encoding="utf-8") as f:
                info = json.load(f)
            return latent, images, info
        except (OSError, ValueError, RuntimeError):
            return None

    # whole-sweep files ------------------------------------------------------------------
    def write_text(self, name, text):
        path = os.path.join(self.folder, name)
        _atomic(path, _text_writer(text))
        return path

    def write_image(self, name, image, text=None, pool=None):
        """A whole-sweep picture (grid, chart): uint8 (H, W, 3) as PNG with text chunks, encoded on
        `pool` (an executor; Pillow's encoder releases the GIL while it compresses) or here without
        one. Returns done(): waits for the file and returns its path."""
        path = os.path.join(self.folder, name)

        def job():
            _atomic(path, _bytes_writer(png_bytes(image, text)))
            return path
        fut = pool.submit(job) if pool is not None else None
        return fut.result if fut is not None else job
