"""One module per resource kind; each registers its ResourceType at import."""

from atoll.resources.models import dataplane, mesh

__all__ = ["dataplane", "mesh"]
