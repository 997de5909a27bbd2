"""Fast text onto a numpy uint8 (H, W, 3) canvas, pixel for pixel close to Pillow's ImageDraw.text.

Each glyph of a font is rendered once by Pillow (FreeType, anti-aliased grey mask) at each of
Q x Q sub-pixel phases it is needed at, and kept as its list of inked pixels (dy, dx, coverage)
in one store shared by all fonts. Drawing a batch of lines (any fonts, any colours) then costs a
fixed handful of numpy calls, not Pillow calls per line: every character's pen position comes from
cumulative advances (the font's own advances: for Pillow's basic layout of a font without kerning
pairs the sum equals fnt.getlength, checked per font), every glyph's pixels go into one flat index
array, pixels shared by neighbouring glyphs keep the larger coverage (as Pillow does) and the ink
is blended in one vectorised step: canvas + (ink - canvas) * coverage / 255, rounded.
Positions follow ImageDraw.text((x, y), text) with its default anchor "la" (left, ascender).
Text is one line per item (a newline is not a line break here); any character works, glyphs the
font lacks come out as Pillow draws them (its missing-glyph box or nothing)."""
import functools
import math
import threading

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Q = 4                            # sub-pixel phases per pixel (x and y) a glyph is cached at
_PAD = 2                         # margin around a glyph's box when it is rendered alone
_KERN_PAIRS = ("AV", "To", "Wa", "LT", "Ty", "Yo", "P.", "ff", "fi", "r,")
_MAX_GLYPHS = 200_000            # the store starts over past this many (font, char, phase) glyphs
_MAX_FONTS = 256
PIXEL = np.dtype((np.void, 3))  # one RGB pixel as a single 3-byte item: fast gathers/scatters


def _advance(fnt, ch):
    return fnt.getlength(ch) if hasattr(fnt, "getlength") else fnt.getsize(ch)[0]


def _render(fnt, ch, qx, qy):
    """The glyph's inked pixels relative to the integer pen position, drawn by Pillow at
    (integer + phase) exactly as ImageDraw.text places it inside a line: through the font's
    getmask2, the call ImageDraw.text makes (5x faster than a whole ImageDraw.text); through
    ImageDraw.text itself for other fonts or Pillow versions."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
    if isinstance(fnt, ImageFont.FreeTypeFont):
        try:
            mask, offset = fnt.getmask2(ch, "L", start=(qx / Q, qy / Q))
            m = np.asarray(Image.Image()._new(mask))
            ys, xs = np.nonzero(m)
            return (ys + offset[1]).astype(np.int64), (xs + offset[0]).astype(np.int64), m[ys, xs].astype(np.uint8)
        except Exception:  # noqa: BLE001 - any trouble: the slower public path below
            pass
    try:
        left, top, right, bottom = (int(v) for v in fnt.getbbox(ch))
    except Exception:  # a character the font cannot measure draws nothing
        return empty
    ox, oy = _PAD - min(0, left), _PAD - min(0, top)
    img = Image.new("L", (ox + max(right, 1) + _PAD + 1, oy + max(bottom, 1) + _PAD + 1), 0)
    try:
        ImageDraw.Draw(img).text((ox + qx / Q, oy + qy / Q), ch, fill=255, font=fnt)
    except Exception:  # e.g. a control character Pillow refuses
        return empty
    m = np.asarray(img)
    ys, xs = np.nonzero(m)
    return (ys - oy).astype(np.int64), (xs - ox).astype(np.int64), m[ys, xs].astype(np.uint8)


class _Store:
    """Every font's glyphs: pools of inked pixels looked up by (font, code point, x phase, y phase)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        self.fonts = {}                                   # font object -> font id
        self.adv = []                                     # per font: ASCII advances (list)
        self.additive = []                                # per font: width == sum of advances
        self.adv_np = np.zeros(0, np.float64)             # (font id * 128 + code) -> advance
        self.more_adv = {}                                # (font id, code) -> advance, non-ASCII
        self.table = np.zeros(0, np.int64)                # ASCII key -> slot (-1: not rendered)
        self.slots = {}                                   # any key -> slot
        self.parts = []                                   # per slot: (dy, dx, coverage)
        self._pack()

    def font_id(self, fnt):
        fid = self.fonts.get(fnt)
        if fid is not None:
            return fid
        with self.lock:
            if fnt in self.fonts:
                return self.fonts[fnt]
            if len(self.fonts) >= _MAX_FONTS:
                self.reset()
            adv = [math.nan] * 128                # filled as characters are first used
            fid = len(self.adv)
            self.adv.append(adv)
            self.adv_np = np.concatenate([self.adv_np, np.full(128, math.nan)])
            self._fill_adv(fnt, fid, {ord(c) for p in _KERN_PAIRS for c in p})
            basic = not isinstance(fnt, ImageFont.FreeTypeFont) or fnt.layout_engine == ImageFont.Layout.BASIC
            self.additive.append(basic and all(abs(_advance(fnt, p) - adv[ord(p[0])] - adv[ord(p[1])]) < 1e-6
                                               for p in _KERN_PAIRS))
            self.table = np.concatenate([self.table, np.full(128 * Q * Q, -1, dtype=np.int64)])
            self.fonts[fnt] = len(self.adv) - 1      # last: readers see a complete font
            return self.fonts[fnt]

    def _fill_adv(self, fnt, fid, codes):
        """Advances of these ASCII codes of font fid, measured once."""
        with self.lock:
            for c in codes:
                if math.isnan(self.adv[fid][c]):
                    self.adv[fid][c] = self.adv_np[fid * 128 + c] = float(_advance(fnt, chr(c)))

    def ascii_advances(self, fid, text):
        """Sum of the advances of an ASCII string."""
        adv = self.adv[fid]
        width = sum(map(adv.__getitem__, text.encode("ascii")))
        if width != width:              # NaN: a character not measured yet
            self._fill_adv(self.font_of(fid), fid, set(text.encode("ascii")))
            width = sum(map(adv.__getitem__, text.encode("ascii")))
        return width

    def font_of(self, fid):
        return next(f for f, i in self.fonts.items() if i == fid)

    def _pack(self):
        parts = self.parts or [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))]
        count = np.array([len(p[2]) for p in self.parts], dtype=np.int64)
        ext = np.array([(p[0].min(), p[0].max(), p[1].min(), p[1].max()) if len(p[2]) else (0, 0, 0, 0)
                        for p in self.parts] or np.zeros((0, 4)), dtype=np.int64).reshape(-1, 4)
        # one tuple, swapped in at once, so a reader never mixes old and new arrays
        self.packed = (count, np.cumsum(count) - count, np.concatenate([p[0] for p in parts]),
                       np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                       *ext.T.copy())
        self.flat_cache = (None, None)

    def lookup(self, fonts_of, codes, qx, qy, ascii_only):
        """Slot of every character (font id, code, phases), rendering glyphs not seen before."""
        if ascii_only:
            tkey = ((fonts_of * 128 + codes) * Q + qx) * Q + qy
            slots = self.table[tkey]
            if (slots >= 0).all():
                return slots, self.packed
        key = ((codes * _MAX_FONTS + fonts_of) * Q + qx) * Q + qy
        uniq, inverse = np.unique(key, return_inverse=True)
        with self.lock:
            font_of_id = {v: k for k, v in self.fonts.items()}
            new = [int(k) for k in uniq.tolist() if int(k) not in self.slots]
            for k in new:
                rest, qyk = divmod(k, Q)
                rest, qxk = divmod(rest, Q)
                code, fid = divmod(rest, _MAX_FONTS)
                self.slots[k] = len(self.parts)
                self.parts.append(_render(font_of_id[fid], chr(code), qxk, qyk))
            if new:
                self._pack()             # before the ASCII table points at the new slots (threads)
                for k in new:
                    rest, qyk = divmod(k, Q)
                    rest, qxk = divmod(rest, Q)
                    code, fid = divmod(rest, _MAX_FONTS)
                    if code < 128:
                        self.table[((fid * 128 + code) * Q + qxk) * Q + qyk] = self.slots[k]
            slots = np.array([self.slots[int(k)] for k in uniq.tolist()], dtype=np.int64)[inverse.reshape(-1)]
            packed = self.packed
            if len(self.parts) > _MAX_GLYPHS:
                self.reset()
        return slots, packed

    def advances(self, fonts_of, codes, ascii_only):
        if ascii_only:
            idx = fonts_of * 128 + codes
            adv = self.adv_np[idx]
            if np.isnan(adv).any():
                for k in np.unique(idx[np.isnan(adv)]).tolist():
                    self._fill_adv(self.font_of(k // 128), k // 128, [k % 128])
                adv = self.adv_np[idx]
            return adv
        out = np.empty(codes.size, dtype=np.float64)
        font_of_id = {v: k for k, v in self.fonts.items()}
        for i, (fid, c) in enumerate(zip(fonts_of.tolist(), codes.tolist())):
            if c < 128:
                if math.isnan(self.adv[fid][c]):
                    self._fill_adv(font_of_id[fid], fid, [c])
                out[i] = self.adv[fid][c]
                continue
            a = self.more_adv.get((fid, c))
            if a is None:
                a = self.more_adv[(fid, c)] = float(_advance(font_of_id[fid], chr(c)))
            out[i] = a
        return out

    def flat_offsets(self, packed, width):
        """Glyph pixels as offsets into a flattened canvas of this width (cached per width)."""
        cached = self.flat_cache
        if cached[0] is packed and cached[1] is not None and cached[1][0] == width:
            return cached[1][1]
        flat = packed[2] * width + packed[3]
        self.flat_cache = (packed, (width, flat))
        return flat


_STORE = _Store()


@functools.lru_cache(maxsize=1 << 16)
def text_width(fnt, text):
    """Width in pixels of one line, as fnt.getlength(text) (for a font without kerning pairs the
    sum of the cached advances, without laying the line out again)."""
    fid = _STORE.font_id(fnt)
    if text.isascii() and _STORE.additive[fid]:
        return _STORE.ascii_advances(fid, text)
    return _advance(fnt, text)


@functools.lru_cache(maxsize=256)
def line_height(fnt):
    """Distance between the tops of two lines of this font (the grid's and the chart's layouts)."""
    box = fnt.getbbox("Ag_|")
    return int((box[3] - box[1]) * 1.3) + 1


@functools.lru_cache(maxsize=64)
def _ink_run(color, n):
    """color (3 floats) repeated n times, flat float32 (n rounded up to a power of two)."""
    return np.tile(np.asarray(color, dtype=np.float32), n)


def _ink(color, n):
    return _ink_run(color, 1 << max(6, (n - 1).bit_length()))[:3 * n]


_LOCAL = threading.local()
_KEEP_SCRATCH = 1 << 23          # bytes of scratch a thread keeps between draws


def _scratch(n):
    """uint8 work space of n bytes (contents undefined), kept per thread when small: a fresh
    buffer costs a page fault per 4 KiB touched."""
    buf = getattr(_LOCAL, "buf", None)
    if buf is not None and buf.size >= n:
        return buf[:n]
    buf = np.empty(n, dtype=np.uint8)
    if n <= _KEEP_SCRATCH:
        _LOCAL.buf = buf
    return buf


def _draw(canvas, items):
    """items: (x, y, text, font, colour) with the items of one colour next to each other."""
    items = [it for it in items if it[2]]
    if not items:
        return canvas
    if canvas.dtype != np.uint8 or canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"text goes on a uint8 (H, W, 3) canvas, got {canvas.dtype} {canvas.shape}")
    height, width = canvas.shape[:2]
    store = _STORE
    texts = [str(it[2]) for it in items]
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ascii_only = bool(codes.max() < 128)
    per_line = np.array([(it[0], it[1], store.font_id(it[3])) for it in items], dtype=np.float64)
    line_of = np.repeat(np.arange(len(items)), lens)
    fonts_of = per_line[:, 2].astype(np.int64)[line_of]
    adv = store.advances(fonts_of, codes, ascii_only)
    ends = np.cumsum(adv)
    first = np.cumsum(lens) - lens
    x = per_line[line_of, 0] + (ends - adv - (ends[first] - adv[first])[line_of])
    y = per_line[line_of, 1]
    fx, fy = np.floor(x), np.floor(y)
    qx, qy = np.rint((x - fx) * Q).astype(np.int64), np.rint((y - fy) * Q).astype(np.int64)
    ix, iy = fx.astype(np.int64) + qx // Q, fy.astype(np.int64) + qy // Q
    slots, packed = store.lookup(fonts_of, codes, qx % Q, qy % Q, ascii_only)
    count, start, dy, dx, cover_of, ymin, ymax, xmin, xmax = packed
    counts = count[slots]
    total = int(counts.sum())
    if total == 0:
        return canvas
    inside = (int((iy + ymin[slots]).min()) >= 0 and int((iy + ymax[slots]).max()) < height
              and int((ix + xmin[slots]).min()) >= 0 and int((ix + xmax[slots]).max()) < width)
    # one flat index per inked glyph pixel: pool position = slot start + rank within the glyph
    pool = np.repeat(start[slots] - (np.cumsum(counts) - counts), counts) + np.arange(total)
    val = cover_of[pool]
    if inside:
        flat = np.repeat(iy * width + ix, counts) + store.flat_offsets(packed, width)[pool]
        keep = None
    else:
        py = np.repeat(iy, counts) + dy[pool]
        px = np.repeat(ix, counts) + dx[pool]
        keep = (py >= 0) & (py < height) & (px >= 0) & (px < width)
        flat = (py * width + px)[keep]
        val = val[keep]
        if not val.size:
            return canvas
    # colour of every pixel: items of one colour are consecutive, so are their pixels
    line_px = np.bincount(line_of, weights=counts, minlength=len(items)).astype(np.int64)
    if keep is not None:
        line_px = np.bincount(np.repeat(line_of, counts)[keep], minlength=len(items))
    runs, k = [], 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i][4] != items[k][4]:
            runs.append((tuple(float(c) for c in items[k][4][:3]), int(line_px[k:i].sum())))
            k = i
    ink = _ink(*runs[0]) if len(runs) == 1 else np.concatenate([_ink(c, n) for c, n in runs if n])
    # pixels shared by two glyphs keep the larger coverage
    cover = _scratch(height * width)
    cover[flat] = val
    np.maximum.at(cover, flat, val)
    a = np.repeat(cover.take(flat), 3).astype(np.float32)
    a *= np.float32(1.0 / 255.0)
    if canvas.flags.c_contiguous:
        pix = canvas.view(PIXEL).reshape(-1)
        old = pix.take(flat).view(np.uint8).astype(np.float32)
        old += (ink - old) * a + np.float32(0.5)
        pix[flat] = old.astype(np.uint8).view(PIXEL)
    else:                       # a strided view: same blend through (row, column) indices
        py, px = np.divmod(flat, width)
        old = canvas[py, px].reshape(-1).astype(np.float32)
        old += (ink - old) * a + np.float32(0.5)
        canvas[py, px] = old.astype(np.uint8).reshape(-1, 3)
    return canvas


def draw_lines(canvas, fnt, lines, color):
    """Draw lines of text on canvas (uint8 (H, W, 3), changed in place; also returned).

    lines: iterable of (x, y, text), each placed like ImageDraw.text((x, y), text, font=fnt,
    fill=color): top-left at the font's ascender line; x and y may be fractional or off the
    canvas (what falls outside is clipped)."""
    return _draw(canvas, [(x, y, t, fnt, color) for x, y, t in lines])


def draw_text(canvas, xy, text, fnt, color):
    """One line of text at xy (see draw_lines)."""
    return _draw(canvas, [(xy[0], xy[1], text, fnt, color)])


class TextBatch:
    """Lines of any fonts and colours collected, then drawn in one pass (colours in the order
    they first appeared; where lines overlap, the later colour is on top)."""

    def __init__(self):
        self.groups = {}

    def add(self, x, y, text, fnt, color):
        if text:
            self.groups.setdefault(tuple(color), []).append((x, y, text, fnt, color))

    def draw(self, canvas):
        items = [it for group in self.groups.values() for it in group]
        self.groups = {}
        return _draw(canvas, items)


def warm(fnt, chars=None, phases=((0, 0), (2, 0))):
    """Render a font's glyphs ahead of the first draw (e.g. on a worker thread while a sweep
    samples): printable ASCII by default, at whole and half pixel x offsets (centred text)."""
    chars = [chr(c) for c in range(32, 127)] if chars is None else list(chars)
    if not chars:
        return
    fid = _STORE.font_id(fnt)
    codes = np.array([ord(c) for c in chars], dtype=np.int64)
    fonts_of = np.full(codes.size, fid, dtype=np.int64)
    ascii_only = bool(codes.max() < 128)
    _STORE.advances(fonts_of, codes, ascii_only)
    for qx, qy in phases:
        _STORE.lookup(fonts_of, codes, np.full(codes.size, qx % Q), np.full(codes.size, qy % Q), ascii_only)
