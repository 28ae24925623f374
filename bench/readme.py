"""Rewrite the "Latest results" section of ``bench/README.md`` from ``bench/results/latest.json``.

``python -m bench.readme``: for each benchmark in ``latest.json`` (convergence, crosszone, reconnect,
kds_scale, dataplane), the table its own ``report()`` prints, the results file it came from (kept
locally; ``latest.json`` itself is committed and holds every number) and the machine it ran on.
Everything from the ``## Latest results`` heading to the end of the README is replaced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import convergence, crosszone, dataplane, kds_scale, reconnect
from bench.common import RESULTS

README = Path(__file__).resolve().parent / "README.md"
MARK = "## Latest results"


def section(latest: dict[str, Any]) -> str:
    out = [MARK, ""]
    benchmarks = (
        ("convergence", convergence),
        ("crosszone", crosszone),
        ("reconnect", reconnect),
        ("kds_scale", kds_scale),
        ("dataplane", dataplane),
    )
    for name, mod in benchmarks:
        data = latest.get(name)
        if data is None:
            out += [f"### {name}", "", "(not run yet)", ""]
            continue
        m = data["machine"]
        out += [
            f"### {name} — `bench/results/{data['file']}`",
            "",
            f"Machine: {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}, Python {m['python']}; "
            f"`/proc/loadavg` at start: {m['loadavg']}.",
            "",
            "```",
            mod.report(data),
            "```",
            "",
        ]
    return "\n".join(out)


def main() -> int:
    latest = json.loads((RESULTS / "latest.json").read_text())
    text = README.read_text()
    head = text.split(MARK, 1)[0]
    README.write_text(head + section(latest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
