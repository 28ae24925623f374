"""Atoll: a multi-zone service mesh. Python control planes driving real Envoy proxies.

The public surface of the package is small on purpose: roles are reached through the ``atoll`` CLI
(``atoll.cli``), and libraries import from the layer packages (``atoll.resources``, ``atoll.store``,
...), each of which lists its public names in ``__all__``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
