"""Serving proxies from a zone control plane, as parts the control plane wires (``atoll.cp.xds``):
store changes -> per-proxy xDS snapshots (``reconciler``), the life of a registered proxy from bootstrap
to removal (``lifecycle``, ``removal``), what every proxy is doing (``inventory``), their workload certificates
(``identities``), the REST side (``endpoints``) and the admin relay's CP half (``admin_requests``).
Proxy identity is ``atoll.resources.proxy_id.NodeId``."""

from atoll.proxies.inventory import Inventory, ProxyInsight
from atoll.proxies.lifecycle import DataplaneLifecycle
from atoll.proxies.reconciler import ProxyKind, ProxyReconciler

__all__ = ["DataplaneLifecycle", "Inventory", "ProxyInsight", "ProxyKind", "ProxyReconciler"]
