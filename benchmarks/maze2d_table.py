"""Collect the maze2d evaluation JSON files in results/ into results/maze2d_table.md and into the
block between the maze2d_table markers of README.md (and print it).

The JSON files are written by the commands listed in the table's footer; this script only formats.
"""

from __future__ import annotations

import json

from report import RESULTS, publish

# Diffusion Forcing's reported normalized scores (paper Table 1, with MCG).
PAPER_DF = {"umaze": 116.7, "medium": 149.4, "large": 159.0, "umaze-multi": 119.1, "medium-multi": 152.3, "large-multi": 167.1}
# Diffusion Veteran (ICLR 2025), the best published diffusion planner on single-goal maze2d.
DIFFUSION_VETERAN = {"umaze": 136.6, "medium": 150.7, "large": 203.6}
TASKS = ["umaze", "medium", "large", "umaze-multi", "medium-multi", "large-multi"]


def load(policy: str, task: str) -> dict | None:
    path = RESULTS / f"{policy}_maze2d-{task}.json"
    return json.loads(path.read_text()) if path.exists() else None


def gap_rows() -> list[str]:
    """Where the distance to the oracle comes from, on the same episodes (same seeds: same starts and targets)."""
    lines = [
        "| task | gap to oracle | from the failed episodes | successful episodes: planner / oracle | first arrival: planner / oracle | on the goal after arrival: planner / oracle |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        planner, oracle = load("planner", task), load("oracle", task)
        if planner is None or oracle is None:
            continue
        steps = planner["max_episode_steps"]
        pairs = list(zip(planner["per_episode"], oracle["per_episode"]))
        ok = [(p, o) for p, o in pairs if p["success"]]
        failed = [(p, o) for p, o in pairs if not p["success"]]
        from_failures = sum(o["normalized_score"] - p["normalized_score"] for p, o in failed) / len(pairs)

        def mean(key, which):
            return sum(pair[which][key] for pair in ok) / max(len(ok), 1)

        def held(which):
            return sum(on_goal(pair[which], steps) for pair in ok) / max(len(ok), 1)

        lines.append(
            f"| {task} | {oracle['normalized_score_mean'] - planner['normalized_score_mean']:.1f} | "
            f"{from_failures:.1f} ({len(failed)} failed) | {mean('normalized_score', 0):.1f} / {mean('normalized_score', 1):.1f} | "
            f"{mean('first_reach', 0):.0f} / {mean('first_reach', 1):.0f} | {held(0):.0%} / {held(1):.0%} |"
        )
    return lines


def on_goal(episode: dict, steps: int) -> float:
    """Share of the steps from first arrival on spent on the goal (sparse reward: one per such step)."""
    return episode["return"] / (steps - episode["first_reach"] + 1)


def on_goal_after_arrival(result: dict) -> float:
    """`on_goal` averaged over the episodes that arrived."""
    ok = [e for e in result["per_episode"] if e["success"]]
    return sum(on_goal(e, result["max_episode_steps"]) for e in ok) / max(len(ok), 1)


def d4rl_expert_lines() -> list[str]:
    """What differs from the published numbers' data: D4RL's expert is slower than ours (results/d4rl_expert.md)."""
    path = RESULTS / "d4rl_expert.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())

    def scores(policy: str) -> str:
        return " / ".join(f"{results[f'maze2d-{m} {policy}']['normalized_score_mean']:.1f}" for m in ("umaze", "medium", "large"))

    return ["The maze2d data and the oracle are this package's generator's, not D4RL's files: our expert re-reads its cell",
            f"every step and scores {scores('oracle')} (umaze / medium / large, single goal, seed 0) where D4RL's waypoint-list",
            f"controller scores {scores('d4rl-waypoint-list')} on the same episodes (results/d4rl_expert.md, `python benchmarks/d4rl_expert.py`);",
            "the published columns were made on D4RL's files, from the slower expert's data."]


def score(result: dict | None) -> str:
    return "not measured" if result is None else f"{result['normalized_score_mean']:.1f} ± {result['normalized_score_sem']:.1f}"


def main() -> None:
    lines = [
        "| task | paper DF | Diffusion Veteran | oracle | paper preset (ours) | planner normalized (± sem) | "
        "route follower, no learned model | model trained 200 steps | planner return | success | on goal after arrival | "
        "first arrival | planner / oracle |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        planner, oracle, paper = load("planner", task), load("oracle", task), load("paper", task)
        oracle_score = f"{oracle['normalized_score_mean']:.1f}" if oracle else ""
        head = f"| {task} | {PAPER_DF[task]} | {DIFFUSION_VETERAN.get(task, '')} | {oracle_score} | {score(paper)} |"
        if planner is None:
            lines.append(head + " not measured | | | | | | | |")
            continue
        ratio = planner["normalized_score_mean"] / oracle["normalized_score_mean"] if oracle else float("nan")
        lines.append(
            f"{head} {score(planner)} | {score(load('follower', task))} | {score(load('short', task))} | {planner['return_mean']:.1f} | {planner['success_rate']:.0%} | "
            f"{on_goal_after_arrival(planner):.0%} | {planner['first_reach_mean']:.0f} | {ratio:.2f} |"
        )
    lines += [
        "",
        "100 episodes each, seed 0, D4RL protocol (300 / 600 / 800 steps), scores normalized with D4RL's single-task",
        "reference returns also in the multi-goal setting. Made by:",
        "",
        "    dfplan eval --env maze2d-TASK [--multi-goal] --episodes 100 --seed 0 --batch-size 100 --json results/planner_maze2d-TASK[-multi].json",
        "    dfplan eval --env maze2d-TASK [--multi-goal] --policy oracle --episodes 100 --seed 0 --json results/oracle_maze2d-TASK[-multi].json",
        "    dfplan eval --env maze2d-TASK [--multi-goal] --preset paper --episodes 100 --seed 0 --batch-size 100 --json results/paper_maze2d-TASK[-multi].json",
        "    python benchmarks/headline_baselines.py --family maze2d   # the route follower and 200-step columns",
        "    python benchmarks/maze2d_table.py",
        "",
        "Read the planner's column with the two beside it: a route follower with no learned model (a re-initialized",
        "denoiser pulled along the data's routes, PD on the current step) and the same planner on a model trained",
        "200 steps (`dfplan train --env maze2d-TASK --steps 200`) score as the shipped 12,000-step model does. On these point masses the routes",
        "learned from the data and PD carry the score; the Diffusion Forcing model adds little (results/ablations.md).",
        *d4rl_expert_lines(),
        "",
        "Where the distance to the oracle comes from (normalized points, same 100 episodes; successful: the",
        "episodes in which the planner reached the goal):",
        "",
        *gap_rows(),
    ]
    publish("maze2d_table", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
