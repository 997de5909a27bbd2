"""Labelled sweep grid drawn with Pillow: column and row headers sized to the cells (font grows
with the cell), long names wrapped (also inside names like dpmpp_2m_sde_heun at '_'), a caption
under each cell (model calls, time, distance) and failed cells marked. Tiles are pasted onto one
image and every line of text goes through ImageDraw.text. Fonts, text widths and wrapped lines are
cached: a sweep draws the same few strings many times."""
import functools
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (20, 20, 20)
MUTED = (90, 90, 90)
PAPER = (255, 255, 255)
FAILED = (205, 205, 205)
FAIL_INK = (150, 20, 20)

__all__ = ["font", "text_width", "line_height", "wrap_text", "cell_fonts", "GridLayout", "draw_grid", "thumbnail"]


@functools.lru_cache(maxsize=64)
def font(size):
    """Pillow's built-in scalable font (Pillow >= 10.1); the fixed bitmap font before that."""
    try:
        return ImageFont.load_default(size=int(size))
    except TypeError:     # Pillow < 10.1: no sizes
        return ImageFont.load_default()


@functools.lru_cache(maxsize=16384)
def text_width(fnt, text):
    """Width in pixels of one line (Pillow's own layout)."""
    return fnt.getlength(text)


@functools.lru_cache(maxsize=256)
def line_height(fnt):
    """Distance between the tops of two lines of this font (the grid's and the chart's layouts)."""
    box = fnt.getbbox("Ag_|")
    return int((box[3] - box[1]) * 1.3) + 1


UNITS = ("s", "ms", "dB")            # stay with the number before them ("0.18 s", not "0.18" / "s")


def wrap_text(text, fnt, width):
    """Lines no wider than `width` pixels. Breaks at spaces, '_', '/', ',' and '-' (never between a
    number and its unit); splits a piece that is still too wide between characters."""
    return list(_wrap(str(text), fnt, width))


@functools.lru_cache(maxsize=4096)
def _wrap(text, fnt, width):
    lines = []
    for para in str(text).split("\n"):
        pieces = []
        for p in re.findall(r"[^ _/,\-]*[ _/,\-]?", para):
            if p.strip() in UNITS and pieces:
                pieces[-1] += p
            elif p:
                pieces.append(p)
        line = ""
        for piece in pieces:
            if text_width(fnt, (line + piece).rstrip()) <= width:
                line += piece
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = ""
            while text_width(fnt, piece.rstrip()) > width and len(piece) > 1:
                cut = len(piece) - 1
                while cut > 1 and text_width(fnt, piece[:cut]) > width:
                    cut -= 1
                lines.append(piece[:cut])
                piece = piece[cut:]
            line = piece
        if line.strip() or not lines:
            lines.append(line.rstrip())
    return tuple(lines)


def cell_fonts(cell_w, cell_h):
    """(font px, caption font px, padding) for grid cells of this size: text grows with the cell."""
    fs = int(min(64, max(12, round(min(cell_w, cell_h) / 9))))
    return fs, int(min(48, max(10, round(fs * 0.72)))), max(3, fs // 2)


class GridLayout:
    """Sizes and positions shared by every grid of one sweep (so grids stack as one IMAGE batch)."""

    def __init__(self, cell_w, cell_h, rows, cols, col_labels, row_labels, captions, titles=()):
        self.cell_w, self.cell_h, self.rows, self.cols = cell_w, cell_h, rows, cols
        self.fs, self.fs_small, self.pad = cell_fonts(cell_w, cell_h)
        self.font, self.small = font(self.fs), font(self.fs_small)
        self.lh, self.lh_small = line_height(self.font), line_height(self.small)
        self.gap = max(2, self.fs // 5)
        inner = max(8, cell_w - 2 * self.pad)
        self.col_lines = [wrap_text(t, self.font, inner) if t else [] for t in col_labels]
        has_rows = any(row_labels)
        # wide enough for the longest single word of a row label (a sampler name such as dpmpp_2m
        # then never breaks), at most 1.5 cells; longer names wrap
        words = [w for t in row_labels if t for w in str(t).split()]
        widest = int(max([text_width(self.font, w) for w in words] or [0])) + 2 * self.pad + 2
        self.row_w = max(int(cell_w * 0.6), 6 * self.fs, min(widest, int(cell_w * 1.5))) if has_rows else 0
        self.row_lines = [wrap_text(t, self.font, max(8, self.row_w - 2 * self.pad)) if t else [] for t in row_labels]
        self.caption_lines = max([len(wrap_text(c, self.small, inner)) for c in captions if c] or [0])
        self.caption_h = self.caption_lines * self.lh_small + (self.pad if self.caption_lines else 0)
        n_col_lines = max([len(x) for x in self.col_lines] or [0])
        self.header_h = n_col_lines * self.lh + 2 * self.pad if n_col_lines else 0
        self.width = self.row_w + cols * (cell_w + self.gap) + self.gap
        self.title_font = font(int(self.fs * 1.1))
        self.title_lh = line_height(self.title_font)
        wrapped = [len(wrap_text(t, self.title_font, self.width - 2 * self.pad)) for t in titles if t]
        self.title_lines = max([3] + wrapped)           # every line of the longest title fits
        self.title_h = self.title_lines * self.title_lh + 2 * self.pad
        self.height = self.title_h + self.header_h + rows * (cell_h + self.caption_h + self.gap) + self.gap

    def cell_box(self, row, col):
        x0 = self.row_w + self.gap + col * (self.cell_w + self.gap)
        y0 = self.title_h + self.header_h + row * (self.cell_h + self.caption_h + self.gap)
        return x0, y0, x0 + self.cell_w, y0 + self.cell_h


def draw_grid(layout, title, cells, captions, failures):
    """One grid as a uint8 (H, W, 3) array.

    cells[r][c]: uint8 (h, w, 3) array or None (resized to the layout's cell when its size
    differs); captions[r][c]: str; failures[r][c]: str or None (a grey box with the error)."""
    lo = layout
    img = Image.new("RGB", (lo.width, lo.height), PAPER)
    draw = ImageDraw.Draw(img)
    y = lo.pad
    for line in wrap_text(title, lo.title_font, lo.width - 2 * lo.pad)[:lo.title_lines]:
        draw.text((lo.pad, y), line, fill=INK, font=lo.title_font)
        y += lo.title_lh
    for c, lines in enumerate(lo.col_lines):
        x0, _, _, _ = lo.cell_box(0, c)
        ty = lo.title_h + (lo.header_h - len(lines) * lo.lh) // 2
        for line in lines:
            draw.text((x0 + (lo.cell_w - text_width(lo.font, line)) / 2, ty), line, fill=INK, font=lo.font)
            ty += lo.lh
    for r, lines in enumerate(lo.row_lines):
        _, y0, _, _ = lo.cell_box(r, 0)
        ty = y0 + max(0, (lo.cell_h - len(lines) * lo.lh) // 2)
        for line in lines:
            draw.text((lo.pad, ty), line, fill=INK, font=lo.font)
            ty += lo.lh
    inner = max(8, lo.cell_w - 2 * lo.pad)
    fail_lines = max(1, (lo.cell_h - lo.pad) // lo.lh_small)
    for r in range(lo.rows):
        for c in range(lo.cols):
            x0, y0, x1, y1 = lo.cell_box(r, c)
            fail = failures[r][c]
            arr = cells[r][c]
            if arr is not None and fail is None:
                img.paste(Image.fromarray(_tile(arr, lo.cell_w, lo.cell_h)), (x0, y0))
            else:
                draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=FAILED)
                ty = y0 + lo.pad
                for line in wrap_text(fail or "not run", lo.small, inner)[:fail_lines]:
                    draw.text((x0 + lo.pad, ty), line, fill=FAIL_INK, font=lo.small)
                    ty += lo.lh_small
            ty = y1 + lo.pad // 2
            for line in wrap_text(captions[r][c], lo.small, inner)[:lo.caption_lines]:
                draw.text((x0 + (lo.cell_w - text_width(lo.small, line)) / 2, ty), line, fill=MUTED, font=lo.small)
                ty += lo.lh_small
    return np.asarray(img, dtype=np.uint8).copy()


def _tile(arr, w, h):
    """A cell's picture as uint8 (h, w, 3): as is when it already fits, else converted/resized."""
    arr = np.asarray(arr)
    if arr.shape == (h, w, 3) and arr.dtype == np.uint8:
        return arr
    tile = Image.fromarray(arr).convert("RGB")
    if tile.size != (w, h):
        tile = tile.resize((w, h), Image.BILINEAR)
    return np.asarray(tile, dtype=np.uint8)


def thumbnail(arr, max_side, min_side=128):
    """uint8 (H, W, 3) resized so its longer side is at most max_side; tiny images are enlarged
    by a whole factor (nearest neighbour) until the longer side reaches min_side."""
    h, w = arr.shape[:2]
    if max(h, w) < min(min_side, max_side):
        k = -(-min(min_side, max_side) // max(h, w))
        return np.asarray(Image.fromarray(arr).resize((w * k, h * k), Image.NEAREST), dtype=np.uint8)
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return arr
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(arr).resize(size, Image.BICUBIC, reducing_gap=2.0), dtype=np.uint8)
