"""Collect the OGBench PointMaze evaluation JSON files in results/ogbench/ into results/ogbench_table.md
and the README's ogbench_table block, beside the published success rates (and print it).

The JSON files are written by the commands in the table's footer; this script only formats:
- results/ogbench/planner_NAME.json: the shipped planner, seed 0, 250 episodes (the reported table);
- results/ogbench/ablations/NAME_VARIANT.json: the same episodes with one setting changed
  (`--horizon 1`, `--horizon 20`, `--track-ahead 0`, `--route-lookahead 0`, `--guidance-scale 0`, and
  the shipped sampler, guidance and routes on a re-initialized denoiser: `python benchmarks/ablations.py
  --untrained NAME` writes runs/ablations/NAME-untrained.json), and on it plan-space guidance at scale
  15: a model-free route follower, with the shipped PD and with `--track-ahead 0`);
- results/ogbench/tuning/NAME_VARIANT.json: seed 777, 50 episodes, how the settings were chosen.
"""

from __future__ import annotations

import json

from report import RESULTS, publish

MAZES, KINDS = ("medium", "large", "giant"), ("navigate", "stitch")
# Success rates (%) on OGBench's 5 evaluation tasks, as published (issue 14 of this project lists the sources).
PUBLISHED = {
    "Diffusion Forcing (as reported in the MCTD paper, ICML 2025)": {"navigate": (65, 74, 50)},
    "MCTD (tree search over DF plans; env modified)": {"navigate": (100, 98, 100)},
    "QRL (best OGBench baseline)": {"navigate": (82, 86, 68), "stitch": (80, 84, 50)},
    "HIQL": {"stitch": (74, 13, 0)},
}
COMMAND = ("dfplan eval --env pointmaze-MAZE-KIND-v0 --episodes 250 --seed 0 --batch-size 50 "
           "--json results/ogbench/planner_pointmaze-MAZE-KIND-v0.json")
ABLATIONS = {"horizon20": "--horizon 20", "horizon1": "--horizon 1", "trackahead0": "--track-ahead 0", "noroutes": "--route-lookahead 0",
             "unguided": "--guidance-scale 0", "untrained": "--checkpoint runs/ablations/NAME-untrained.json",
             "untrainedplan15": "--checkpoint runs/ablations/NAME-untrained.json --guidance plan --guidance-scale 15",
             "untrainedplan15track0": "--checkpoint runs/ablations/NAME-untrained.json --guidance plan --guidance-scale 15 --track-ahead 0"}
ABLATION_COMMAND = ("dfplan eval --env NAME --episodes 250 --seed 0 --batch-size 50 FLAG "
                    "--json results/ogbench/ablations/NAME_VARIANT.json")
# runs/NAME is the folder `dfplan train --dataset ogbench:NAME` writes: the shipped weights before the
# tuned [planner] section was added to the shipped JSON.
TUNING_COMMAND = ("dfplan eval --env NAME --checkpoint runs/NAME/model --episodes 50 --seed 777 --batch-size 50 FLAGS "
                  "--json results/ogbench/tuning/NAME_VARIANT.json")


def load(name: str) -> dict | None:
    path = RESULTS / "ogbench" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def cell(result: dict | None) -> str:
    if result is None:
        return "not measured"
    tasks = " / ".join(f"{v['success_rate']:.0%}" for _, v in sorted(result["per_task"].items()))
    return f"**{result['success_rate']:.0%}** ({tasks})"


def ablation_lines() -> list[str]:
    """One change from the shipped planner per column, same 250 episodes (seed 0)."""
    names = sorted(p.stem.removeprefix("planner_") for p in (RESULTS / "ogbench").glob("planner_*.json"))
    lines = ["| dataset | shipped | " + " | ".join(f"`{flag}`" for flag in ABLATIONS.values()) + " |",
             "|---|---|" + "---|" * len(ABLATIONS)]
    for name in names:
        shipped = load(f"planner_{name}")
        cells = [load(f"ablations/{name}_{variant}") for variant in ABLATIONS]
        s = shipped["planner"]
        lines.append(f"| {name} (horizon {s['horizon']}, route lookahead {s.get('route_lookahead', 0):g}) | {shipped['success_rate']:.0%} | "
                     + " | ".join("-" if r is None else f"{r['success_rate']:.0%}" for r in cells) + " |")
    return lines


def mean_arrival(result: dict | None) -> str:
    """Mean first-arrival step over the episodes that arrived."""
    reached = [e["first_reach"] for e in result["per_episode"] if e["success"]] if result else []
    return f"{sum(reached) / len(reached):.0f}" if reached else "-"


def arrival_lines() -> list[str]:
    """How fast the shipped planner arrives when it does, beside the model-free route follower and the
    oracle on the same episodes."""
    lines = ["| dataset | shipped planner: first arrival, its successful episodes (mean steps) | route follower "
             "(last ablation column), its successful episodes | oracle, all episodes |", "|---|---|---|---|"]
    for name in sorted(p.stem.removeprefix("planner_") for p in (RESULTS / "ogbench").glob("planner_*.json")):
        oracle = load(f"oracle_{name.rsplit('-', 2)[0]}")
        oracle_mean = "-" if oracle is None else f"{oracle['first_reach_mean']:.0f}"
        lines.append(f"| {name} | {mean_arrival(load(f'planner_{name}'))} | "
                     f"{mean_arrival(load(f'ablations/{name}_untrainedplan15track0'))} | {oracle_mean} |")
    return lines


def tuning_lines() -> list[str]:
    """Each tuning run's settings read back from its JSON."""
    lines = ["| dataset | route lookahead | track ahead | guidance | scale | plan pull | horizon | sampling steps | MCG | candidates | replan every | rolling | "
             "context tokens | actions | success | per task | first arrival |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    runs = [json.loads(p.read_text()) for p in sorted((RESULTS / "ogbench" / "tuning").glob("*.json"))]
    order = ("route_lookahead", "track_ahead", "guidance", "guidance_scale", "plan_pull", "horizon", "sampling_steps")
    for r in sorted(runs, key=lambda r: (r["env"], *(r["planner"].get(k, 0) for k in order))):
        s = r["planner"]
        tasks = " / ".join(f"{v['success_rate']:.0%}" for _, v in sorted(r["per_task"].items()))
        lines.append(f"| {r['env']} | {s.get('route_lookahead', 0):g} | {s.get('track_ahead', 0)} | {s['guidance']} | {s['guidance_scale']:g} | {s.get('plan_pull', 0):g} | {s['horizon']} | "
                     f"{s['sampling_steps']} | {s['mcg_samples']} | {s['candidates']} | {r['planner']['replan_every']} | "
                     f"{'yes' if s['rolling'] else 'no'} | {s['context_tokens']} | {s['action_mode']} | {r['success_rate']:.0%} | "
                     f"{tasks} | {mean_arrival(r)} |")
    return lines


def summary_lines() -> list[str]:
    """The success table, with the two rows that say what the learned model adds."""
    lines = ["Success rate on OGBench's 5 evaluation tasks (ours: overall, then tasks 1-5; 250 episodes = 50 per "
             "task, seed 0; the planner settings were chosen on seed 777). The route follower has no learned model "
             "(a re-initialized denoiser pulled along the data's routes, `python benchmarks/headline_baselines.py`), "
             "and a model trained 200 steps (`dfplan train --env NAME --steps 200`) is the same planner on a model "
             "that has barely learned: where they match the shipped planner, the data's routes, not the Diffusion "
             "Forcing model, carry the result.", ""]
    for kind in KINDS:
        lines += [f"| pointmaze-{kind} | " + " | ".join(MAZES) + " |", "|---|" + "---|" * len(MAZES)]
        names = [f"pointmaze-{maze}-{kind}-v0" for maze in MAZES]
        lines.append("| dfplanner (shipped checkpoint, trained on this CPU) | " + " | ".join(cell(load(f"planner_{n}")) for n in names) + " |")
        lines.append("| route follower, no learned model | " + " | ".join(cell(load(f"ablations/{n}_untrainedplan15track0")) for n in names) + " |")
        lines.append("| model trained 200 steps | " + " | ".join(cell(load(f"short_{n}")) for n in names) + " |")
        for name, rows in PUBLISHED.items():
            if kind in rows:
                lines.append(f"| {name} | " + " | ".join(f"{v}%" for v in rows[kind]) + " |")
        oracle = [load(f"oracle_pointmaze-{maze}") for maze in MAZES]
        lines.append("| scripted oracle (`--policy oracle`) | " + " | ".join("-" if r is None else f"{r['success_rate']:.0%}" for r in oracle) + " |")
        lines.append("")
    return lines + [f"`{COMMAND}`, then `python benchmarks/ogbench_table.py`.", ""]


def main() -> None:
    summary = summary_lines()
    publish("ogbench_summary", "\n".join(summary) + "\n")
    lines = [*summary,
              "What each part adds (success rate, same 250 episodes, one change per column; `untrained`: the "
              "shipped sampler, guidance and routes on a re-initialized denoiser; the last two columns pull that "
              "denoiser's plan straight at the routes' subgoal, a route follower with no learned model, with PD aimed "
              "15 steps along its plan as shipped and, last, on the current step, where it does best):", "", *ablation_lines(), "",
              f"`{ABLATION_COMMAND}`", "",
              "Speed of arrival (seed 0; the oracle JSON is `results/ogbench/oracle_pointmaze-MAZE.json`, same episodes):", "",
              *arrival_lines(), "",
              "How the settings were chosen (seed 777, 50 episodes = 10 per task, never a reporting seed):", "",
              *tuning_lines(), "", f"`{TUNING_COMMAND}`"]
    publish("ogbench_table", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
