"""Score against training time on maze2d-large, for the shipped configuration or another model.

    python benchmarks/training_curve.py --name recurrent
    python benchmarks/training_curve.py --name transformer --config benchmarks/configs/maze2d-large-transformer.toml
    python benchmarks/training_curve.py --plot-only

Trains like `dfplan train --env maze2d-large [--config FILE]` (same generated dataset, same
committed configuration, `--threads` threads) into runs/curve-NAME, and every `--eval-every` steps
evaluates the EMA weights with the configuration's planner on `--episodes` episodes (seed 0, the
published tables' episodes). Training time excludes the evaluations. Each point is appended to
results/training_curve/NAME.json as soon as it is measured; an interrupted run continues with
`--resume` (the time between the last point and the interruption is not counted). The final weights
and their routes are copied to results/training_curve/NAME/model.*, so results/ablations.md can evaluate them. Every curve found there is
drawn in results/training_curve.png and tabulated in results/training_curve.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from dfplanner.training.config import load_config
from dfplanner.data.datasets import load_dataset
from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.evaluation.rollout import evaluate
from dfplanner.data.maze2d_recipe import default_dataset_path, generate
from dfplanner.evaluation.pretrained import load_planner
from dfplanner.planning.routes import ROUTES_SUFFIX
from dfplanner.training.trainer import Trainer

from maze2d_table import PAPER_DF
from report import ROOT, RESULTS, publish

FOLDER = RESULTS / "training_curve"
ENV = "maze2d-large"


def train_with_curve(name: str, config_path: Path | None, eval_every: int, episodes: int, threads: int, resume: bool) -> None:
    env_id = resolve_env_id(ENV)
    torch.set_num_threads(threads)
    source = default_dataset_path(ENV)
    if not source.exists():
        generate(env_id)
    config = load_config(ENV, config_path)
    out = ROOT / "runs" / f"curve-{name}"
    record_path = FOLDER / f"{name}.json"
    if (out / "train_state.json").exists() and not resume:
        raise SystemExit(f"{out} already holds a run; pass --resume to continue it, or delete it")
    trainer = Trainer(load_dataset(source), config, out, env_id=env_id, device="cpu")
    record = {"name": name, "config": str(config_path or f"envs/configs/{ENV}.toml"), "model": config["model"],
              "threads": threads, "episodes": episodes, "points": []}
    if resume and trainer.resume() and record_path.exists():
        record = json.loads(record_path.read_text())
    record["parameters"] = sum(p.numel() for p in trainer.model.parameters())
    clock = {"eval": 0.0, "start": time.perf_counter(), "offset": record["points"][-1]["train_seconds"] if record["points"] else 0.0}

    def measure(trained) -> dict:
        tick = time.perf_counter()
        train_seconds = clock["offset"] + tick - clock["start"] - clock["eval"]
        planner = load_planner(trained, env_id, device="cpu", episode_steps=MAZES[env_id].max_episode_steps)
        result = evaluate(env_id, planner, episodes, seed=0, batch_size=episodes, progress=False)
        point = {"step": trainer.step, "train_seconds": train_seconds, "normalized_score_mean": result["normalized_score_mean"],
                 "normalized_score_sem": result["normalized_score_sem"], "success_rate": result["success_rate"]}
        record["points"].append(point)
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"step {point['step']}: {train_seconds / 60:.1f} min of training, normalized {point['normalized_score_mean']:.1f}", flush=True)
        clock["eval"] += time.perf_counter() - tick
        return {"normalized_score": result["normalized_score_mean"], "success_rate": result["success_rate"]}

    trainer.run(evaluate=measure, eval_every=eval_every)
    if not record["points"] or record["points"][-1]["step"] != trainer.step:
        measure(trainer.trained)
    (FOLDER / name).mkdir(exist_ok=True)
    for suffix in (".json", ".safetensors", ROUTES_SUFFIX):  # the routes too: without them the copy plans straight at the goal
        shutil.copyfile(out / f"model{suffix}", FOLDER / name / f"model{suffix}")


def plot_and_table() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(FOLDER.glob("*.json"))]
    oracle = json.loads((RESULTS / f"oracle_{ENV}.json").read_text())["normalized_score_mean"]
    figure, axes = plt.subplots(figsize=(6, 4))
    lines = ["| model | parameters | config | threads | step | training time | normalized (± sem) | success |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        points = r["points"]
        minutes = [p["train_seconds"] / 60 for p in points]
        scores = [p["normalized_score_mean"] for p in points]
        sems = [p["normalized_score_sem"] for p in points]
        axes.errorbar(minutes, scores, yerr=sems, marker="o", capsize=2, label=f"{r['name']} ({r['parameters']:,} parameters)")
        for p in points:
            lines.append(f"| {r['name']} | {r['parameters']:,} | `{r['config']}` | {r['threads']} | {p['step']} | "
                         f"{p['train_seconds'] / 60:.1f} min | {p['normalized_score_mean']:.1f} ± {p['normalized_score_sem']:.1f} | {p['success_rate']:.0%} |")
    axes.axhline(oracle, color="gray", linestyle="--", label=f"oracle ({oracle:.0f})")
    paper = PAPER_DF["large"]
    axes.axhline(paper, color="gray", linestyle=":", label=f"paper DF ({paper:.0f})")
    axes.set(xlabel="training time on this machine (minutes, evaluations excluded)", ylabel="normalized score (100 episodes)", title=ENV)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "training_curve.png", dpi=100)
    text = (f"Score against training time on {ENV} (picture: training_curve.png), made by `python benchmarks/training_curve.py "
            "--name NAME [--config FILE]` (commands in the script's docstring). Each point evaluates the EMA weights at that "
            "step with the configuration's planner, 100 episodes, seed 0.\n\n" + "\n".join(lines) + "\n")
    publish("training_curve", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="the curve's name (its run folder and JSON)")
    parser.add_argument("--config", type=Path, default=None, help="TOML overriding envs/configs/maze2d-large.toml")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--plot-only", action="store_true", help="only redraw the picture and table from the JSON files")
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        if not args.name:
            parser.error("--name is required unless --plot-only")
        train_with_curve(args.name, args.config, args.eval_every, args.episodes, args.threads, args.resume)
    plot_and_table()


if __name__ == "__main__":
    main()
