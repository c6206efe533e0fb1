"""Training throughput (samples/s) of a maze config on this machine; appends a record per run.

    python benchmarks/training_speed.py [--env maze2d-large] [--threads 2] [--steps 60] [--label TEXT]

Times `Trainer.train_step` (window sampling, loss, backward, AdamW, EMA) after a short warm-up, on a
freshly generated dataset (throughput does not depend on its size). Each run appends a record with
the git commit to results/training_speed.json and rewrites results/training_speed.md, so numbers
from before and after a change to the training path sit side by side.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import dfplanner
from dfplanner.training.config import load_config
from dfplanner.data.datasets import load_dataset
from dfplanner.envs.layouts import resolve_env_id
from dfplanner.data.maze2d_recipe import generate
from dfplanner.training.trainer import Trainer

RESULTS = Path(__file__).resolve().parent.parent / "results"
WARMUP_STEPS = 5
DATASET_STEPS = 200_000


def git_commit() -> str:
    """The commit of the dfplanner code measured (the imported package's, e.g. another worktree's)."""
    root = Path(dfplanner.__file__).resolve().parent.parent
    run = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return run.stdout.strip() or "unknown"


def measure(env: str, threads: int, steps: int, batch_size: int | None, label: str) -> dict:
    torch.set_num_threads(threads)
    env_id = resolve_env_id(env)
    config = load_config(env_id.removesuffix("-v1"))
    if batch_size:
        config["training"]["batch_size"] = batch_size
    with tempfile.TemporaryDirectory() as tmp:
        info = generate(env_id, steps=DATASET_STEPS, seed=0, out=Path(tmp) / "data.hdf5")
        trainer = Trainer(load_dataset(info["path"]), config, Path(tmp) / "run", env_id=env_id, device="cpu")
        for _ in range(WARMUP_STEPS):
            trainer.train_step()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        seconds = time.perf_counter() - start
    batch = config["training"]["batch_size"]
    return {
        "commit": git_commit(),
        "label": label,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "env": env_id,
        "threads": threads,
        "batch_size": batch,
        "tokens_per_window": config["tokens"]["window"],
        "steps_timed": steps,
        "steps_per_s": steps / seconds,
        "samples_per_s": steps * batch / seconds,
    }


def write_table(records: list[dict]) -> None:
    lines = [
        "| date | commit | code | env | threads | batch | steps/s | samples/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['date'][:16]} | {r['commit']} | {r['label']} | {r['env']} | {r['threads']} | {r['batch_size']} | "
            f"{r['steps_per_s']:.1f} | {r['samples_per_s']:.0f} |"
        )
    (RESULTS / "training_speed.md").write_text(
        "Training throughput, made by `python benchmarks/training_speed.py` (one row per run).\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="maze2d-large")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the env config's")
    parser.add_argument("--label", default="", help="what the measured code is, e.g. the change under test")
    args = parser.parse_args()
    record = measure(args.env, args.threads, args.steps, args.batch_size, args.label)
    path = RESULTS / "training_speed.json"
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(record)
    path.write_text(json.dumps(records, indent=1) + "\n")
    write_table(records)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
