"""The OpenAPI document tells the truth: schemathesis fuzzes a real ``atoll cp`` from it.

``test_schemathesis_finds_no_server_error_and_no_schema_violation`` runs schemathesis' CLI (fixed
seed, a few examples per operation, positive and negative data) against a control plane this test
starts on free ports, checking that no answer is a 5xx, and that every status, content type and body
is one the document declares. ``test_every_operation_documents_its_errors_and_limits`` checks the
document itself: explicit error statuses (no catch-all ``default``) and the bounds of the paging and
``If-Match`` parameters.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.api.wire import MAX_OFFSET, MAX_PAGE_SIZE
from tests.helpers import ATOLL, free_port, stop_process, wait_until

SCHEMATHESIS = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def cp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cp")
    api, diag, xds = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    argv = [*ATOLL, "cp", "--store", "memory", "--api-port", str(api), "--diagnostics-port", str(diag)]
    argv += ["--xds-port", str(xds), "--data-dir", str(tmp / "data")]
    log = tmp / "cp.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:

        def ready() -> bool:
            if p.poll() is not None:
                raise AssertionError(f"atoll cp exited with {p.returncode}:\n{log.read_text()}")
            return httpx.get(f"http://127.0.0.1:{diag}/ready", timeout=1).status_code == 200

        wait_until(ready, timeout=30, what="atoll cp /ready")
        yield f"http://127.0.0.1:{api}"
    finally:
        stop_process(p)
        tracebacks = log.read_text(errors="replace").count("Traceback")
        assert tracebacks == 0, f"the CP logged {tracebacks} tracebacks while fuzzed:\n{log.read_text()[-4000:]}"


@pytest.mark.timeout(120)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(cp_url: str, tmp_path: Path) -> None:
    argv = [str(SCHEMATHESIS), "run", f"{cp_url}/openapi.json", "--phases", "fuzzing", "--max-examples", "3"]
    argv += ["--seed", "1", "--workers", "2", "--checks", CHECKS, "--no-color"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=110, cwd=tmp_path, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts is not None, out[-3000:]
    assert int(counts.group(1)) >= 200 and counts.group(1) == counts.group(2), out[-3000:]


def test_every_operation_documents_its_errors_and_limits(cp_url: str) -> None:
    doc: dict[str, Any] = httpx.get(f"{cp_url}/openapi.json", timeout=10).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            assert "default" not in statuses, f"{method} {path}"
            assert {"405", "500"} <= statuses, f"{method} {path}: {sorted(statuses)}"
            if op.get("parameters") or op.get("requestBody"):
                assert "400" in statuses, f"{method} {path}: {sorted(statuses)}"
            if op.get("requestBody"):
                assert {"413", "415"} <= statuses, f"{method} {path}: {sorted(statuses)}"
                assert "413" in op["requestBody"]["description"]
            params = {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] != "path"}
            if "size" in params:
                assert params["size"] | {"type": "integer"} == {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                }
                assert params["offset"] == {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
            if "If-Match" in params:
                assert params["If-Match"]["maxLength"] == 26 and "pattern" in params["If-Match"]
    dp_put = doc["paths"]["/meshes/{mesh}/dataplanes/{name}"]["put"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "500"} <= set(dp_put)
