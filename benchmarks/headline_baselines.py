"""The two rows the headline tables need beside the shipped planner, so that they say what the learned
model adds: a model-free route follower, and a model trained 200 steps as a new user might.

    python benchmarks/headline_baselines.py [--family maze2d ogbench] [--steps 200]

- route follower: the shipped sampler on a re-initialized denoiser (the checkpoint's description and
  routes, fresh weights: `python benchmarks/ablations.py --untrained ENV_ID`), plan-space guidance at
  scale 15 pulling the plan along the data's routes, PD on the current step (`--track-ahead 0`, its
  best in results/ablations.md): no learned model acts;
- 200 steps: `dfplan train --env ENV --steps 200` (the family's tuned config and default dataset,
  about 20 s here), evaluated with its own planner settings.
Both on the headline tables' episodes (maze2d: 100 episodes of seed 0 per task; OGBench: 250 of seed 0
per dataset), written as results/{follower,short}_maze2d-TASK.json and results/ogbench/short_NAME.json
(OGBench's follower is its ablation column `untrainedplan15track0`, the same command on the same
episodes); benchmarks/maze2d_table.py and benchmarks/ogbench_table.py put them in the tables. A stored
result for the same episodes, seed and checkpoint is reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from ablations import task_flags, untrained_checkpoint
from dfplan_eval import cached_eval, planning_digest
from report import RESULTS, ROOT

MAZE2D_TASKS = ("umaze", "medium", "large", "umaze-multi", "medium-multi", "large-multi")
OGBENCH = tuple(f"pointmaze-{maze}-{kind}-v0" for kind in ("navigate", "stitch") for maze in ("medium", "large", "giant"))
FOLLOWER = ["--guidance", "plan", "--guidance-scale", "15", "--track-ahead", "0"]
SEED = 0


def short_run(env: str, steps: int) -> str:
    """The checkpoint of `dfplan train --env ENV --steps STEPS` (trained once, kept in runs/short/)."""
    out = ROOT / "runs" / "short" / f"{env}-{steps}steps"
    if not (out / "model.json").exists():
        subprocess.run([sys.executable, "-m", "dfplanner.cli", "train", "--env", env, "--steps", str(steps), "--out", str(out)],
                       check=True, cwd=ROOT)
    return str(out / "model.json")


def short_row(env_flags: list[str], env_id: str, out, episodes: int, batch: int, steps: int) -> None:
    short = short_run(env_id, steps)
    cached_eval(out, [*env_flags, "--checkpoint", short], episodes, SEED, planning_digest(short), batch_size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["maze2d", "ogbench"], choices=["maze2d", "ogbench"])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if "maze2d" in args.family:
        for task in MAZE2D_TASKS:
            env_id = f"maze2d-{task.partition('-')[0]}-v1"
            untrained = untrained_checkpoint(env_id)
            cached_eval(RESULTS / f"follower_maze2d-{task}.json", [*task_flags(task), "--checkpoint", untrained, *FOLLOWER], 100, SEED,
                        planning_digest(untrained))
            short_row(task_flags(task), env_id, RESULTS / f"short_maze2d-{task}.json", 100, 100, args.steps)
    if "ogbench" in args.family:
        for name in OGBENCH:
            short_row(["--env", name], name, RESULTS / "ogbench" / f"short_{name}.json", 250, 50, args.steps)


if __name__ == "__main__":
    main()
