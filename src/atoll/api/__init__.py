"""The REST API and diagnostics HTTP services of a control plane (FastAPI / Starlette apps).

Public surface: ``create_app`` (resource CRUD, ``/bootstrap``), ``create_diagnostics_app``
(``/ready``, ``/healthy``, ``/metrics``), ``ApiInfo``, ``Metrics``, ``InstrumentedStore``; REST paths
in ``atoll.api.paths``; error mapping in ``atoll.api.errors``.
"""

from atoll.api.app import ApiInfo, BootstrapHandler, create_app, is_loopback_admin
from atoll.api.diagnostics import create_diagnostics_app
from atoll.api.metrics import InstrumentedStore, Metrics

__all__ = [
    "ApiInfo",
    "BootstrapHandler",
    "InstrumentedStore",
    "Metrics",
    "create_app",
    "create_diagnostics_app",
    "is_loopback_admin",
]
