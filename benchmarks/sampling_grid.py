"""How many denoising steps, and how steep a pyramid, the shipped maze2d-large planner needs.

    python benchmarks/sampling_grid.py [--episodes 100] [--seeds 1000 2000]

Every cell is the shipped checkpoint and planner with `--sampling-steps S --uncertainty U`, over
`--episodes` episodes for each seed. The seeds are not the 0 of the published tables, so choosing the
shipped cell here does not tune on the episodes it is then scored on. Each cell's JSON goes to
results/sampling_grid/ (resumable like benchmarks/ablations.py); writes results/sampling_grid.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from dfplanner.envs.layouts import resolve_env_id
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint

from dfplan_eval import cached_eval, checkpoint_digest
from report import RESULTS, publish

FOLDER = RESULTS / "sampling_grid"
ENV = "maze2d-large"
STEPS = (1, 2, 3, 4, 5)
UNCERTAINTIES = (0.0, 0.05, 0.1, 0.25, 0.5)


def cell(steps: int, uncertainty: float, seed: int, episodes: int, digest: str) -> dict:
    flags = ["--env", ENV, "--sampling-steps", str(steps), "--uncertainty", str(uncertainty)]
    return cached_eval(FOLDER / f"steps{steps}_u{uncertainty:g}_seed{seed}.json", flags, episodes, seed, digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    env_id = resolve_env_id(ENV)
    digest = checkpoint_digest(env_id)
    header = "| steps \\ uncertainty | " + " | ".join(f"{u:g}" for u in UNCERTAINTIES) + " |"
    lines = [header, "|---" * (len(UNCERTAINTIES) + 1) + "|"]
    for steps in STEPS:
        cells = []
        for u in UNCERTAINTIES:
            runs = [cell(steps, u, seed, args.episodes, digest) for seed in args.seeds]
            scores = np.array([e["normalized_score"] for r in runs for e in r["per_episode"]])
            plans_per_s = np.mean([r["decisions_per_second"] / r["planner"]["replan_every"] for r in runs])
            planner = load_planner(shipped_checkpoint(env_id), env_id, device="cpu", sampling_steps=steps, uncertainty=u)
            matrix = planner.schedule_matrix(planner.settings.horizon)
            read = planner.tokens_acted_on
            rows = int(np.flatnonzero((matrix[:, :read] == 0).all(axis=1))[0])  # a plan made to act stops once they are clean
            sem = scores.std(ddof=1) / np.sqrt(len(scores))
            cells.append(f"{scores.mean():.1f} ± {sem:.1f} ({rows} rows, {plans_per_s:.0f}/s)")
        lines.append(f"| {steps} | " + " | ".join(cells) + " |")
    seeds = " ".join(map(str, args.seeds))
    text = (
        f"Sampling grid on {ENV}, made by `python benchmarks/sampling_grid.py --episodes {args.episodes} --seeds {seeds}`: "
        f"normalized score ± sem over {args.episodes} episodes for each of seeds {seeds}, the sampling rows one "
        "plan made to act runs (until the tokens its actions read are clean), and plans per second of policy time (whole batch, the machine's two threads). Each cell is the shipped "
        "planner with `--sampling-steps STEPS --uncertainty U` (a pyramid; uncertainty 0 is the full-sequence schedule).\n\n"
        + "\n".join(lines) + "\n"
    )
    publish("sampling_grid", text)


if __name__ == "__main__":
    main()
