"""The resolution sweep's images: one content, rendered at every size of the sweep.

The content is a user's image (bench.resolution.image) or, by default, a procedural scene drawn with
numpy (sky, sun, hills, houses, a textured field), so that nothing is downloaded. Every size is a
centre crop of that content to the size's aspect ratio, resampled with Lanczos: the pixels change
with the size, the content does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelaw.core.errors import EdgelawError

SCENE_SIZE = (2048, 1536)


def parse_aspect(aspect: str) -> float:
    """'4:3' -> 4/3 (width over height)."""
    try:
        w, h = (float(v) for v in aspect.split(":"))
    except ValueError:
        raise EdgelawError(f"bench.resolution.aspect: {aspect!r} is not W:H (e.g. 4:3)") from None
    if w <= 0 or h <= 0:
        raise EdgelawError(f"bench.resolution.aspect: {aspect!r} needs two positive numbers")
    return w / h


def sizes(long_sides: list[int], aspect: str, square: bool) -> list[tuple[str, int, int]]:
    """(series, width, height) of every image of the sweep: the aspect series, then the square one."""
    if any(int(s) < 1 for s in long_sides):
        raise EdgelawError(f"bench.resolution.long_sides: {long_sides} has a size below 1 px; every size must be >= 1")
    ratio = parse_aspect(aspect)
    out = []
    for side in long_sides:
        short = max(1, round(side / ratio if ratio >= 1 else side * ratio))
        out.append(("1:1" if ratio == 1 else aspect, *((side, short) if ratio >= 1 else (short, side))))
    if square and ratio != 1:
        out += [("1:1", side, side) for side in long_sides]
    return out


def scene(width: int = SCENE_SIZE[0], height: int = SCENE_SIZE[1]) -> np.ndarray:
    """A deterministic outdoor scene, uint8 RGB (height, width, 3)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    img = np.empty((height, width, 3), np.float32)
    img[...] = np.stack([0.35 + 0.3 * v, 0.55 + 0.25 * v, 0.95 - 0.1 * v], axis=-1)  # sky
    sun = (u - 0.78) ** 2 + ((v - 0.2) * height / width) ** 2 < 0.004
    img[sun] = (1.0, 0.85, 0.3)
    hills = v > 0.55 + 0.08 * np.sin(6.0 * u) + 0.03 * np.sin(23.0 * u + 1.0)
    img[hills] = np.stack([0.2 + 0.1 * np.sin(40 * u), 0.5 + 0.1 * np.sin(31 * v), 0.2 * np.ones_like(u)], axis=-1)[hills]
    field = v > 0.8
    stripes = 0.5 + 0.5 * np.sin(120.0 * u + 60.0 * v)
    img[field] = np.stack([0.6 * stripes, 0.45 + 0.2 * stripes, 0.15 * np.ones_like(u)], axis=-1)[field]
    rng = np.random.default_rng(7)
    for left, w, h in zip(np.linspace(0.08, 0.6, 6), rng.uniform(0.04, 0.09, 6), rng.uniform(0.08, 0.16, 6)):
        house = (u > left) & (u < left + w) & (v > 0.72 - h) & (v < 0.72)
        img[house] = rng.uniform(0.3, 0.9, 3)
        window = house & (np.sin(300 * u) > 0.6) & (np.sin(300 * v) > 0.6)
        img[window] = (0.95, 0.9, 0.6)
    img += 0.03 * rng.standard_normal(img.shape).astype(np.float32)  # sensor-like noise: not flat areas
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def load(path: str | None):
    """The sweep's content as a PIL image: the file at `path` (checked), or the default scene."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        return Image.fromarray(scene())
    p = Path(path)
    if not p.is_file():
        raise EdgelawError(f"bench.resolution.image: {p} does not exist; point it at a PNG or JPEG, or remove it")
    try:
        with Image.open(p) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise EdgelawError(
            f"bench.resolution.image: {p} is not a readable image ({type(exc).__name__}: {exc}); "
            "use a PNG or JPEG file"
        ) from None


def render(content, width: int, height: int) -> bytes:
    """`content` centre-cropped to width:height and resampled to exactly width x height, RGB bytes."""
    from PIL import Image

    if width < 1 or height < 1:
        raise EdgelawError(f"image size {width}x{height}: both sides must be at least 1 px")
    cw, ch = content.size
    target = width / height
    if cw / ch > target:
        crop_w, crop_h = max(1, round(ch * target)), ch
    else:
        crop_w, crop_h = cw, max(1, round(cw / target))
    left, top = (cw - crop_w) // 2, (ch - crop_h) // 2
    box = (left, top, left + crop_w, top + crop_h)
    return content.resize((width, height), Image.Resampling.LANCZOS, box=box).tobytes()
