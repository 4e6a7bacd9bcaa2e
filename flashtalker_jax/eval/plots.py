"""PNG figures of an evaluation: a frame grid (rows: ground truth | render | error per
driving, columns: frames spread over the clip) and metric curves over time."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def pick_frames(n_frames: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over the clip (all frames when it is short)."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(int))


def save_frame_grid(path: Path, rows: list[tuple[str, np.ndarray]], columns: np.ndarray,
                    error_gain: float = 4.0) -> Path:
    """rows [(label, frames (T, S, S, 3) in [0, 1])]: a row labelled 'error' holds the
    absolute error already; it is scaled by error_gain. Labels are drawn on each row."""
    strips = []
    for label, frames in rows:
        picked = frames[columns]
        if label.startswith("|error|"):
            picked = np.clip(picked * error_gain, 0.0, 1.0)
        strip = np.concatenate(list(picked), axis=1)
        image = Image.fromarray(np.round(strip * 255).astype(np.uint8))
        ImageDraw.Draw(image).text((2, 1), label, fill=(255, 0, 0))
        strips.append(np.asarray(image))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(strips, axis=0)).save(path)
    return path


def save_curves(path: Path, panels: list[tuple[str, dict[str, np.ndarray]]], fps: float, title: str) -> Path:
    """One subplot per panel (y label, {curve name: values over frames}); x in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), dpi=100, squeeze=False)
    for ax, (ylabel, curves) in zip(axes[:, 0], panels):
        for name, values in curves.items():
            style = dict(color="black", lw=2.0) if name.startswith("ground truth") else dict(lw=1.2)
            ax.plot(np.arange(len(values)) / fps, values, label=name, **style)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
