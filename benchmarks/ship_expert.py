"""Ship a trained expert: its actor as safetensors, its training curve, and what it does, measured.

    dfplan expert train --env ant            # runs/experts/ant (about 1.3 h of one core; resumable)
    python benchmarks/ship_expert.py [--name ant] [--run runs/experts/ant] [--episodes 20]

Copies the run's exported actor to results/experts/NAME.safetensors (package data of dfplanner.data,
which loads it) and its curve to results/experts/NAME_curve.csv, evaluates the shipped actor on
`--episodes` deterministic episodes of its training env (return, and speed along the commanded
direction: the return over the episode's seconds) and writes results/experts/NAME.json,
results/expert_NAME.md and the curve's picture results/experts/NAME_curve.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from dfplanner.data.sac_expert import ACTOR_FILE, CURVE_FILE, ExpertActor, evaluate_actor  # noqa: E402
from dfplanner.envs import EXPERTS  # noqa: E402
from dfplanner.training.checkpoint import file_sha256  # noqa: E402

from report import RESULTS, ROOT, publish  # noqa: E402

EVAL_SEED = 1_000_000  # evaluation episodes none of the training's evaluations used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="ant", choices=sorted(EXPERTS))
    parser.add_argument("--run", type=Path, default=None, help="the training folder (default: runs/experts/NAME)")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    run = args.run or ROOT / "runs" / "experts" / args.name
    folder = RESULTS / "experts"
    folder.mkdir(exist_ok=True)
    actor_path, curve_path = folder / f"{args.name}.safetensors", folder / f"{args.name}_curve.csv"
    shutil.copyfile(run / ACTOR_FILE, actor_path)
    shutil.copyfile(run / CURVE_FILE, curve_path)
    recipe = json.loads((run / "recipe.json").read_text())
    rows = list(csv.DictReader(curve_path.open()))
    scores = evaluate_actor(ExpertActor(actor_path), EXPERTS[args.name], args.episodes, seed=EVAL_SEED)
    record = {"recipe": recipe, "env_steps": int(rows[-1]["env_steps"]), "training_seconds": float(rows[-1]["seconds"]),
              "evaluation": {"episodes": args.episodes, "seed": EVAL_SEED, **scores}, "safetensors_sha256": file_sha256(actor_path)}
    (folder / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([int(r["env_steps"]) for r in rows], [float(r["speed"]) for r in rows], marker="o")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda steps, _: f"{steps / 1000:.0f}k"))
    ax.set_xlabel("env steps")
    ax.set_ylabel("speed along the direction (units/s)")
    ax.set_title(f"{args.name} expert: SAC, deterministic evaluation", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / f"{args.name}_curve.png", dpi=110)
    lines = [f"The {args.name} expert: SAC (stable-baselines3) with OGBench's settings, {record['env_steps']:,} env steps in "
             f"{record['training_seconds'] / 3600:.1f} h on this machine (sharing it with other jobs). Deterministic "
             f"evaluation of the shipped actor on {args.episodes} episodes (seed {EVAL_SEED}): return "
             f"{scores['return']:.1f} per episode, episode length {scores['length']:.0f} steps, speed along the "
             f"commanded direction {scores['speed']:.2f} units/s.", "",
             "| env steps | return (5 episodes) | speed (units/s) |", "|---|---|---|"]
    lines += [f"| {int(r['env_steps']):,} | {float(r['return']):.1f} | {float(r['speed']):.2f} |" for r in rows]
    lines += ["", f"![training curve](experts/{args.name}_curve.png)", "",
              f"`dfplan expert train --env {args.name}`, then `python benchmarks/ship_expert.py --name {args.name}`"]
    publish(f"expert_{args.name}", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
