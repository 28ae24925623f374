"""The resource registry is filled by ``atoll.resources`` alone, whatever a process imports next.

Each case runs in a fresh interpreter (this test process has imported everything already), so a
module that registered a type as a side effect of its import would show up as a difference.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PRINT_TYPES = (
    "import json\n"
    "from atoll.resources.types import all_types\n"
    "print(json.dumps([(t.name, t.plural, t.scope.value) for t in all_types()]))\n"
)

_IMPORT_EVERYTHING = (
    "import importlib, pkgutil, atoll\n"
    "for m in pkgutil.walk_packages(atoll.__path__, 'atoll.'):\n"
    "    if not m.name.endswith('__main__'):\n"
    "        importlib.import_module(m.name)\n"
)


def _types_after(imports: str) -> list[list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", imports + "\n" + _PRINT_TYPES], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    types: list[list[str]] = json.loads(done.stdout)
    return types


@pytest.fixture(scope="module")
def builtin() -> list[list[str]]:
    return _types_after("import atoll.resources")


def test_dataplane_insight_is_a_builtin_type(builtin: list[list[str]]) -> None:
    assert ["DataplaneInsight", "dataplaneinsights", "mesh"] in builtin


@pytest.mark.parametrize(
    "imports",
    [
        "import atoll.api.app",
        "import atoll.api.app\nimport atoll.kds",
        "import atoll.kds\nimport atoll.api.app",
        "import atoll.cli.main",
        "import atoll.cp.run",
        _IMPORT_EVERYTHING,
    ],
    ids=["api", "api-then-kds", "kds-then-api", "cli", "cp", "every-module"],
)
def test_no_import_adds_or_removes_a_type(builtin: list[list[str]], imports: str) -> None:
    assert _types_after(imports) == builtin
