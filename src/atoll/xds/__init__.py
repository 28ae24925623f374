"""atoll.xds: Envoy configuration, from generation to the wire.

- ``vocabulary``: what both halves share: type URLs, the push order, resource names, the references
  between resources and the one consistency check (pure, imports only the Envoy protos).
- ``generate``: per-proxy views to Envoy messages and bootstraps (pure).
- ``pump``: the stream pump (one reader task feeding one writer loop) under ADS and both KDS directions.
- ``server``: the ADS server: snapshots, sans-I/O stream machines, the snapshot cache, the gRPC servicer.

Importing this package imports none of them.
"""
