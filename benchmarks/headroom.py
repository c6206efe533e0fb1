"""How much score is left above the one-token planner: a layout-aware controller as a ceiling estimate.

    python benchmarks/headroom.py [--tasks medium-multi large-multi] [--seeds 0 1] [--episodes 100]

The pursuit controller knows the maze (so it is a reference, never a planner): it steers with D4RL's PD
law at the point `lookahead` cells of path length ahead along the oracle's shortest cell path, cutting
the corners the oracle drives through. Its lookahead is tuned on seed 777 (the planner's tuning seed)
over LOOKAHEADS, by the mean score over the tasks, then measured on `--seeds` with the ablations'
episodes. The table sets it and the oracle (seeds `--seeds`) beside the ablation rows of results/ablations/
(run benchmarks/ablations.py first). The pursuit controller is not optimal, so its gap to the horizon-1
row is an estimate, not a bound, of what a longer plan could still add. Writes
results/headroom/TASK/pursuit-seedS.json and results/headroom.md.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.envs.oracle import D_GAIN, P_GAIN, WaypointExpert
from dfplanner.envs.family import Policy
from dfplanner.envs.maze2d import OraclePolicy
from dfplanner.evaluation.rollout import evaluate

from ablations import FOLDER as ABLATIONS
from ablations import TASKS, cell, row_results
from report import RESULTS, publish

FOLDER = RESULTS / "headroom"
LOOKAHEADS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
TUNING_SEED = 777
PATH_CELLS = 8  # cells of path to interpolate along: more than the longest lookahead
COMPARED = ("shipped", "horizon-1", "plan-pull-10", "horizon-1-plan-pull-10")


class PursuitController:
    """D4RL's PD law aimed `lookahead` along the shortest cell path (polyline from the particle through the cell centres)."""

    def __init__(self, env_id: str, lookahead: float):
        self.expert, self.lookahead = WaypointExpert(MAZES[env_id]), lookahead
        self.name = f"pursuit-{lookahead}"

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.expert.set_targets(targets)

    def act(self, observations: np.ndarray) -> np.ndarray:
        positions, velocities = observations[:, :2].astype(np.float64), observations[:, 2:].astype(np.float64)
        points = np.concatenate([positions[:, None], self.expert.path(positions, PATH_CELLS)], axis=1)
        lengths = np.linalg.norm(np.diff(points, axis=1), axis=2)
        reach = np.concatenate([np.zeros((len(points), 1)), np.cumsum(lengths, axis=1)], axis=1)
        along = np.minimum(self.lookahead, reach[:, -1])
        segment = np.minimum((reach <= along[:, None]).sum(axis=1) - 1, lengths.shape[1] - 1)
        rows = np.arange(len(points))
        fraction = np.divide(along - reach[rows, segment], lengths[rows, segment],
                             out=np.zeros_like(along), where=lengths[rows, segment] > 0)
        aim = points[rows, segment] + fraction[:, None] * (points[rows, segment + 1] - points[rows, segment])
        return np.clip(P_GAIN * (aim - positions) + D_GAIN * velocities, -1.0, 1.0)


def run(task: str, make_policy: Callable[[str], Policy], seed: int, episodes: int) -> dict:
    """`make_policy(env_id)` evaluated on one ablation task and seed."""
    maze, _, multi = task.partition("-")
    env_id = resolve_env_id(f"maze2d-{maze}")
    return evaluate(env_id, make_policy(env_id), episodes, seed=seed, multi_goal=bool(multi), batch_size=episodes, progress=False)


def mean_score(task: str, name: str, folder: Path = ABLATIONS) -> float:
    """Mean normalized score over every episode of a row's seeds."""
    return float(np.mean([e["normalized_score"] for r in row_results(task, name, folder) for e in r["per_episode"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    missing = [f"{task}/{name}" for task in args.tasks for name in COMPARED if not row_results(task, name)]
    if missing:
        raise SystemExit(f"no ablation results for {', '.join(missing)} in {ABLATIONS}: run benchmarks/ablations.py first")

    def pursuit(lookahead: float) -> Callable[[str], Policy]:
        return lambda env_id: PursuitController(env_id, lookahead)

    tuning = {a: [run(task, pursuit(a), TUNING_SEED, args.episodes)["normalized_score_mean"] for task in args.tasks] for a in LOOKAHEADS}
    best = max(LOOKAHEADS, key=lambda a: np.mean(tuning[a]))
    for task in args.tasks:
        for seed in args.seeds:
            for name, make_policy in (("pursuit", pursuit(best)), ("oracle", OraclePolicy)):
                out = FOLDER / task / f"{name}-seed{seed}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(run(task, make_policy, seed, args.episodes), indent=1) + "\n")

    grid = "\n".join(f"| {a} | " + " | ".join(f"{s:.1f}" for s in tuning[a]) + " |" for a in LOOKAHEADS)
    rows = [f"| pursuit controller (knows the maze), lookahead {best} | " + " | ".join(cell(t, "pursuit", FOLDER) for t in args.tasks) + " |",
            "| oracle (knows the maze; the README's reference) | " + " | ".join(cell(t, "oracle", FOLDER) for t in args.tasks) + " |"]
    rows += [f"| {name} (results/ablations.md) | " + " | ".join(cell(t, name) for t in args.tasks) + " |" for name in COMPARED]
    rows.append("| **pursuit minus horizon-1**: room between the one-token planner and the best controller measured | "
                + " | ".join(f"{mean_score(t, 'pursuit', FOLDER) - mean_score(t, 'horizon-1'):+.1f}" for t in args.tasks) + " |")
    header = "| | " + " | ".join(args.tasks) + " |\n|---|" + "---|" * len(args.tasks)
    text = (
        f"Headroom above the one-token planner, made by `python benchmarks/headroom.py` (pursuit cells: "
        f"{args.episodes} episodes per seed; the other rows are results/ablations/). Normalized score, mean over the "
        f"seeds with its standard error over their episodes, and the success rate.\n\n{header}\n" + "\n".join(rows) + "\n\n"
        f"Pursuit lookahead tuned on seed {TUNING_SEED} ({args.episodes} episodes; normalized score):\n\n"
        "| lookahead (cells) | " + " | ".join(args.tasks) + " |\n|---|" + "---|" * len(args.tasks) + f"\n{grid}\n"
    )
    publish("headroom", text)


if __name__ == "__main__":
    main()
