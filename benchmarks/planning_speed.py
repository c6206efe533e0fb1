"""Planning speed and quality: the shipped planner beside the paper's planner, on one checkpoint.

    python benchmarks/planning_speed.py [--env maze2d-large] [--episodes 50] [--seed 0]

Configurations (all on the shipped checkpoint):
- shipped: the package's settings;
- shipped, horizon 1: the same planner planning one token ahead (what the plan's length buys);
- shipped, 3 sampling steps: one denoising step per token more than shipped (the planner shipped before);
- paper sampling, shipped guidance: the paper's sampling (pyramid over 50 DDIM steps from white noise,
  horizon = the rest of the episode) with the shipped guidance and PD tracking: isolates sampling cost;
- paper planner: `--preset paper`, the paper's maze2d planner (dfplanner/planning/presets/paper.toml).
Every measurement is a `dfplan eval` subprocess (so its peak memory is its own), with replanning at
every token (the finest our 10-step tokens allow):
- one environment, one thread: actions/s and plans/s inside the policy, the median of three runs
  (single runs of this small workload differ by up to 30%);
- `--episodes` environments in one batch, two threads: scores (same seeds for both) and env steps/s
  of the whole run (env stepping included).
Writes results/planning_speed.json, results/planning_speed.md and the README's planning_speed block.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint

from dfplan_eval import run_eval
from report import RESULTS, publish

SINGLE_ENV_EPISODES = 2
SINGLE_ENV_RUNS = 3
PAPER_SAMPLING_STEPS = 50
PAPER_REPLAN_EVERY = 10


def measure(name: str, overrides: list[str], env_id: str, episodes: int, seed: int) -> dict:
    base = ["--env", env_id, "--seed", str(seed), *overrides]
    singles = [run_eval([*base, "--episodes", str(SINGLE_ENV_EPISODES), "--batch-size", "1"], threads=1) for _ in range(SINGLE_ENV_RUNS)]
    single = sorted(singles, key=lambda r: r["decisions_per_second"])[SINGLE_ENV_RUNS // 2]
    batched = run_eval([*base, "--episodes", str(episodes), "--batch-size", str(episodes)], threads=2)
    replan_every = batched["planner"]["replan_every"]
    steps = batched["episodes"] * MAZES[env_id].max_episode_steps
    return {
        "name": name,
        "flags": overrides,
        "single_env_actions_per_s": single["decisions_per_second"],
        "single_env_plans_per_s": single["decisions_per_second"] / replan_every,
        "single_env_plans_per_s_runs": [r["decisions_per_second"] / replan_every for r in singles],
        "batched_env_steps_per_s": steps / batched["wall_time_s"],
        "batched_wall_time_s": batched["wall_time_s"],
        "normalized_score_mean": batched["normalized_score_mean"],
        "normalized_score_sem": batched["normalized_score_sem"],
        "success_rate": batched["success_rate"],
        "episodes": batched["episodes"],
        "peak_rss_mb": max(*(r["peak_rss_mb"] for r in singles), batched["peak_rss_mb"]),
        "planner": batched["planner"],
    }


def write_table(report: dict) -> None:
    shipped, paper = report["configurations"][0], report["configurations"][-1]
    rows = [
        "| configuration | plans/s, 1 env (median; 3 runs) | actions/s, 1 env | env steps/s, batched | normalized (± sem) | success | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["configurations"]:
        rows.append(
            f"| {r['name']} | {r['single_env_plans_per_s']:.1f} ({min(r['single_env_plans_per_s_runs']):.0f}-{max(r['single_env_plans_per_s_runs']):.0f}) | {r['single_env_actions_per_s']:.0f} | "
            f"{r['batched_env_steps_per_s']:.0f} | {r['normalized_score_mean']:.1f} ± {r['normalized_score_sem']:.1f} | "
            f"{r['success_rate']:.0%} | {r['peak_rss_mb']:.0f} MB |"
        )
    text = (
        f"Planning speed on {report['env']} ({report['episodes']} episodes batched, seed {report['seed']}), made by "
        f"`{report['command']}`.\n\n" + "\n".join(rows) + "\n\n"
        f"Speed-up of the shipped planner ({shipped['normalized_score_mean']:.1f}) over the paper planner "
        f"({paper['normalized_score_mean']:.1f}, `--preset paper`, each at its own score): "
        f"{report['speedup_single_env']:.0f}x per plan (one env), {report['speedup_batched']:.0f}x in batched env steps/s.\n"
    )
    publish("planning_speed", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="maze2d-large")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--publish-only", action="store_true", help="re-publish the table from the existing JSON")
    args = parser.parse_args()
    if args.publish_only:
        write_table(json.loads((RESULTS / "planning_speed.json").read_text()))
        return
    env_id = resolve_env_id(args.env)
    frame_stack = load_planner(shipped_checkpoint(env_id), env_id, device="cpu").trained.layout.frame_stack
    rest_of_episode = math.ceil(MAZES[env_id].max_episode_steps / frame_stack)
    paper_sampling = ["--no-rolling", "--schedule", "pyramid", "--uncertainty", "1", "--sampling-steps", str(PAPER_SAMPLING_STEPS),
                      "--horizon", str(rest_of_episode), "--replan-every", str(PAPER_REPLAN_EVERY)]
    start = time.perf_counter()
    shipped = measure("shipped", [], env_id, args.episodes, args.seed)
    horizon_1 = measure("shipped, horizon 1", ["--horizon", "1"], env_id, args.episodes, args.seed)
    steps_3 = measure("shipped, 3 sampling steps", ["--sampling-steps", "3"], env_id, args.episodes, args.seed)
    sampling = measure("paper sampling, shipped guidance", paper_sampling, env_id, args.episodes, args.seed)
    paper = measure("paper planner (--preset paper)", ["--preset", "paper"], env_id, args.episodes, args.seed)
    report = {
        "env": env_id,
        "episodes": args.episodes,
        "seed": args.seed,
        "command": f"python benchmarks/planning_speed.py --env {args.env} --episodes {args.episodes} --seed {args.seed}",
        "configurations": [shipped, horizon_1, steps_3, sampling, paper],
        "speedup_single_env": shipped["single_env_plans_per_s"] / paper["single_env_plans_per_s"],
        "speedup_batched": shipped["batched_env_steps_per_s"] / paper["batched_env_steps_per_s"],
        "benchmark_seconds": time.perf_counter() - start,
    }
    (RESULTS / "planning_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    write_table(report)


if __name__ == "__main__":
    main()
