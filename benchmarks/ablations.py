"""Ablations of the shipped maze2d planner: what the learned model, the plan's horizon, the guidance
strategy, MCG and the action source each add. Each row changes one thing from the shipped planner.

    python benchmarks/ablations.py [--tasks medium-multi large-multi] [--seeds 0 1] [--episodes 100] [--only NAME ...]

Each cell is `dfplan eval --env maze2d-TASK [--multi-goal] --episodes N --seed S --batch-size N FLAGS
--json results/ablations/TASK/NAME-seedS.json`; the table gives the mean over seeds of the normalized
score with its standard error over all episodes, and the success rate. Cells whose JSON exists for the
same episodes, seed and shipped checkpoint (its JSON's sha256) are not re-run, so an interrupted run
resumes; delete a JSON to measure it again. The "untrained" row plans with the shipped sampler and
guidance (and routes) on a re-initialized denoiser (written to runs/ablations/, not committed).
Writes results/ablations.md from every JSON present.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from dfplanner.training.checkpoint import HEADS_KEY, ROUTES_DIGEST_KEY, TrainedModel, load_trained_model
from dfplanner.envs.layouts import resolve_env_id
from dfplanner.evaluation.pretrained import shipped_checkpoint
from dfplanner.planning.routes import routes_path

from dfplan_eval import cached_eval, checkpoint_digest
from report import ROOT, RESULTS, publish

FOLDER = RESULTS / "ablations"
UNTRAINED_DIR = ROOT / "runs" / "ablations"
# name -> (what changes, dfplan eval flags); "{untrained}" stands for the re-initialized checkpoint
ROWS: dict[str, tuple[str, list[str]]] = {
    "shipped": ("the shipped planner", []),
    "horizon-1": ("plans one token (10 steps) ahead", ["--horizon", "1"]),
    "horizon-20": ("plans 20 tokens (200 steps) ahead", ["--horizon", "20"]),
    "track-ahead-0": ("PD tracks the current step's planned state, not the one 15 steps further", ["--track-ahead", "0"]),
    "horizon-1-track-ahead-0": ("the same, planning one token ahead", ["--track-ahead", "0", "--horizon", "1"]),
    "sampling-steps-3": ("3 denoising steps per token instead of 2 (the planner shipped before)", ["--sampling-steps", "3"]),
    "horizon-1-sampling-steps-3": ("the same, planning one token ahead", ["--sampling-steps", "3", "--horizon", "1"]),
    "sampling-steps-4": ("4 denoising steps per token", ["--sampling-steps", "4"]),
    "no-routes": ("aims straight at the goal, not along the data's routes", ["--route-lookahead", "0"]),
    "no-routes-horizon-20": ("the planner shipped before routes: straight at the goal, 20 tokens", ["--route-lookahead", "0", "--horizon", "20"]),
    "untrained": ("re-initialized denoiser, same sampler, guidance and routes", ["--checkpoint", "{untrained}"]),
    "guidance-plan": ("plan-space guidance", ["--guidance", "plan"]),
    "guidance-plan-15": ("plan-space guidance at scale 15 (maze2d-large's setting before routes)", ["--guidance", "plan", "--guidance-scale", "15"]),
    "untrained-guidance-plan-15": ("the same on the re-initialized denoiser", ["--checkpoint", "{untrained}", "--guidance", "plan", "--guidance-scale", "15"]),
    "untrained-guidance-plan-15-track-ahead-0": ("the same with PD on the current step: a model-free route follower at its best",
                                                  ["--checkpoint", "{untrained}", "--guidance", "plan", "--guidance-scale", "15", "--track-ahead", "0"]),
    "plan-pull-10": ("a plan-space pull of scale 10 added after the shipped guidance step (--plan-pull)", ["--plan-pull", "10"]),
    "horizon-1-plan-pull-10": ("the same, planning one token ahead", ["--plan-pull", "10", "--horizon", "1"]),
    "untrained-plan-pull-10": ("the same pull on the re-initialized denoiser", ["--checkpoint", "{untrained}", "--plan-pull", "10"]),
    "guidance-model": ("gradient through the model, bounded x0 step", ["--guidance", "model"]),
    "guidance-paper": ("gradient through the model, the paper's update (Algorithm 2)", ["--guidance", "paper"]),
    "mcg-1": ("Monte Carlo Guidance off", ["--mcg-samples", "1"]),
    "mcg-4": ("Monte Carlo Guidance, 4 samples", ["--mcg-samples", "4"]),
    "mcg-16": ("Monte Carlo Guidance, 16 samples", ["--mcg-samples", "16"]),
    "diffused-actions": ("diffused actions instead of PD tracking", ["--action-mode", "diffused"]),
    "no-hold": ("no goal hold (plans pass through the goal as the data does)", ["--hold-radius", "0"]),
    "no-stabilization": ("generated tokens fed back as clean (stabilization level 0)", ["--stabilization-level", "0"]),
    "full-sequence": ("full-sequence schedule instead of the pyramid", ["--schedule", "full_sequence"]),
    "candidates-4": ("4 plans sampled per decision, the cheapest kept", ["--candidates", "4"]),
    "eta-1": ("DDPM posterior sampling (eta 1) instead of deterministic DDIM (eta 0)", ["--eta", "1"]),
    "rolling": ("continue the last plan on the schedule's ladder instead of starting from noise", ["--rolling"]),
    "context-tokens-0": ("model state from the current observation only, as the paper's planner", ["--context-tokens", "0"]),
}
TASKS = ("medium-multi", "large-multi")
UNTRAINED_SEED = 0


def untrained_checkpoint(env_id: str) -> str:
    """The shipped checkpoint's description with a freshly initialized denoiser, and the shipped routes
    and action heads (made again when the shipped planner settings, routes or heads change, so the row always
    plans as the shipped planner does)."""
    stem = UNTRAINED_DIR / f"{env_id}-untrained"
    made = stem.with_suffix(".json")
    shipped_json = json.loads(shipped_checkpoint(env_id).read_text())
    kept = {key: shipped_json.get(key) for key in ("planner", HEADS_KEY, ROUTES_DIGEST_KEY)}
    if not made.exists() or not routes_path(made).exists() or {key: json.loads(made.read_text()).get(key) for key in kept} != kept:
        shipped = load_trained_model(shipped_checkpoint(env_id))
        torch.manual_seed(UNTRAINED_SEED)
        fresh = TrainedModel.create(shipped.model_config, shipped.schedule, shipped.layout, shipped.normalizer, shipped.metadata)
        fresh.routes, fresh.heads = shipped.routes, shipped.heads
        UNTRAINED_DIR.mkdir(parents=True, exist_ok=True)
        fresh.save(stem)
    return str(stem.with_suffix(".json"))


def task_flags(task: str) -> list[str]:
    maze, _, multi = task.partition("-")
    return ["--env", f"maze2d-{maze}", *(["--multi-goal"] if multi else [])]


def run_cell(task: str, name: str, seed: int, episodes: int) -> None:
    env_id = resolve_env_id(f"maze2d-{task.partition('-')[0]}")
    flags = [f.replace("{untrained}", untrained_checkpoint(env_id)) for f in ROWS[name][1]]
    cached_eval(FOLDER / task / f"{name}-seed{seed}.json", [*task_flags(task), *flags], episodes, seed, checkpoint_digest(env_id))


def row_results(task: str, name: str, folder: Path = FOLDER) -> list[dict]:
    """The evaluation JSONs of one row and task, one per seed measured."""
    return [json.loads(p.read_text()) for p in sorted((folder / task).glob(f"{name}-seed*.json"))]


def cell(task: str, name: str, folder: Path = FOLDER) -> str:
    """Mean normalized score over the seeds present (± standard error over all their episodes), success."""
    results = row_results(task, name, folder)
    if not results:
        return "not measured"
    scores = [e["normalized_score"] for r in results for e in r["per_episode"]]
    mean = sum(scores) / len(scores)
    sem = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1) / len(scores))
    success = sum(e["success"] for r in results for e in r["per_episode"]) / len(scores)
    seeds = ",".join(str(r["seed"]) for r in results)
    return f"{mean:.1f} ± {sem:.1f} ({success:.0%}; seeds {seeds})"


def write_table(tasks: list[str]) -> None:
    lines = ["| row | change from the shipped planner | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    for name, (change, _) in ROWS.items():
        lines.append(f"| {name} | {change} | " + " | ".join(cell(task, name) for task in tasks) + " |")
    text = (
        "Ablations of the shipped planner, made by `python benchmarks/ablations.py` (each cell: `dfplan eval "
        "--env maze2d-TASK [--multi-goal] --episodes 100 --seed S --batch-size 100 FLAGS`, flags in the script). "
        "Normalized score, mean over the seeds with its standard error over their episodes, and the success rate.\n\n"
        + "\n".join(lines) + "\n"
    )
    publish("ablations", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--only", nargs="*", choices=sorted(ROWS), default=None)
    parser.add_argument("--untrained", default=None, metavar="ENV_ID",
                        help="only write the re-initialized checkpoint of this env's shipped one (e.g. for OGBench's ablations)")
    args = parser.parse_args()
    if args.untrained:
        print(untrained_checkpoint(args.untrained))
        return
    for task in args.tasks:
        for name in args.only or ROWS:
            for seed in args.seeds:
                run_cell(task, name, seed, args.episodes)
    write_table(args.tasks)


if __name__ == "__main__":
    main()
