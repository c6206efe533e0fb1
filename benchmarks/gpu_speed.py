"""Planning and training speed on a CUDA GPU, for a user who has one (this project's machines have none).

    python benchmarks/gpu_speed.py [--env maze2d-large] [--batches 1 64 1024] [--precision float32 bfloat16] [--train-steps 50]

Planning: the shipped planner on `--env`, B environments in lockstep (one `evaluate` of B episodes of
the env's full length, seed 0): plans/s summed over the batch and actions/s inside the policy, with its
success rate (so a fast setting that plans badly shows). Training: `Trainer.train_step` on a
200,000-step dataset of the env's recipe with its tuned config, steps/s and samples/s after a warm-up.
Writes results/gpu_speed.json and results/gpu_speed.md; refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from dfplanner.data.datasets import load_dataset
from dfplanner.envs import family_of
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint
from dfplanner.evaluation.rollout import eval_task, evaluate
from dfplanner.training.config import load_config
from dfplanner.training.trainer import Trainer

from report import RESULTS, publish

WARMUP_STEPS = 5
DATASET_STEPS = 200_000


def planning(env: str, batch: int, precision: str) -> dict:
    task = eval_task(env)
    planner = load_planner(shipped_checkpoint(task.env_id), task.env_id, task.obs_dim, device="cuda", precision=precision,
                           episode_steps=task.steps)
    result = evaluate(task, planner, episodes=batch, batch_size=batch, progress=False)
    actions_per_s = result["decisions_per_second"]
    return {"batch": batch, "precision": precision, "actions_per_s": actions_per_s,
            "plans_per_s": actions_per_s / planner.replan_every, "success_rate": result["success_rate"]}


def training(env: str, steps: int) -> dict:
    task = eval_task(env)
    family = family_of(env)
    config = load_config(family.config_name(task.env_id))
    with tempfile.TemporaryDirectory() as tmp:
        family.generate(task.env_id, seed=0, out=str(Path(tmp) / "data.hdf5"), progress=False, steps=DATASET_STEPS)
        trainer = Trainer(load_dataset(Path(tmp) / "data.hdf5"), config, Path(tmp) / "run", env_id=task.env_id, device="cuda")
        for _ in range(WARMUP_STEPS):
            trainer.train_step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    batch = config["training"]["batch_size"]
    return {"steps_per_s": steps / seconds, "samples_per_s": steps * batch / seconds, "batch_size": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="maze2d-large")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--train-steps", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_speed.py needs a CUDA device; this machine has none")
    rows = [planning(args.env, batch, precision) for precision in args.precision for batch in args.batches]
    train = training(args.env, args.train_steps)
    device = torch.cuda.get_device_name()
    (RESULTS / "gpu_speed.json").write_text(json.dumps({"device": device, "env": args.env, "planning": rows, "training": train}, indent=1) + "\n")
    lines = [f"{args.env} on {device}, made by `python benchmarks/gpu_speed.py`.", "",
             "| environments | precision | plans/s (all envs) | actions/s | success |", "|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['precision']} | {r['plans_per_s']:.0f} | {r['actions_per_s']:.0f} | {r['success_rate']:.0%} |" for r in rows]
    lines += ["", f"Training: {train['steps_per_s']:.1f} steps/s, {train['samples_per_s']:.0f} samples/s (batch {train['batch_size']})."]
    publish("gpu_speed", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
