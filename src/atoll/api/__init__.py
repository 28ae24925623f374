"""The REST API and diagnostics HTTP services of a control plane (FastAPI / Starlette apps).

The package imports none of its modules, so that clients can read ``atoll.api.paths`` without
loading FastAPI. Import what you use from its modules:

- ``app``: ``create_app(ApiDependencies(...))`` builds the REST API from the routes below.
- ``deps``: ``ApiDependencies`` (everything the app is built from), ``ApiInfo``, ``ProxyEndpoints``,
  ``TokenEndpoints``, ``is_loopback_admin``.
- ``paths``: every REST path (server and clients); Kuma's spellings canonical, Atoll's as aliases.
- routes, one module per concern: ``resources`` (CRUD per resource type, ``/``, ``/_resources``),
  ``insights`` (``+insights`` lists, a proxy's xDS config, config dump and stats), ``proxy_routes``
  (``/bootstrap`` and the agents' ``/dp/*``), ``tokens`` (``/tokens/*``), ``overviews`` (Kuma's
  ``_overview`` and insight routes, in Kuma's shapes built by ``kuma_shapes``).
- ``writes``: a PUT's body checked against its path, create-or-update with retries.
- ``openapi``: the OpenAPI document, with a schema per resource type from its spec model.
- ``wire``: what every handler shares (paging, ``Accept``-driven JSON/YAML answers, ``If-Match``,
  the admin check); ``body``: request bodies; ``errors``: ``HttpError`` and the one error mapping.
- ``diagnostics``: ``/ready``, ``/healthy``, ``/metrics``; ``metrics``: ``Metrics``,
  ``InstrumentedStore``.
"""
