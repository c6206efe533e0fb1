"""Ablations of the shipped maze2d-large planner: each row changes one setting from the default.

    python benchmarks/ablations.py [--episodes 100] [--seed 0] [--only NAME ...]

Each row is `dfplan eval --env maze2d-large --episodes N --seed S --batch-size N FLAGS --json
results/ablations/NAME.json`. Rows whose JSON already exists (for the same episodes and seed) are
not re-run, so an interrupted run resumes where it stopped; delete a JSON to measure it again.
Writes results/ablations.md from every JSON present.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from report import RESULTS, publish

FOLDER = RESULTS / "ablations"
ENV = "maze2d-large"
# name -> (what changes, dfplan eval flags)
ROWS: dict[str, tuple[str, list[str]]] = {
    "shipped": ("shipped settings (pyramid, 3 steps, uncertainty 0.25, plan-space guidance 15, one plan, PD)", []),
    "mcg-4": ("Monte Carlo Guidance, 4 samples", ["--mcg-samples", "4"]),
    "mcg-16": ("Monte Carlo Guidance, 16 samples", ["--mcg-samples", "16"]),
    "full-sequence": ("full-sequence schedule", ["--schedule", "full_sequence"]),
    "autoregressive": ("autoregressive schedule", ["--schedule", "autoregressive"]),
    "pyramid-10-steps": ("pyramid, 10 steps, uncertainty 1 (the previous shipped sampling)", ["--sampling-steps", "10", "--uncertainty", "1"]),
    "rolling": ("rolling pyramid (one row per token, plans continue)", ["--rolling"]),
    "diffused-actions": ("diffused actions instead of PD tracking", ["--action-mode", "diffused"]),
    "no-stabilization": ("stabilization off (generated tokens fed back as clean)", ["--stabilization-level", "0"]),
    "best-of-8": ("8 plans per decision, the cheapest kept", ["--candidates", "8"]),
}


def run_row(name: str, episodes: int, seed: int) -> None:
    out = FOLDER / f"{name}.json"
    if out.exists():
        done = json.loads(out.read_text())
        if done["episodes"] == episodes and done["seed"] == seed:
            return
    flags = ROWS[name][1]
    command = [sys.executable, "-m", "dfplanner.cli", "eval", "--env", ENV, "--episodes", str(episodes), "--seed", str(seed),
               "--batch-size", str(episodes), *flags, "--json", str(out)]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


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
    for name in args.only or ROWS:
        run_row(name, args.episodes, args.seed)
    write_table()


if __name__ == "__main__":
    main()
