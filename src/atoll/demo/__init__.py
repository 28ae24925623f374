"""``atoll demo``: a whole mesh on loopback with live traffic, started and stopped by one command.

It starts a control plane (a child process with an SQLite store in a temporary directory), creates
the ``default`` mesh, runs the demo applications (``frontend`` calling ``backend``, two backend
instances) each behind a real Envoy sidecar run by ``atoll dp run``, and drives traffic through
them, printing every couple of seconds which backend instance answered what share of requests and
how many failed. It prints the REST address and the commands to inspect the mesh or to stop a backend
and watch traffic move. Ctrl-C (or ``--duration``) stops everything it started and removes its files.
"""

from atoll.demo.run import run_demo

__all__ = ["run_demo"]
