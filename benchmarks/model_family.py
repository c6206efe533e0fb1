"""GRU or causal transformer: the shipped GRU checkpoints beside transformers trained for a few minutes.

    python benchmarks/model_family.py [--steps 3000] [--seeds 2 3] [--episodes 100]

Trains one transformer per maze (`dfplan train --env maze2d-MAZE --config
benchmarks/configs/maze2d-large-transformer.toml --steps N --threads 2 --out
runs/family-transformer-MAZE`; that file only swaps the [model] section, so each maze keeps its own
data, tokens and planner), skipped when the run already reached N steps. Then evaluates both model
families on the six tasks at horizon 5 (shipped) and 1: `dfplan eval --env maze2d-TASK [--multi-goal]
--episodes N --seed S --batch-size N --checkpoint C [--horizon 1]`, cached in
results/model_family/TASK/NAME-seedS.json. The step count comes from results/training_curve.md (both
families at their plateau by 3,000 steps on seed 0), so the default seeds are 2 and 3, used for neither
that choice nor the planner's tuning. Both families' planning speed on maze2d-large is measured in the
same run as planning_speed.py measures it (`measure`: one env on one thread, median of three runs; all
episodes batched on two threads), so run it on an otherwise idle machine. Writes
results/model_family.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from dfplanner.envs.layouts import resolve_env_id
from dfplanner.evaluation.pretrained import shipped_checkpoint

from ablations import cell, task_flags
from dfplan_eval import cached_eval, planning_digest
from maze2d_table import TASKS
from planning_speed import measure
from report import ROOT, RESULTS, publish

FOLDER = RESULTS / "model_family"
CONFIG = "benchmarks/configs/maze2d-large-transformer.toml"
MAZES = ("umaze", "medium", "large")


def train_transformer(maze: str, steps: int) -> dict:
    """The maze's transformer run (trained now unless it reached `steps`) and its wall time if trained now."""
    out = ROOT / "runs" / f"family-transformer-{maze}"
    state = out / "train_state.json"
    if state.exists() and json.loads(state.read_text())["step"] >= steps:
        return {"checkpoint": str(out / "model.json"), "wall_time_min": None}
    command = [sys.executable, "-m", "dfplanner.cli", "train", "--env", f"maze2d-{maze}", "--config", CONFIG,
               "--steps", str(steps), "--threads", "2", "--out", str(out), *(["--resume"] if state.exists() else [])]
    print(" ".join(command[2:]), flush=True)
    start = time.perf_counter()
    if subprocess.run(command, cwd=ROOT).returncode != 0:  # its progress bar and any error go to the terminal
        raise SystemExit(f"training failed: {' '.join(command)}")
    return {"checkpoint": str(out / "model.json"), "wall_time_min": (time.perf_counter() - start) / 60}


def evaluate_cell(task: str, name: str, checkpoint: str, flags: list[str], seed: int, episodes: int) -> None:
    """One cell's evaluation JSON, unless it exists for the same episodes, seed, checkpoint and settings."""
    cached_eval(FOLDER / task / f"{name}-seed{seed}.json", [*task_flags(task), "--checkpoint", checkpoint, *flags], episodes, seed, planning_digest(checkpoint))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()

    runs = {maze: train_transformer(maze, args.steps) for maze in MAZES}
    times_path = FOLDER / "training.json"
    FOLDER.mkdir(parents=True, exist_ok=True)
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    times.update({maze: run["wall_time_min"] for maze, run in runs.items() if run["wall_time_min"] is not None})
    times_path.write_text(json.dumps(times, indent=1) + "\n")

    rows = {"gru": "shipped GRU (821,564 parameters)", "gru-horizon-1": "shipped GRU, horizon 1",
            "transformer": f"transformer (452,284 parameters), {args.steps} steps", "transformer-horizon-1": "transformer, horizon 1"}
    for task in TASKS:
        maze = task.partition("-")[0]
        checkpoints = {"gru": str(shipped_checkpoint(resolve_env_id(f"maze2d-{maze}"))), "transformer": runs[maze]["checkpoint"]}
        for name in rows:
            family, _, horizon_1 = name.partition("-")
            for seed in args.seeds:
                evaluate_cell(task, name, checkpoints[family], ["--horizon", "1"] if horizon_1 else [], seed, args.episodes)

    speed_env = resolve_env_id("maze2d-large")
    speeds = [measure(label, ["--checkpoint", checkpoint], speed_env, args.episodes, args.seeds[0]) for label, checkpoint in
              (("shipped GRU", str(shipped_checkpoint(speed_env))), ("transformer", runs["large"]["checkpoint"]))]
    (FOLDER / "speed.json").write_text(json.dumps(speeds, indent=1) + "\n")
    speed_rows = "\n".join(f"| {r['name']} | {r['single_env_plans_per_s']:.1f} ({min(r['single_env_plans_per_s_runs']):.0f}-"
                           f"{max(r['single_env_plans_per_s_runs']):.0f}) | {r['batched_env_steps_per_s']:.0f} |" for r in speeds)

    header = "| row | " + " | ".join(TASKS) + " |\n|---|" + "---|" * len(TASKS)
    lines = [f"| {label} | " + " | ".join(cell(task, name, FOLDER) for task in TASKS) + " |" for name, label in rows.items()]
    trained = ", ".join(f"{maze} {times[maze]:.1f} min" for maze in MAZES if times.get(maze) is not None)
    publish("model_family", (
        f"GRU or causal transformer, made by `python benchmarks/model_family.py` (commands in its docstring): normalized "
        f"score, mean over seeds {', '.join(map(str, args.seeds))} ({args.episodes} episodes each) with its standard error, "
        f"and the success rate. Transformer training wall time on this machine (2 threads): {trained or 'not recorded'}.\n\n"
        f"{header}\n" + "\n".join(lines) + "\n\n"
        f"Planning speed on {speed_env}, both measured in this run (seed {args.seeds[0]}, {args.episodes} episodes batched):\n\n"
        "| model | plans/s, 1 env, 1 thread (median; 3 runs) | env steps/s, batched |\n|---|---|---|\n" + speed_rows + "\n"))


if __name__ == "__main__":
    main()
