"""Resume cache: every finished cell (its record and full-size first image) and every reference
are written to the sweep folder as soon as they exist, under a key made from their settings.
Re-running the same sweep loads them instead of sampling again. Writes are atomic (temp file +
rename), and a cell's record is written last, so a cell counts as done only when all of it is
on disk."""
import json
import os

import numpy as np
import torch
from PIL import Image

from .png import png_bytes
from .report import _clean


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


class SweepCache:
    def __init__(self, folder):
        self.folder = folder
        self.cells_dir = os.path.join(folder, "cells")
        self.refs_dir = os.path.join(folder, "references")
        os.makedirs(self.cells_dir, exist_ok=True)
        os.makedirs(self.refs_dir, exist_ok=True)

    # cells ------------------------------------------------------------------------------
    def cell_image_name(self, key):
        return os.path.join("cells", f"{key}.png")

    def save_cell(self, key, record, image=None, text=None):
        """image: uint8 (H, W, 3) first image of the cell (full size), or None for a failed cell;
        text: PNG text chunks ({keyword: str}, e.g. ComfyUI's workflow metadata)."""
        if image is not None:
            path = os.path.join(self.folder, self.cell_image_name(key))
            _atomic(path, _bytes_writer(png_bytes(image, text)))
        record_json = json.dumps(_clean(record), indent=1)
        path = os.path.join(self.cells_dir, f"{key}.json")
        _atomic(path, _text_writer(record_json))

    def load_cell(self, key):
        """(record, uint8 image) of a finished, successful cell; None if absent, failed or damaged."""
        path = os.path.join(self.cells_dir, f"{key}.json")
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            if record.get("status") != "ok":
                return None          # failed cells are retried on the next run
            with Image.open(os.path.join(self.folder, self.cell_image_name(key))) as im:
                image = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
            return record, image
        except (OSError, ValueError):
            return None

    # references -------------------------------------------------------------------------
    def save_reference(self, key, latent, images=None, info=None):
        base = os.path.join(self.refs_dir, key)
        _atomic(base + ".pt", lambda p: torch.save(latent.detach().cpu(), p))
        if images is not None:
            _atomic(base + ".npy", _npy_writer(images))
        _atomic(base + ".json", _text_writer(json.dumps(_clean(info or {}))))

    def load_reference(self, key):
        """(latent, images or None, info) or None."""
        base = os.path.join(self.refs_dir, key)
        if not os.path.isfile(base + ".json"):
            return None
        try:
            latent = torch.load(base + ".pt", map_location="cpu", weights_only=True)
            images = np.load(base + ".npy") if os.path.isfile(base + ".npy") else None
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

    def write_image(self, name, image, text=None):
        """A whole-sweep picture (grid, chart): uint8 (H, W, 3) as PNG with text chunks."""
        path = os.path.join(self.folder, name)
        _atomic(path, _bytes_writer(png_bytes(image, text)))
        return path
