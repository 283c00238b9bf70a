"""Pictures: image grids written as PNG files (`save_grid`), and the per-class grid of pairs that the
denoise and upscale stages draw (`paired_grid`: each sample as it came in beside what the stage made of it)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.data.atomic import atomic_file


def save_grid(grid: np.ndarray, path: Path, pad: int = 2) -> None:
    """Write (rows, cols, H, W, C) uint8 images as one PNG, tiles separated by `pad` white pixels."""
    rows, cols, h, w, c = grid.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for r in range(rows):
        for col in range(cols):
            y, x = pad + r * (h + pad), pad + col * (w + pad)
            canvas[y:y + h, x:x + w] = grid[r, col]
    with atomic_file(Path(path)) as tmp:
        Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(tmp, format="PNG")


def blank_grid(rows: int, columns: int, side: int, channels: int) -> np.ndarray:
    """A white (rows, columns, side, side, channels) grid to fill."""
    return np.full((rows, columns, side, side, channels), 255, np.uint8)


def paired_grid(manifest: pd.DataFrame, classes: int, columns: int, side: int, channels: int,
                before: Callable[[pd.DataFrame], np.ndarray],
                after: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """(classes, 2 x columns, side, side, C): the first `columns` rows of each class (by `label`), each as
    `before(rows)` beside `after(rows)` (both side x side); white where a class has fewer."""
    grid = blank_grid(classes, 2 * columns, side, channels)
    for label, rows in manifest.groupby("label", sort=True):
        rows = rows.head(columns)
        grid[label, 0:2 * len(rows):2] = before(rows)
        grid[label, 1:2 * len(rows):2] = after(rows)
    return grid
