"""Planning speed of the shipped OGBench planners (PointMaze, AntMaze): one env, one thread.

    python benchmarks/ogbench_speed.py [--episodes 5] [--checkpoints NAME ...]

For every shipped pointmaze-* and antmaze-* checkpoint, `dfplan eval --env NAME --episodes N --batch-size 1` in a
subprocess pinned to one thread (episodes on tasks 1..N of OGBench's five); plans/s = the actions/s
timed inside the policy divided by the env steps between plans. Run it on an otherwise idle machine.
With --checkpoints only those are measured again; the other rows are kept from results/ogbench_speed.json.
Writes results/ogbench_speed.json, results/ogbench_speed.md and the README's ogbench_speed block.
"""

from __future__ import annotations

import argparse
import json

from dfplanner.evaluation.pretrained import SHIPPED_DIR

from dfplan_eval import run_eval
from report import RESULTS, publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    shipped = sorted(p.stem for family in ("pointmaze", "antmaze") for p in SHIPPED_DIR.glob(f"{family}-*.json"))
    parser.add_argument("--checkpoints", nargs="+", choices=shipped, default=shipped, help="default: every shipped one")
    args = parser.parse_args()
    stored = RESULTS / "ogbench_speed.json"
    kept = json.loads(stored.read_text()) if stored.exists() and args.checkpoints != shipped else {}
    rows = {name: row for name, row in kept.items() if name in shipped and name not in args.checkpoints}
    for name in args.checkpoints:
        result = run_eval(["--env", name, "--episodes", str(args.episodes), "--batch-size", "1", "--seed", "0"], threads=1)
        planner = result["planner"]
        rows[name] = {"horizon": planner["horizon"], "replan_every": planner["replan_every"],
                      "actions_per_s": result["decisions_per_second"],
                      "plans_per_s": result["decisions_per_second"] / planner["replan_every"],
                      "episodes": result["episodes"], "success_rate": result["success_rate"]}
    rows = dict(sorted(rows.items()))
    stored.write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| checkpoint | horizon (tokens) | plans/s, 1 env, 1 thread | actions/s |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['horizon']} | {r['plans_per_s']:.1f} | {r['actions_per_s']:.0f} |" for name, r in rows.items()]
    publish("ogbench_speed", "\n".join(lines) + f"\n\n`python benchmarks/ogbench_speed.py --episodes {args.episodes}`\n")


if __name__ == "__main__":
    main()
