"""Soak test: many consecutive planner episodes in one process, checking that memory stays flat.

Runs `--episodes` maze2d episodes with the shipped planner through the real evaluation loop in
batches of `--batch-size`, reads the process's resident memory (VmRSS) at the start of every batch
and at the end, and writes results/soak.json and results/soak.md. Growth is measured after warm-up:
from the end of the first batch (allocator pools, caches and MuJoCo models are in place by then) to
the end of the run.

    OMP_NUM_THREADS=1 python benchmarks/soak.py [--episodes 1000] [--batch-size 100] [--candidates N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.evaluation import evaluate
from dfplanner.pretrained import load_planner, shipped_checkpoint

RESULTS = Path(__file__).resolve().parent.parent / "results"
GROWTH_LIMIT = 0.10


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
        sample = {"episodes_done": episodes_done, "rss_mb": round(memory_mb(), 1), "seconds": round(time.perf_counter() - self.start, 1)}
        self.samples.append(sample)
        print(json.dumps(sample), flush=True)

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.record(len(self.samples) * self.batch_size)
        self.policy.reset(observations, targets)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.policy.act(observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="maze2d-umaze")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=None, help="plans per decision (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env_id = resolve_env_id(args.env)
    torch.set_num_threads(1)
    planner = load_planner(shipped_checkpoint(env_id), env_id, device="cpu", seed=args.seed,
                           episode_steps=MAZES[env_id].max_episode_steps, candidates=args.candidates)
    probe = MemoryProbe(planner, args.batch_size)
    result = evaluate(env_id, probe, args.episodes, seed=args.seed, batch_size=args.batch_size, progress=False)
    probe.record(args.episodes)

    after_warmup, final = probe.samples[1]["rss_mb"], probe.samples[-1]["rss_mb"]
    growth = (final - after_warmup) / after_warmup
    command = "OMP_NUM_THREADS=1 python benchmarks/soak.py " + " ".join(sys.argv[1:])
    summary = {
        "command": command.strip(),
        "env": env_id,
        "episodes": args.episodes,
        "batch_size": args.batch_size,
        "planner": planner.settings.to_dict(),
        "normalized_score_mean": result["normalized_score_mean"],
        "success_rate": result["success_rate"],
        "wall_time_s": round(time.perf_counter() - probe.start, 1),
        "rss_after_warmup_mb": after_warmup,
        "rss_final_mb": final,
        "rss_peak_mb": round(memory_mb("VmHWM"), 1),
        "growth_after_warmup": round(growth, 4),
        "flat": growth < GROWTH_LIMIT,
        "samples": probe.samples,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = "\n".join(f"| {s['episodes_done']} | {s['rss_mb']:.1f} | {s['seconds']:.0f} |" for s in probe.samples)
    (RESULTS / "soak.md").write_text(
        f"# Soak: {args.episodes} consecutive {env_id} episodes, batches of {args.batch_size}\n\n"
        f"Made by `{summary['command']}` (planner candidates per decision: "
        f"{planner.settings.candidates}; all other settings shipped).\n\n"
        f"Resident memory after the first batch {after_warmup:.1f} MB, at the end {final:.1f} MB: growth "
        f"{growth:+.1%} (limit {GROWTH_LIMIT:.0%}); peak {summary['rss_peak_mb']:.1f} MB. "
        f"Normalized score {result['normalized_score_mean']:.1f}, success {result['success_rate']:.0%}, "
        f"{summary['wall_time_s']:.0f} s.\n\n"
        f"| episodes done | RSS (MB) | seconds |\n|---|---|---|\n{rows}\n"
    )
    print(f"growth after warm-up {growth:+.2%}: {'flat' if summary['flat'] else 'NOT flat'}")


if __name__ == "__main__":
    main()
