"""Soak test: many consecutive planner episodes in one process, checking that memory stays flat.

Runs `--episodes` maze2d episodes with the shipped planner through the real evaluation loop in
batches of `--batch-size`, reads the process's resident memory (VmRSS) at the start of every batch
and at the end, and writes results/soak.json and results/soak.md. Growth is measured after warm-up:
from the end of the first batch (allocator pools, caches and MuJoCo models are in place by then) to
the end of the run.

Each run is a fresh process, `--repeats` times under each of two glibc allocator settings:
- default: glibc raises its mmap threshold whenever a large block is freed, so later large blocks
  come from the heap, whose freed pages it keeps. Resident memory then climbs in steps that differ
  from run to run, with no leak: what a user of the package sees.
- fixed mmap threshold (MALLOC_MMAP_THRESHOLD_=131072, glibc's initial value): every large block is
  mapped and returned on free, so what is left is the package's own growth. The limit applies here.

    OMP_NUM_THREADS=1 python benchmarks/soak.py [--episodes 1000] [--batch-size 100] [--repeats 3] [--candidates N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent.parent / "results"
GROWTH_LIMIT = 0.10
ALLOCATORS = {"default": {}, "fixed mmap threshold": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def memory_mb(field: str = "VmRSS") -> float:
    """This process's resident set size (VmRSS) or its peak (VmHWM), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class MemoryProbe:
    """Wraps a policy: records memory at the start of every batch (each `reset`)."""

    def __init__(self, policy, batch_size: int):
        self.policy, self.batch_size, self.name = policy, batch_size, policy.name
        self.samples: list[dict] = []
        self.start = time.perf_counter()

    def record(self, episodes_done: int) -> None:
        self.samples.append({"episodes_done": episodes_done, "rss_mb": round(memory_mb(), 1), "seconds": round(time.perf_counter() - self.start, 1)})

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.record(len(self.samples) * self.batch_size)
        self.policy.reset(observations, targets)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.policy.act(observations)


def soak_run(args: argparse.Namespace) -> dict:
    """One soak in this process: the memory samples and the evaluation's score."""
    import torch

    from dfplanner.envs.layouts import MAZES, resolve_env_id
    from dfplanner.evaluation.rollout import evaluate
    from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint

    env_id = resolve_env_id(args.env)
    torch.set_num_threads(1)
    planner = load_planner(shipped_checkpoint(env_id), env_id, device="cpu", seed=args.seed,
                           episode_steps=MAZES[env_id].max_episode_steps, candidates=args.candidates)
    probe = MemoryProbe(planner, args.batch_size)
    result = evaluate(env_id, probe, args.episodes, seed=args.seed, batch_size=args.batch_size, progress=False)
    probe.record(args.episodes)
    after_warmup, final = probe.samples[1]["rss_mb"], probe.samples[-1]["rss_mb"]
    return {
        "env": env_id,
        "candidates": planner.settings.candidates,
        "normalized_score_mean": result["normalized_score_mean"],
        "success_rate": result["success_rate"],
        "wall_time_s": round(time.perf_counter() - probe.start, 1),
        "rss_after_warmup_mb": after_warmup,
        "rss_final_mb": final,
        "rss_peak_mb": round(memory_mb("VmHWM"), 1),
        "growth_after_warmup": round((final - after_warmup) / after_warmup, 4),
        "samples": probe.samples,
    }


def soak_in_child(argv: list[str], allocator_env: dict[str, str]) -> dict:
    """A soak run in a fresh process, so the allocator setting holds from its start."""
    done = subprocess.run([sys.executable, __file__, *argv, "--child"], env={**os.environ, **allocator_env},
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"soak run failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="maze2d-umaze")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per allocator setting")
    parser.add_argument("--candidates", type=int, default=None, help="plans per decision (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(soak_run(args)))
        return

    child_argv = sys.argv[1:]
    runs = {}
    for name, allocator_env in ALLOCATORS.items():
        runs[name] = []
        for repeat in range(args.repeats):
            run = soak_in_child(child_argv, allocator_env)
            runs[name].append({"allocator_env": allocator_env, **run})
            print(f"{name} run {repeat + 1}: growth after warm-up {run['growth_after_warmup']:+.1%}", flush=True)
    fixed = [run["growth_after_warmup"] for run in runs["fixed mmap threshold"]]
    command = ("OMP_NUM_THREADS=1 python benchmarks/soak.py " + " ".join(child_argv)).strip()
    summary = {"command": command, "episodes": args.episodes, "batch_size": args.batch_size, "growth_limit": GROWTH_LIMIT,
               "flat": max(fixed) < GROWTH_LIMIT, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")

    first = runs["default"][0]
    rows = "\n".join(
        f"| {name} | {i + 1} | {run['rss_after_warmup_mb']:.1f} | {run['rss_final_mb']:.1f} | {run['growth_after_warmup']:+.1%} "
        f"| {run['rss_peak_mb']:.1f} | {run['normalized_score_mean']:.1f} | {run['wall_time_s']:.0f} |"
        for name, group in runs.items() for i, run in enumerate(group))
    (RESULTS / "soak.md").write_text(
        f"# Soak: {args.episodes} consecutive {first['env']} episodes, batches of {args.batch_size}\n\n"
        f"Made by `{command}` (planner candidates per decision: {first['candidates']}; all other settings "
        f"shipped). Each row is a fresh process. Growth is from the end of the first batch to the end of the run; "
        f"the limit ({GROWTH_LIMIT:.0%}) applies with the fixed mmap threshold, which shows the package's own growth "
        f"(see the script's docstring). Largest growth there: {max(fixed):+.1%} "
        f"({'flat' if summary['flat'] else 'NOT flat'}).\n\n"
        f"| glibc allocator | run | RSS after first batch (MB) | RSS at end (MB) | growth | peak (MB) | normalized score | seconds |\n"
        f"|---|---|---|---|---|---|---|---|\n{rows}\n"
    )
    print(f"largest growth with a fixed mmap threshold {max(fixed):+.2%}: {'flat' if summary['flat'] else 'NOT flat'}")


if __name__ == "__main__":
    main()
