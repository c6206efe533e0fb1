"""Any registered gymnasium env: Pendulum-v1, from data to returns, with and without reward guidance.

    python benchmarks/pendulum.py [--episodes 50] [--seed 1] [--data pendulum.hdf5]

Records 100 episodes (20,000 steps) of a swing-up controller with N(0, 1) torque noise
(tests/pendulum_task.py), trains on them with benchmarks/configs/pendulum.toml (`dfplan train
--dataset FILE`), then runs `dfplan eval --env Pendulum-v1` with the random policy and the planner under
reward guidance of several strengths. The planner's default for such envs (envs/registered.py: scale
0, guidance off) was chosen on seeds 0 and 5 (10 episodes each); the table is seed --seed.
Writes results/pendulum.json, results/pendulum.md and the README's pendulum block; `--data PATH` keeps
the recorded dataset there (D4RL's hdf5 format) for `dfplan train --dataset PATH`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from dfplanner.data.datasets import load_dataset

from dfplan_eval import run_eval
from report import RESULTS, ROOT, publish

sys.path.insert(0, str(ROOT / "tests"))
from pendulum_task import ENV, recorded  # noqa: E402

EPISODES, NOISE = 100, 1.0
RUNS = {  # name -> dfplan eval flags
    "random policy": ["--policy", "random"],
    "planner, unguided (default)": [],
    "planner, gradient through the model, scale 1": ["--guidance", "model", "--guidance-scale", "1"],
    "planner, gradient through the model, scale 5": ["--guidance", "model", "--guidance-scale", "5"],
    "planner, plan-space gradient, scale 1": ["--guidance", "plan", "--guidance-scale", "1"],
    "planner, plan-space gradient, scale 5": ["--guidance", "plan", "--guidance-scale", "5"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="also keep the recorded dataset in this hdf5 file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, run = recorded(args.data or Path(tmp) / "pendulum.hdf5", episodes=EPISODES, noise=NOISE), Path(tmp) / "run"
        data_return = float(load_dataset(data).rewards.sum() / EPISODES)
        subprocess.run([sys.executable, "-m", "dfplanner.cli", "train", "--dataset", str(data), "--out", str(run),
                        "--config", str(ROOT / "benchmarks/configs/pendulum.toml")], check=True, cwd=ROOT)
        base = ["--env", ENV, "--episodes", str(args.episodes), "--seed", str(args.seed), "--batch-size", str(args.episodes)]
        results = {name: run_eval([*base, *flags, *([] if "--policy" in flags else ["--checkpoint", str(run)])])
                   for name, flags in RUNS.items()}
    summary = {name: {k: v for k, v in r.items() if k != "per_episode"} for name, r in results.items()}
    (RESULTS / "pendulum.json").write_text(json.dumps({"data_return": data_return, "runs": summary}, indent=1) + "\n")
    lines = [f"Pendulum-v1, {args.episodes} episodes, seed {args.seed}; the data (the noisy controller) returns "
             f"{data_return:.0f} per episode.", "",
             "| policy | return (mean ± std) |", "|---|---|"]
    lines += [f"| {name} | {r['return_mean']:.0f} ± {r['return_std']:.0f} |" for name, r in results.items()]
    publish("pendulum", "\n".join(lines) + "\n\n`python benchmarks/pendulum.py`\n")


if __name__ == "__main__":
    main()
