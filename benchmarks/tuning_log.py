"""The issue-13 tuning log (seeds 777 and 778, never reporting seeds): results/tuning/*.json into results/tuning.md.

Each JSON is one `dfplan eval --env maze2d-TASK [--multi-goal] --episodes 50 --seed 777 --batch-size 50
[--guidance G] [--guidance-scale S] [--mcg-samples R] [--hold-radius H] [--horizon N] [--route-lookahead L]
[--sampling-steps K] [--plan-pull P] [--track-ahead T] --json results/tuning/NAME.json` (`--seed 778` for the files named *_seed778);
its settings are read back from the JSON, so the table says exactly what ran. The oracle's runs on the
same seed and episodes (`dfplan eval --env maze2d-TASK [--multi-goal] --policy oracle --episodes 50
--seed 777 --json results/tuning/oracle/TASK[-multi].json`) give the last column.
"""

from __future__ import annotations

import json

from maze2d_table import on_goal_after_arrival
from report import RESULTS, publish


def task_name(result: dict) -> str:
    return result["env"].removesuffix("-v1").removeprefix("maze2d-") + ("-multi" if result["multi_goal"] else "")


def main() -> None:
    lines = [
        "| task | seed | guidance | scale | plan pull | MCG | hold | route lookahead | track ahead | horizon | sampling steps | normalized (± sem) | success | "
        "first arrival | on goal after arrival | planner / oracle |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    oracle = {task_name(r): r for r in (json.loads(p.read_text()) for p in (RESULTS / "tuning" / "oracle").glob("*.json"))}
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / "tuning").glob("*.json"))]
    order = ("route_lookahead", "track_ahead", "guidance", "sampling_steps", "plan_pull", "horizon", "guidance_scale")
    for r in sorted(rows, key=lambda r: (r["env"], r["multi_goal"], r["seed"], *(r["planner"].get(k, 0) for k in order))):
        s, task = r["planner"], task_name(r)
        ratio = f"{r['normalized_score_mean'] / oracle[task]['normalized_score_mean']:.2f}" if task in oracle and r["seed"] == 777 else ""
        lines.append(
            f"| {task} | {r['seed']} | {s['guidance']} | {s['guidance_scale']:g} | {s.get('plan_pull', 0):g} | {s['mcg_samples']} | {s['hold_radius']:g} | {s.get('route_lookahead', 0):g} | {s.get('track_ahead', 0)} | {s['horizon']} | "
            f"{s['sampling_steps']} | {r['normalized_score_mean']:.1f} ± {r['normalized_score_sem']:.1f} | {r['success_rate']:.0%} | "
            f"{r['first_reach_mean']:.0f} | {on_goal_after_arrival(r):.0%} | {ratio} |"
        )
    text = (
        "Tuning of the shipped guidance (issue 13) on seed 777 (a few rows also on seed 778), 50 episodes per row, shipped checkpoints; made by "
        "`python benchmarks/tuning_log.py` from the JSON files in results/tuning/ (each row's command is in the "
        "script's docstring; the settings are read from the JSON). Rows before the sampling-steps rows ran with the "
        "planner of their day, which sampled every row of the schedule; the rows after the executed token is clean "
        "never change the action, so only the random stream differs.\n\n" + "\n".join(lines) + "\n"
    )
    publish("tuning", text)


if __name__ == "__main__":
    main()
