"""How much faster our oracle is than D4RL's own waypoint controller, so that comparisons with published
maze2d numbers (made on D4RL's files, whose expert is the slower one) say what differs.

    python benchmarks/d4rl_expert.py [--episodes 100] [--seed 0]

D4RL's controller (d4rl/pointmaze/waypoint_controller.py) plans the list of cells to the target once,
then aims PD (p 10, d -1) at the list's current waypoint and moves to the next only on coming within
0.1 of it; ours (`--policy oracle`, envs/oracle.py) re-reads the next cell every step. Both without
noise, on the same single-goal episodes. Writes results/d4rl_expert.json and results/d4rl_expert.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dfplanner.envs.maze2d import OraclePolicy
from dfplanner.envs.oracle import D_GAIN, P_GAIN, WAYPOINT_THRESHOLD
from dfplanner.evaluation.rollout import evaluate

from report import RESULTS, publish

MAZES = ("maze2d-umaze", "maze2d-medium", "maze2d-large")


class WaypointListPolicy(OraclePolicy):
    """D4RL's waypoint controller: the path planned once per episode, each waypoint held until reached."""

    name = "d4rl-waypoint-list"

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        super().reset(observations, targets)
        cells = len(self.expert.maze.free_cells)  # a path is never longer; the target repeats at its end
        self.waypoints = self.expert.path(observations[:, :2].astype(np.float64), cells)
        self.current = np.zeros(len(observations), dtype=np.int64)

    def act(self, observations: np.ndarray) -> np.ndarray:
        state, rows = observations.astype(np.float64), np.arange(len(observations))
        reached = np.linalg.norm(state[:, :2] - self.waypoints[rows, self.current], axis=1) < WAYPOINT_THRESHOLD
        self.current = np.minimum(self.current + reached, self.waypoints.shape[1] - 1)
        aim = self.waypoints[rows, self.current]
        return np.clip(P_GAIN * (aim - state[:, :2]) + D_GAIN * state[:, 2:], -1.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for maze in MAZES:
        for policy in (OraclePolicy(maze), WaypointListPolicy(maze)):
            result = evaluate(maze, policy, args.episodes, seed=args.seed, batch_size=args.episodes, progress=False)
            results[f"{maze} {policy.name}"] = {k: result[k] for k in ("normalized_score_mean", "normalized_score_sem",
                                                                       "success_rate", "first_reach_mean")}
    (RESULTS / "d4rl_expert.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [f"Single-goal maze2d, {args.episodes} episodes of seed {args.seed}, no action noise: our oracle against "
             "D4RL's waypoint-list controller on the same episodes.", "",
             "| maze | ours: normalized (± sem) | ours: first arrival | D4RL's controller: normalized (± sem) | D4RL's: first arrival |",
             "|---|---|---|---|---|"]
    for maze in MAZES:
        ours, theirs = results[f"{maze} oracle"], results[f"{maze} d4rl-waypoint-list"]
        lines.append(f"| {maze} | {ours['normalized_score_mean']:.1f} ± {ours['normalized_score_sem']:.1f} | {ours['first_reach_mean']:.0f} | "
                     f"{theirs['normalized_score_mean']:.1f} ± {theirs['normalized_score_sem']:.1f} | {theirs['first_reach_mean']:.0f} |")
    publish("d4rl_expert", "\n".join(lines) + "\n\n`python benchmarks/d4rl_expert.py`\n")


if __name__ == "__main__":
    main()
