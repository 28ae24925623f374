"""Serving proxies from a zone control plane: store changes -> per-proxy xDS snapshots (``reconciler``),
the life of a registered proxy from bootstrap to removal (``lifecycle``), and what every proxy is doing
(``inventory``)."""

from atoll.proxies.inventory import Inventory, ProxyInsight
from atoll.proxies.lifecycle import DataplaneLifecycle
from atoll.proxies.reconciler import ProxyKind, ProxyReconciler

__all__ = ["DataplaneLifecycle", "Inventory", "ProxyInsight", "ProxyKind", "ProxyReconciler"]
