"""Typed resources in Kuma's Universal format: models, validation, the registry and the codec.

Importing this package registers every resource type (the ``models`` modules register at import).
"""

from atoll.resources import models as _models  # noqa: F401  (registers every type)
from atoll.resources.codec import decode, decode_all, dump_json, dump_yaml, encode, load_documents
from atoll.resources.meta import Resource, ResourceKey, ResourceMeta
from atoll.resources.types import ResourceType, Scope, all_types, find_type, get_type

__all__ = [
    "Resource",
    "ResourceKey",
    "ResourceMeta",
    "ResourceType",
    "Scope",
    "all_types",
    "decode",
    "decode_all",
    "dump_json",
    "dump_yaml",
    "encode",
    "find_type",
    "get_type",
    "load_documents",
]
