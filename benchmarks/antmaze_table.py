"""Collect the AntMaze evaluation JSON files in results/antmaze/ into results/antmaze_table.md and the
README's antmaze_table block (and print it); the JSONs are written by the command in its footer.
"""

from __future__ import annotations

import json

from report import RESULTS, publish

MAZES = ("medium", "large", "giant")
COMMAND = ("dfplan eval --env antmaze-MAZE-navigate-v0 --policy oracle --episodes 250 --seed 0 --batch-size 50 "
           "--json results/antmaze/oracle_antmaze-MAZE.json")


def main() -> None:
    lines = ["Success on OGBench's 5 evaluation tasks (overall, then tasks 1-5; 250 episodes = 50 per task, seed 0) "
             "and mean first arrival (steps of 1,000).", "",
             "| policy | " + " | ".join(f"antmaze-{m}" for m in MAZES) + " |", "|---|" + "---|" * len(MAZES)]
    cells = []
    for maze in MAZES:
        path = RESULTS / "antmaze" / f"oracle_antmaze-{maze}.json"
        if not path.exists():
            cells.append("not measured")
            continue
        result = json.loads(path.read_text())
        tasks = " / ".join(f"{v['success_rate']:.0%}" for _, v in sorted(result["per_task"].items()))
        cells.append(f"{result['success_rate']:.1%} ({tasks}); {result['first_reach_mean']:.0f}")
    lines.append("| shipped expert along OGBench's oracle directions (`--policy oracle`) | " + " | ".join(cells) + " |")
    publish("antmaze_table", "\n".join(lines) + f"\n\n`{COMMAND}`, then `python benchmarks/antmaze_table.py`.\n")


if __name__ == "__main__":
    main()
