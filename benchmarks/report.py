"""Where benchmark tables go: results/NAME.md, and the README block between NAME's markers if it has one.

A README block is `<!-- NAME: made by benchmarks/SCRIPT.py -->` ... `<!-- /NAME -->`; only the text
between the markers is replaced, so the numbers in the README are always the script's output.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS, README = ROOT / "results", ROOT / "README.md"


def publish(name: str, text: str) -> None:
    (RESULTS / f"{name}.md").write_text(text)
    readme = README.read_text()
    begin = next((line for line in readme.splitlines() if line.startswith(f"<!-- {name}: made by ")), None)
    end = f"<!-- /{name} -->"
    if begin is not None and end in readme:
        head, rest = readme.split(begin, 1)
        README.write_text(head + begin + "\n" + text + end + rest.split(end, 1)[1])
    print(text)
