"""`atoll dp run` as a real process against the stand-in CP endpoints (``FakeCp``), with real Envoy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dp.support import FakeCp, HttpBackend, alive, children_of
from tests.helpers import free_port, stop_process, wait_until

pytestmark = pytest.mark.envoy

DP = """\
type: Dataplane
mesh: default
name: {{ name }}
networking:
  address: 127.0.0.1
  inbound:
    - port: {{ inbound_port }}
      servicePort: {{ service_port }}
      serviceProbe:
        interval: 100ms
        tcp: {}
      tags:
        kuma.io/service: web
    - port: {{ other_port }}
      health: {ready: false}
      tags:
        kuma.io/service: web-admin
"""


class Agent:
    """One `atoll dp run` process; stdout lines are collected by a thread, stderr goes to a file."""

    def __init__(self, args: list[str], tmp: Path, stdin: str | None = None) -> None:
        self.stderr_path = tmp / f"agent-{len(list(tmp.glob('agent-*')))}.err"
        self._err = self.stderr_path.open("wb")
        temp = tmp / "tmp"  # the agent's own temp work dir lands here (a SIGKILLed agent cannot remove it)
        temp.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atoll.cli.dp", "run", "-v", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(temp)},
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        self.lines: list[str] = []
        self.envoy_pids: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def envoys(self) -> list[int]:
        pids = children_of(self.proc.pid)
        self.envoy_pids.update(pids)
        return pids

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def cleanup(self) -> None:
        self.envoys()
        stop_process(self.proc)
        for pid in self.envoy_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._err.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[Agent]]:
    started: list[Agent] = []
    try:
        yield started
    finally:
        for a in started:
            a.cleanup()


def get(url: str, timeout: float = 5) -> httpx.Response:
    return httpx.get(url, timeout=timeout, trust_env=False)


def dp_args(cp: FakeCp, tmp: Path, *extra: str, service_port: int, dp_file: str = "") -> list[str]:
    if not dp_file:
        path = tmp / "dp.yaml"
        path.write_text(DP)
        dp_file = str(path)
    return [
        "--cp",
        cp.url,
        "--dataplane-file",
        dp_file,
        "--dataplane-var",
        "name=web-1",
        "--dataplane-var",
        f"inbound_port={free_port()}",
        "--dataplane-var",
        f"service_port={service_port}",
        "--dataplane-var",
        f"other_port={free_port()}",
        "--drain-time",
        "3s",
        *extra,
    ]


def test_success_path_ready_traffic_and_sigterm(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    admin, ready = free_port(), free_port()
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    work = tmp_path / "work"
    # the first two bootstrap answers are 503: the agent retries
    answers: list[tuple[int, dict[str, Any]]] = [(503, {"title": "starting"}), (503, {"title": "starting"})]
    fake_cp.bootstrap_handler = lambda body: answers.pop(0) if answers else fake_cp.static_answer(body)
    agent = Agent(
        dp_args(
            fake_cp,
            tmp_path,
            "--token-file",
            str(token),
            "--admin-port",
            str(admin),
            "--ready-port",
            str(ready),
            "--work-dir",
            str(work),
            "--xds",
            "sotw",
            service_port=backend.port,
        ),
        tmp_path,
    )
    agents.append(agent)
    wait_until(lambda: agent.lines or agent.proc.poll() is not None, timeout=20, what="ready line")
    assert agent.lines == [f"atoll-dp ready: admin=127.0.0.1:{admin}"], agent.stderr

    requests = fake_cp.bootstrap_requests
    assert len(requests) == 3
    body = requests[-1]
    assert body["proxyType"] == "dataplane" and body["xdsMode"] == "sotw"
    assert body["token"] == "secret-token" and body["adminPort"] == admin
    assert body["dataplane"]["name"] == "web-1" and body["dataplane"]["mesh"] == "default"
    assert body["dataplane"]["networking"]["inbound"][0]["tags"] == {"kuma.io/service": "web"}
    assert set(body["version"]) == {"atoll", "envoy"}
    assert (work / "bootstrap.json").exists()

    assert get(f"http://127.0.0.1:{ready}/ready").status_code == 200
    assert get(f"http://127.0.0.1:{ready}/other").status_code == 404
    assert get(f"http://127.0.0.1:{fake_cp.listener_port}/").text == "backend=A"

    # health: the probed inbound is ready, the one with health.ready: false is not
    inbound_port = int(body["dataplane"]["networking"]["inbound"][0]["port"])
    other_port = int(body["dataplane"]["networking"]["inbound"][1]["port"])
    wait_until(lambda: fake_cp.latest_inbounds() == {inbound_port: True, other_port: False}, what="health report")
    assert fake_cp.reports()[0]["token"] == "secret-token"

    envoys = agent.envoys()
    assert len(envoys) == 1
    # kill -9 Envoy: the agent starts a new one and traffic flows again
    os.kill(envoys[0], signal.SIGKILL)
    envoy = wait_until(lambda: next((p for p in agent.envoys() if p != envoys[0]), None), what="a new envoy")
    wait_until(lambda: get(f"http://127.0.0.1:{ready}/ready").status_code == 200, what="ready after restart")
    assert get(f"http://127.0.0.1:{fake_cp.listener_port}/").text == "backend=A"
    assert f"envoy (pid {envoys[0]}) exited unexpectedly with signal SIGKILL" in agent.stderr
    assert not alive(envoys[0])
    assert len(agent.lines) == 1  # the ready line is printed once

    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait() == 0, agent.stderr
    assert not alive(envoy)
    assert children_of(agent.proc.pid) == []
    # on stop, the agent told the CP that its inbounds are unready (before Envoy drained)
    assert fake_cp.latest_inbounds() == {inbound_port: False, other_port: False}
    assert (work / "bootstrap.json").exists()  # a given work dir is kept


def test_probe_reports_follow_the_backend(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    service = HttpBackend(free_port(), label="svc")  # the workload the inbound's probe watches
    service.start()
    try:
        agent = Agent(dp_args(fake_cp, tmp_path, service_port=service.port), tmp_path)
        agents.append(agent)
        wait_until(lambda: agent.lines or agent.proc.poll() is not None, timeout=20, what="ready line")
        assert agent.lines and agent.lines[0].startswith("atoll-dp ready: admin=127.0.0.1:"), agent.stderr
        port = int(fake_cp.bootstrap_requests[0]["dataplane"]["networking"]["inbound"][0]["port"])
        wait_until(lambda: fake_cp.latest_inbounds().get(port) is True, what="ready report")
        service.stop()
        wait_until(lambda: fake_cp.latest_inbounds().get(port) is False, what="unready report")
        service.start()
        wait_until(lambda: fake_cp.latest_inbounds().get(port) is True, what="ready again")
        readiness = [r["inbounds"][0]["ready"] for r in fake_cp.reports()]
        assert readiness == [True, False, True]
    finally:
        service.stop()


def test_rejection_prints_the_cp_message_and_exits_2(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    fake_cp.bootstrap_handler = lambda body: (
        403,
        {
            "title": "dataplane token rejected",
            "details": "the token was signed for another mesh",
            "invalid_parameters": [{"field": "token", "reason": 'mesh "other" does not match "default"'}],
        },
    )
    agent = Agent(dp_args(fake_cp, tmp_path, service_port=backend.port), tmp_path)
    agents.append(agent)
    assert agent.wait() == 2
    err = agent.stderr
    assert (
        "error: control plane rejected the request (HTTP 403): dataplane token rejected: "
        "the token was signed for another mesh" in err
    )
    assert '  token: mesh "other" does not match "default"' in err
    assert len(fake_cp.bootstrap_requests) == 1  # a 4xx is not retried
    assert agent.lines == []


def test_invalid_dataplane_from_stdin_exits_2_naming_the_field(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    bad = DP.replace("kuma.io/service: web-admin", "kuma.io/protocol: smtp")
    agent = Agent(dp_args(fake_cp, tmp_path, service_port=backend.port, dp_file="-"), tmp_path, stdin=bad)
    agents.append(agent)
    assert agent.wait() == 2
    err = agent.stderr
    assert "error: invalid Dataplane" in err
    assert 'networking.inbound[1].tags: "kuma.io/service" tag is required on every inbound' in err
    assert fake_cp.bootstrap_requests == []


def test_unreplaced_template_variable_exits_2(tmp_path: Path, fake_cp: FakeCp, agents: list[Agent]) -> None:
    path = tmp_path / "dp.yaml"
    path.write_text(DP)
    agent = Agent(["--cp", fake_cp.url, "--dataplane-file", str(path), "--dataplane-var", "name=web-1"], tmp_path)
    agents.append(agent)
    assert agent.wait() == 2
    err = agent.stderr
    for name in ("inbound_port", "service_port", "other_port"):
        assert f'template variable "{name}" has no value; pass --dataplane-var {name}=VALUE' in err
    assert fake_cp.bootstrap_requests == []


def test_unreachable_cp_exits_1_after_cp_timeout(tmp_path: Path, backend: HttpBackend, agents: list[Agent]) -> None:
    cp = FakeCp(free_port())  # never started: nothing listens there
    agent = Agent(dp_args(cp, tmp_path, "--cp-timeout", "1s", service_port=backend.port), tmp_path)
    agents.append(agent)
    assert agent.wait() == 1
    assert f"error: could not get a bootstrap from {cp.url}/bootstrap within 1s" in agent.stderr


def test_envoy_dies_with_a_killed_agent(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    agent = Agent(dp_args(fake_cp, tmp_path, service_port=backend.port), tmp_path)
    agents.append(agent)
    wait_until(lambda: agent.lines or agent.proc.poll() is not None, timeout=20, what="ready line")
    (envoy,) = agent.envoys()
    agent.proc.kill()  # no chance to clean up: PR_SET_PDEATHSIG takes Envoy down with it
    agent.wait()
    wait_until(lambda: not alive(envoy), what="envoy gone after the agent was killed")


def test_sigint_while_waiting_for_the_cp_exits_0(
    tmp_path: Path, fake_cp: FakeCp, backend: HttpBackend, agents: list[Agent]
) -> None:
    fake_cp.bootstrap_handler = lambda body: (503, {"title": "not leader yet"})
    agent = Agent(dp_args(fake_cp, tmp_path, service_port=backend.port), tmp_path)
    agents.append(agent)
    wait_until(lambda: len(fake_cp.bootstrap_requests) >= 2, what="bootstrap retried")
    assert "HTTP 503: not leader yet" in agent.stderr
    agent.proc.send_signal(signal.SIGINT)
    assert agent.wait() == 0, agent.stderr
    assert agent.envoys() == [] and agent.lines == []
