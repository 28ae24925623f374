"""``python -m atoll.cp``: a control plane configured only by ``ATOLL_*`` variables.

``ATOLL_CONFIG`` may name a YAML config file. The ``atoll cp`` command of the CLI is the user-facing
way to start one; this entry point exists for process tests and minimal containers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from atoll.cp.config import load_config
from atoll.cp.run import run_cp
from atoll.errors import ConfigError


def main() -> int:
    file = os.environ.get("ATOLL_CONFIG")
    try:
        config = load_config({}, os.environ, Path(file) if file else None)
    except ConfigError as e:
        print(f"atoll cp: invalid configuration: {e}", file=sys.stderr)
        return 2
    return run_cp(config)


if __name__ == "__main__":
    sys.exit(main())
