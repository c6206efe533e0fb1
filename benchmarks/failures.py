"""Where the shipped planner's failed episodes end, per maze2d task.

    python benchmarks/failures.py [--episodes 100] [--seed 0]

Runs the published tables' episodes again (same seeds) with trajectories kept and, for every episode
that never reaches the goal, records the cell it ends in and whether it stood still over its last 100
steps (moved less than STILL_DISTANCE in all). Writes results/failures.md and results/failures.json.
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.evaluation.rollout import evaluate
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint

from report import RESULTS, publish

TASKS = [("maze2d-umaze", False), ("maze2d-medium", False), ("maze2d-large", False),
         ("maze2d-umaze", True), ("maze2d-medium", True), ("maze2d-large", True)]
TAIL_STEPS = 100
STILL_DISTANCE = 0.05  # maze units (a cell is 1) travelled over the last TAIL_STEPS steps


def failures(env: str, multi_goal: bool, episodes: int, seed: int) -> dict:
    env_id = resolve_env_id(env)
    steps = MAZES[env_id].max_episode_steps
    planner = load_planner(shipped_checkpoint(env_id), env_id, device="cpu", seed=seed, episode_steps=steps)
    result = evaluate(env, planner, episodes, seed=seed, multi_goal=multi_goal, batch_size=episodes, progress=False, trajectories=episodes)
    ends, still = collections.Counter(), 0
    for episode, xy in zip(result["per_episode"], result["trajectories"]):
        if episode["success"]:
            continue
        ends[str(tuple(int(v) for v in np.round(xy[-1])))] += 1
        still += float(np.linalg.norm(np.diff(xy[-TAIL_STEPS:], axis=0), axis=1).sum()) < STILL_DISTANCE
    return {"task": env + ("-multi" if multi_goal else ""), "episodes": episodes, "failed": sum(ends.values()),
            "standing_still": int(still), "end_cells": dict(ends.most_common()), "normalized_score_mean": result["normalized_score_mean"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [failures(env, multi, args.episodes, args.seed) for env, multi in TASKS]
    (RESULTS / "failures.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| task | failed episodes | standing still at the end | cells they end in (row, column): count |", "|---|---|---|---|"]
    for r in rows:
        cells = ", ".join(f"{cell}: {n}" for cell, n in r["end_cells"].items()) or "-"
        lines.append(f"| {r['task']} | {r['failed']} of {r['episodes']} | {r['standing_still']} | {cells} |")
    text = (f"Failed episodes of the shipped planners, made by `python benchmarks/failures.py --episodes {args.episodes} "
            f"--seed {args.seed}` (the tables' episodes). Standing still: moved less than {STILL_DISTANCE} over the "
            f"last {TAIL_STEPS} steps.\n\n" + "\n".join(lines) + "\n")
    publish("failures", text)


if __name__ == "__main__":
    main()
