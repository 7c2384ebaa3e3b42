"""What a figure file must be: a real PNG of a reasonable size, with something drawn on it."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread


def assert_real_png(path: Path, *, min_width: int = 300, min_height: int = 200) -> None:
    """A PNG file of at least ``min_width`` x ``min_height`` pixels that is not blank."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= min_width and height >= min_height, (width, height)
    pixels = imread(path)[..., :3]
    assert pixels.std() > 0.05, f"{path} is (nearly) blank"
    assert (pixels < 0.5).mean() > 0.005, f"{path} has almost nothing drawn"
