"""Pictures of mazes, executed trajectories and plans, and the denoising of a plan (matplotlib, no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dfplanner.utils.atomic import atomic_output, check_writable  # noqa: E402
from dfplanner.envs.family import EvalTask, MazeLayout  # noqa: E402
from dfplanner.errors import DfplannerError  # noqa: E402

if TYPE_CHECKING:
    from dfplanner.evaluation.denoising import Denoising

NOISE_CMAP = "plasma"  # noise level 0 (clean) dark, K (pure noise) light
DENOISING_SUFFIXES = (".gif", ".png")
GRID_PANELS = 6  # sampling rows shown side by side in the PNG / TensorBoard picture
PANELS_PER_ROW = 4  # episodes per row of an episodes picture
PLOTTED_EPISODES = 16  # `dfplan eval --plot` draws the last episodes of the run, at most this many
HOLD_LAST_SECONDS = 2.0  # the animation rests on the finished plan before looping


def layout_of(task: EvalTask) -> MazeLayout:
    """The picture of an evaluation task's maze, or a user error for a family without one."""
    layout = task.family.layout(task.env_id)
    if layout is None:
        raise DfplannerError(f"pictures (--plot, dfplan plan) are drawn over a maze; {task.name} has none to draw")
    return layout


def draw_maze(ax, layout: MazeLayout) -> None:
    half = layout.cell / 2
    for row, col in np.argwhere(layout.walls):
        across, down = layout.origin[0] + col * layout.cell, layout.origin[1] + row * layout.cell
        ax.add_patch(plt.Rectangle((across - half, down - half), layout.cell, layout.cell, color="0.25"))
    rows, cols = layout.walls.shape
    ax.set_xlim(layout.origin[0] - half, layout.origin[0] + (cols - 0.5) * layout.cell)
    ax.set_ylim(layout.origin[1] + (rows - 0.5) * layout.cell, layout.origin[1] - half)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_episodes(
    path: str | Path,
    layout: MazeLayout,
    trajectories: np.ndarray,
    targets: np.ndarray,
    plans: list[np.ndarray | None] | np.ndarray | None = None,
    title: str = "",
) -> None:
    """Write episodes_figure(...) as a PNG."""
    fig = episodes_figure(layout, trajectories, targets, plans, title)
    with atomic_output(path) as temp:
        fig.savefig(temp, dpi=110, format="png")
    plt.close(fig)


def episodes_figure(
    layout: MazeLayout,
    trajectories: np.ndarray,
    targets: np.ndarray,
    plans: list[np.ndarray | None] | np.ndarray | None = None,
    title: str = "",
) -> plt.Figure:
    """One panel per episode, PANELS_PER_ROW to a row: executed xy (blue), start, target, and the last
    plan (orange) where `plans` has one for the episode."""
    count = len(trajectories)
    columns = min(count, PANELS_PER_ROW)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.axis("off")
            continue
        draw_maze(ax, layout)
        path, target = layout.screen(trajectories[i]), layout.screen(targets[i])
        ax.plot(path[:, 0], path[:, 1], color="tab:blue", lw=1.2, label="executed")
        ax.scatter(path[0, 0], path[0, 1], color="tab:green", s=30, zorder=3, label="start")
        ax.scatter(target[0], target[1], color="tab:red", marker="*", s=120, zorder=3, label="target")
        if plans is not None and plans[i] is not None:
            plan = layout.screen(plans[i])
            ax.plot(plan[:, 0], plan[:, 1], color="tab:orange", lw=1, ls="--", label="last plan")
    axes[0, 0].legend(loc="lower left", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def check_denoising_path(path: str | Path) -> Path:
    """An animation (.gif) or a picture of a few rows side by side (.png), in a writable folder."""
    path = Path(path)
    if path.suffix.lower() not in DENOISING_SUFFIXES:
        raise DfplannerError(f"cannot write {path}: use a {' or '.join(DENOISING_SUFFIXES)} file name")
    return check_writable(path)


def draw_denoising_frame(maze_ax, matrix_ax, layout: MazeLayout, denoising: Denoising, frame: int) -> None:
    """One sampling row: the plan's clean estimate over the maze, each token colored by its current
    noise level, above the scheduling matrix with that row outlined."""
    cmap = plt.get_cmap(NOISE_CMAP)
    row = denoising.rows[frame]
    levels = denoising.schedule[row] / denoising.num_levels
    draw_maze(maze_ax, layout)
    path = layout.screen(np.vstack([denoising.start, denoising.positions[frame]]))
    token = np.arange(len(path) - 1) // denoising.frame_stack
    segments = LineCollection(np.stack([path[:-1], path[1:]], axis=1), colors=cmap(levels[token]), linewidths=2.5 - 1.5 * levels[token])
    maze_ax.add_collection(segments)
    ends = path[denoising.frame_stack :: denoising.frame_stack]
    maze_ax.scatter(ends[:, 0], ends[:, 1], color=cmap(levels[: len(ends)]), s=9, zorder=3)
    start, goal = layout.screen(denoising.start), layout.screen(denoising.goal)
    maze_ax.scatter(start[0], start[1], color="tab:green", s=40, zorder=4, label="agent")
    maze_ax.scatter(goal[0], goal[1], color="tab:red", marker="*", s=140, zorder=4, label="goal")
    maze_ax.set_title(f"sampling row {row} of {len(denoising.schedule) - 1}", fontsize=8)
    matrix_ax.imshow(denoising.schedule / denoising.num_levels, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    tokens = denoising.schedule.shape[1]
    matrix_ax.add_patch(plt.Rectangle((-0.5, row - 0.5), tokens, 1, fill=False, edgecolor="tab:cyan", linewidth=1.5))
    matrix_ax.set_title("noise levels (dark = clean)", fontsize=7)
    matrix_ax.set_xlabel(f"token ({denoising.frame_stack} env steps each)", fontsize=7)
    matrix_ax.set_ylabel("row", fontsize=7)
    matrix_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    matrix_ax.tick_params(labelsize=6)


def denoising_figure(layout: MazeLayout, denoising: Denoising, panels: int = GRID_PANELS) -> plt.Figure:
    """A few sampling rows side by side, from the first to the finished plan (PNG and TensorBoard)."""
    frames = np.unique(np.linspace(0, len(denoising.rows) - 1, panels).round().astype(int))
    fig = plt.figure(figsize=(2.6 * len(frames), 3.4))
    for subfig, frame in zip(np.atleast_1d(fig.subfigures(1, len(frames))), frames):
        maze_ax, matrix_ax = subfig.subplots(2, 1, height_ratios=[3, 1])
        draw_denoising_frame(maze_ax, matrix_ax, layout, denoising, frame)
    fig.suptitle("one plan denoised under the scheduling matrix (color: each token's noise level)", fontsize=9)
    return fig


def write_denoising(path: str | Path, layout: MazeLayout, denoising: Denoising, fps: float = 5.0) -> None:
    """The denoising as an animated GIF (one frame per sampling row) or, for .png, `denoising_figure`."""
    from PIL import Image

    path = check_denoising_path(path)
    if path.suffix.lower() == ".png":
        fig = denoising_figure(layout, denoising)
        with atomic_output(path) as temp:
            fig.savefig(temp, dpi=100, format="png")
        plt.close(fig)
        return
    fig, (maze_ax, matrix_ax) = plt.subplots(2, 1, figsize=(4.4, 5.0), height_ratios=[3, 1], layout="constrained")
    images = []
    for frame in range(len(denoising.rows)):
        maze_ax.clear()
        matrix_ax.clear()
        draw_denoising_frame(maze_ax, matrix_ax, layout, denoising, frame)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(colors=256))
    plt.close(fig)
    images += [images[-1]] * round(HOLD_LAST_SECONDS * fps)
    with atomic_output(path) as temp:
        images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def plot_run(path: str | Path, task: EvalTask, policy, result: dict) -> None:
    """The last episodes of an evaluation (at most PLOTTED_EPISODES), with the final plan of those the
    planner still holds (the last batch's)."""
    count = min(PLOTTED_EPISODES, result["episodes"])
    plan = getattr(policy, "last_plan", None)
    plans = None
    if plan is not None and plan.observations is not None:
        held = plan.observations[-count:, :, list(policy.settings.position_dims)]
        plans = [None] * (count - len(held)) + list(held)
    targets = np.array([episode["target"] for episode in result["per_episode"][-count:]])
    score = f"normalized {result['normalized_score_mean']:.1f}" if task.normalize else f"return {result['return_mean']:.1f}"
    title = f"{task.name} {result['policy']}: {score}, success {result['success_rate']:.0%}"
    plot_episodes(path, layout_of(task), result["trajectories"][-count:], targets, plans, title)
