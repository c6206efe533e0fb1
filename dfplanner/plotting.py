"""Pictures of mazes, executed trajectories and plans (matplotlib, no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dfplanner.atomic import atomic_output  # noqa: E402
from dfplanner.envs.layouts import MazeSpec  # noqa: E402

WALL_HALF_SIZE = 0.5  # D4RL's wall boxes, centred on cell (row, col)
# The wall box of cell (r, c) is centred at world (r+1, c+1) and qpos 0 sits at world 1.2, so in
# qpos coordinates cell (r, c) is centred at (r - 0.2, c - 0.2).
CELL_OFFSET = -0.2


def draw_maze(ax, maze: MazeSpec) -> None:
    """Walls in D4RL's frame, drawn with x = column (qpos[1]) across and row (qpos[0]) down."""
    for row, col in np.argwhere(maze.walls):
        r, c = row + CELL_OFFSET, col + CELL_OFFSET
        ax.add_patch(plt.Rectangle((c - WALL_HALF_SIZE, r - WALL_HALF_SIZE), 1, 1, color="0.25"))
    rows, cols = maze.walls.shape
    ax.set_xlim(-0.5 + CELL_OFFSET, cols - 0.5 + CELL_OFFSET)
    ax.set_ylim(rows - 0.5 + CELL_OFFSET, -0.5 + CELL_OFFSET)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_episodes(
    path: str | Path,
    maze: MazeSpec,
    trajectories: np.ndarray,
    targets: np.ndarray,
    plans: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Write episodes_figure(...) as a PNG."""
    fig = episodes_figure(maze, trajectories, targets, plans, title)
    with atomic_output(path) as temp:
        fig.savefig(temp, dpi=110, format="png")
    plt.close(fig)


def episodes_figure(
    maze: MazeSpec, trajectories: np.ndarray, targets: np.ndarray, plans: np.ndarray | None = None, title: str = ""
) -> plt.Figure:
    """One panel per episode: executed xy (blue), start, target, and the last plan (orange)."""
    count = len(trajectories)
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        draw_maze(ax, maze)
        xy = trajectories[i]
        ax.plot(xy[:, 1], xy[:, 0], color="tab:blue", lw=1.2, label="executed")
        ax.scatter(xy[0, 1], xy[0, 0], color="tab:green", s=30, zorder=3, label="start")
        ax.scatter(targets[i, 1], targets[i, 0], color="tab:red", marker="*", s=120, zorder=3, label="target")
        if plans is not None:
            ax.plot(plans[i, :, 1], plans[i, :, 0], color="tab:orange", lw=1, ls="--", label="last plan")
    axes[0, 0].legend(loc="lower left", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
