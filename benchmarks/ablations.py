"""Ablations of the shipped maze2d-large planner: each row changes one setting from the default.

    python benchmarks/ablations.py [--episodes 100] [--seed 0] [--only NAME ...]

Each row is `dfplan eval --env maze2d-large --episodes N --seed S --batch-size N FLAGS --json
results/ablations/NAME.json`. Rows whose JSON already exists for the same episodes, seed and shipped
checkpoint (its JSON's sha256, which covers the planner settings) are not re-run, so an interrupted
run resumes where it stopped; delete a JSON to measure it again (e.g. after a change to the sampler).
Writes results/ablations.md from every JSON present.
"""

from __future__ import annotations

import argparse
import json

from dfplanner.envs.layouts import resolve_env_id

from dfplan_eval import checkpoint_digest, run_eval
from report import ROOT, RESULTS, publish

FOLDER = RESULTS / "ablations"
ENV = "maze2d-large"
TRANSFORMER = RESULTS / "training_curve" / "transformer" / "model.json"  # made by benchmarks/training_curve.py
# name -> (what changes, dfplan eval flags)
ROWS: dict[str, tuple[str, list[str]]] = {
    "shipped": ("shipped settings (pyramid, 2 steps, uncertainty 0.05, plan-space guidance 15, one plan, PD, GRU)", []),
    "mcg-4": ("Monte Carlo Guidance, 4 samples", ["--mcg-samples", "4"]),
    "mcg-16": ("Monte Carlo Guidance, 16 samples", ["--mcg-samples", "16"]),
    "full-sequence": ("full-sequence schedule", ["--schedule", "full_sequence"]),
    "autoregressive": ("autoregressive schedule", ["--schedule", "autoregressive"]),
    "pyramid-10-steps": ("pyramid, 10 steps, uncertainty 1 (the shipped sampling until issue 6)", ["--sampling-steps", "10", "--uncertainty", "1"]),
    "rolling": ("rolling pyramid (one row per token, plans continue)", ["--rolling"]),
    "diffused-actions": ("diffused actions instead of PD tracking", ["--action-mode", "diffused"]),
    "no-stabilization": ("stabilization off (generated tokens fed back as clean)", ["--stabilization-level", "0"]),
    "replan-every-2-tokens": ("replanning every 2 tokens (20 env steps), so a token conditioned on generated ones is executed", ["--replan-every", "20"]),
    "replan-every-2-tokens-no-stabilization": ("the row above with stabilization off", ["--replan-every", "20", "--stabilization-level", "0"]),
    "best-of-8": ("8 plans per decision, the cheapest kept", ["--candidates", "8"]),
    "transformer": ("causal transformer instead of the GRU (results/training_curve.md)", ["--checkpoint", str(TRANSFORMER.relative_to(ROOT))]),
}


def run_row(name: str, episodes: int, seed: int, digest: str) -> None:
    out = FOLDER / f"{name}.json"
    if name == "transformer" and not TRANSFORMER.exists():
        print(f"skipping {name}: {TRANSFORMER} not trained yet (benchmarks/training_curve.py)")
        return
    if out.exists():
        done = json.loads(out.read_text())
        if (done["episodes"], done["seed"], done.get("checkpoint_sha256")) == (episodes, seed, digest):
            return
    flags = ["--env", ENV, "--episodes", str(episodes), "--seed", str(seed), "--batch-size", str(episodes), *ROWS[name][1]]
    result = run_eval(flags)
    out.write_text(json.dumps({**result, "checkpoint_sha256": digest}, indent=1) + "\n")


def write_table() -> None:
    lines = [
        "| row | change from the shipped planner | normalized (± sem) | success | first arrival | plans/s (batched) |",
        "|---|---|---|---|---|---|",
    ]
    for name, (change, flags) in ROWS.items():
        path = FOLDER / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | {change} | not measured | | | |")
            continue
        r = json.loads(path.read_text())
        plans_per_s = r["decisions_per_second"] / r["planner"]["replan_every"]
        arrival = r.get("first_reach_mean")
        lines.append(
            f"| {name} | {change} | {r['normalized_score_mean']:.1f} ± {r['normalized_score_sem']:.1f} | "
            f"{r['success_rate']:.0%} | {'' if arrival is None else f'{arrival:.0f}'} | {plans_per_s:.1f} |"
        )
    text = (
        f"Ablations on {ENV}, made by `python benchmarks/ablations.py` (each row: `dfplan eval --env {ENV} "
        "--episodes 100 --seed 0 --batch-size 100 FLAGS`, flags in the script). plans/s counts plans of the "
        "whole batch per second of policy time.\n\n" + "\n".join(lines) + "\n"
    )
    publish("ablations", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(ROWS), default=None)
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    digest = checkpoint_digest(resolve_env_id(ENV))
    for name in args.only or ROWS:
        run_row(name, args.episodes, args.seed, digest)
    write_table()


if __name__ == "__main__":
    main()
