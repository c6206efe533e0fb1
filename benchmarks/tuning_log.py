"""The issue-13 tuning log (seed 777, never a reporting seed): results/tuning/*.json into results/tuning.md.

Each JSON is one `dfplan eval --env maze2d-TASK [--multi-goal] --episodes 50 --seed 777 --batch-size 50
--guidance G --guidance-scale S --mcg-samples R --hold-radius H [--horizon N] [--route-lookahead L]
--json results/tuning/NAME.json`;
its settings are read back from the JSON, so the table says exactly what ran.
"""

from __future__ import annotations

import json

from maze2d_table import on_goal_after_arrival
from report import RESULTS, publish


def main() -> None:
    lines = [
        "| task | guidance | scale | MCG | hold | route lookahead | horizon | normalized (± sem) | success | first arrival | on goal after arrival |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / "tuning").glob("*.json"))]
    for r in sorted(rows, key=lambda r: (r["env"], r["multi_goal"], r["planner"].get("route_lookahead", 0), r["planner"]["guidance"], r["planner"]["horizon"])):
        s = r["planner"]
        task = r["env"].removesuffix("-v1") + ("-multi" if r["multi_goal"] else "")
        lines.append(
            f"| {task} | {s['guidance']} | {s['guidance_scale']:g} | {s['mcg_samples']} | {s['hold_radius']:g} | {s.get('route_lookahead', 0):g} | {s['horizon']} | "
            f"{r['normalized_score_mean']:.1f} ± {r['normalized_score_sem']:.1f} | {r['success_rate']:.0%} | "
            f"{r['first_reach_mean']:.0f} | {on_goal_after_arrival(r):.0%} |"
        )
    text = (
        "Tuning of the shipped guidance (issue 13) on seed 777, 50 episodes per row, shipped checkpoints; made by "
        "`python benchmarks/tuning_log.py` from the JSON files in results/tuning/ (each row's command is in the "
        "script's docstring; the settings are read from the JSON).\n\n" + "\n".join(lines) + "\n"
    )
    publish("tuning", text)


if __name__ == "__main__":
    main()
