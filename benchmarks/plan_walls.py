"""Do plans keep to the maze? The final plan of one decision at each episode start, under the shipped
settings, the `dfplan plan` picture preset, and that preset with weaker or no guidance.

    python benchmarks/plan_walls.py [--seeds 20]

For each maze2d maze and seeds 0..N-1 (the start and target of `dfplan eval`'s first episode of that
seed): the share of planned steps whose position lies in a wall cell (or outside the maze), and the
planned step closest to the target. The walls are used here only to measure, never by the planner.
Writes results/plan_walls.json, results/plan_walls.md and the README's plan_walls block.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dfplanner.evaluation.denoising import record_denoising
from dfplanner.envs.layouts import MAZES, MazeSpec, pos_to_cell
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.evaluation.rollout import episode_seed
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint

from report import RESULTS, publish

REACHED = 0.5  # a plan "reaches" the target when a planned step comes this close (the goal hold's radius)
VARIANTS = {  # name -> (preset, overrides)
    "shipped (acting settings)": ("shipped", {}),
    "picture preset (dfplan plan's default)": ("picture", {}),
    "picture preset, guidance scale 2": ("picture", {"guidance_scale": 2.0}),
    "picture preset, unguided": ("picture", {"guidance_scale": 0.0}),
}


def in_walls(maze: MazeSpec, positions: np.ndarray) -> float:
    cells = pos_to_cell(positions)
    rows, cols = maze.walls.shape
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) & (cells[:, 1] < cols)
    walls = maze.walls[np.clip(cells[:, 0], 0, rows - 1), np.clip(cells[:, 1], 0, cols - 1)]
    return float(np.mean(~inside | walls))


def measure(maze: MazeSpec, preset: str, overrides: dict, seeds: int) -> dict:
    walls, closest = [], []
    for seed in range(seeds):
        planner = load_planner(shipped_checkpoint(maze.env_id), device="cpu", seed=seed, preset=preset, **overrides)
        observation, info = Maze2dEnv(maze.name).reset(seed=episode_seed(seed, 0))
        positions = record_denoising(planner, observation, info["target"]).positions[-1]
        walls.append(in_walls(maze, positions))
        closest.append(float(np.linalg.norm(positions - info["target"], axis=1).min()))
    return {"in_walls": float(np.mean(walls)), "reached": float(np.mean(np.array(closest) < REACHED)),
            "closest_mean": float(np.mean(closest)), "per_seed_in_walls": walls, "per_seed_closest": closest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    results = {name: {maze.name: measure(maze, *VARIANTS[name], args.seeds) for maze in MAZES.values()} for name in VARIANTS}
    (RESULTS / "plan_walls.json").write_text(json.dumps({"seeds": args.seeds, "results": results}, indent=1) + "\n")
    mazes = [maze.name for maze in MAZES.values()]
    lines = [f"Final plan of the first decision, seeds 0-{args.seeds - 1}: share of planned steps in walls / "
             f"plans with a step within {REACHED} of the target.", "",
             "| settings | " + " | ".join(mazes) + " |", "|---|" + "---|" * len(mazes)]
    for name, per_maze in results.items():
        cells = [f"{per_maze[m]['in_walls']:.0%} / {per_maze[m]['reached']:.0%}" for m in mazes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    publish("plan_walls", "\n".join(lines) + "\n\n`python benchmarks/plan_walls.py`\n")


if __name__ == "__main__":
    main()
