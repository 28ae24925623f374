"""KDS: the sync between the global control plane and zone control planes.

Layout (services layer; imports ``store`` and ``resources`` only):

- ``kds.proto`` / ``kds_pb2``: the ``KdsResource`` wrapper (meta + JSON spec) carried in delta xDS.
- ``wire``: ``Resource`` <-> wire; ``names``: origin/zone labels and hashed names of synced copies.
- ``protocol``: sans-I/O ``Sender`` / ``Receiver`` (full set then deltas, nonces, ACK/NACK).
- ``reconcile``: ``StoreSink`` applies a received batch in one store transaction.
- ``flows``: what flows each way (``GlobalToZoneSource``, ``ZoneToGlobalSource``).
- ``pump``: the grpc.aio pumps; ``server``: global's service, inventory, component
  ``GlobalKds``; ``zones``: global's registry of connected zones; ``client``: the zone's component
  ``ZoneKds``; ``tls``: KDS certificates.
- ``DATAPLANE_INSIGHT``: the type of the insights zones send up, a built-in resource type
  (``atoll.resources.models.dataplane_insight``), re-exported here.

Public surface: ``GlobalKds``, ``ZoneKds``, ``ZoneRegistry``, ``GlobalInventory``,
``parse_global_address``, ``ensure_self_signed``, ``server_credentials``, ``DATAPLANE_INSIGHT``.
"""

from atoll.kds.client import GlobalAddress, ZoneKds, parse_global_address
from atoll.kds.server import Authenticate, GlobalInventory, GlobalKds, KdsServicer
from atoll.kds.tls import ensure_self_signed, server_credentials
from atoll.kds.zones import ZoneRegistry
from atoll.resources.models.dataplane_insight import DATAPLANE_INSIGHT, DataplaneInsightSpec

__all__ = [
    "DATAPLANE_INSIGHT",
    "Authenticate",
    "DataplaneInsightSpec",
    "GlobalAddress",
    "GlobalInventory",
    "GlobalKds",
    "KdsServicer",
    "ZoneKds",
    "ZoneRegistry",
    "ensure_self_signed",
    "parse_global_address",
    "server_credentials",
]
