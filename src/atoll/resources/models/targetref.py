"""The ``targetRef`` of ``Mesh*`` policies and the rules every policy checks it against.

A ``TargetRef`` names what a policy (top level), a ``to[]`` entry (destinations) or a ``from[]``
entry (sources) refers to: ``kind`` plus the fields that kind takes. ``check_target_ref`` applies
the per-kind field rules (``name`` not with kind Mesh, ``tags`` not with Dataplane, ...) and the
per-policy, per-section lists of allowed kinds in a ``RefRules`` (each policy module declares its
own on its spec class, see ``policy``; ``POLICY_REFS`` maps registered policy names to them).
``check_policy`` runs the whole policy-level check: allowed sections, "at least one of", and every
targetRef, so each policy module only adds the rules of its own ``default`` blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pydantic import Field, ModelWrapValidatorHandler, ValidationError

from atoll.resources.base import NAME_CHARS, Check, Spec, Tags, error_items

S = TypeVar("S", bound=Spec)

TargetRefKind = Literal[
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshHTTPRoute",
    "Dataplane",
]
KINDS: tuple[str, ...] = get_args(TargetRefKind)
ProxyType = Literal["Sidecar", "Gateway"]


class TargetRef(Spec):
    kind: TargetRefKind
    name: str | None = None
    namespace: str | None = None
    section_name: str | None = None
    tags: Tags | None = None
    labels: Tags | None = None
    proxy_types: list[ProxyType] | None = None
    mesh: str | None = None


MESH_REF = TargetRef(kind="Mesh")


@dataclass(frozen=True, slots=True)
class RefRules:
    """Which targetRef kinds one policy allows in each place; empty ``to``/``from_`` = no such section."""

    top: tuple[str, ...]
    to: tuple[str, ...] = ()
    from_: tuple[str, ...] = ()
    rules: bool = False
    # targetRef kind MeshGateway may carry listener tags (``tags: {port: http-8080}``).
    gateway_tags: bool = False
    # to[] of a policy whose top targetRef is a MeshGateway allows only these kinds.
    to_for_gateway: tuple[str, ...] = ("Mesh",)
    # to[] configures builtin gateways only (Kuma: "must not be defined" unless the top is MeshGateway).
    to_gateway_only: bool = False


# The kind lists most policies allow; a policy module combines them into its ``RefRules``.
TOP_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
TOP_KINDS_GW = (*TOP_KINDS, "MeshGateway")
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService")
FROM_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset")

POLICY_REFS: dict[str, RefRules] = {}
"""Policy name -> its ``RefRules``, filled as each policy registers (``policy.register_policy``)."""


def _disallow(check: Check, path: str, ref: TargetRef, *fields: str) -> None:
    for f in fields:
        value = getattr(ref, f)
        if value:
            alias = {"section_name": "sectionName", "proxy_types": "proxyTypes"}.get(f, f)
            check.add(f"{path}.{alias}" if path else alias, f"must not be set with kind {ref.kind}")


def _p(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _check_name(check: Check, path: str, ref: TargetRef, *, required: bool) -> None:
    if ref.name is None:
        if required:
            check.add(_p(path, "name"), f"must be set with kind {ref.kind}")
        return
    if not ref.name or not NAME_CHARS.match(ref.name):
        check.add(_p(path, "name"), "invalid characters: use lowercase letters, digits, '-', '.' and '_'")


def _check_tags(check: Check, path: str, tags: Tags | None) -> None:
    for k, v in (tags or {}).items():
        if not k:
            check.add(path, "tag name must not be empty")
        if not v:
            check.add(_p(path, k), "tag value must not be empty")


def check_target_ref(
    ref: TargetRef,
    allowed: tuple[str, ...],
    check: Check,
    path: str,
    *,
    inbound: bool = False,
    gateway_tags: bool = False,
) -> None:
    """Record in ``check`` (under ``path``) every problem of ``ref`` given the kinds ``allowed`` there."""
    if ref.kind not in allowed:
        check.add(_p(path, "kind"), f"kind {ref.kind} is not allowed here; allowed: {', '.join(allowed)}")
        return
    labels_and_name = bool(ref.labels) and (ref.name is not None or ref.namespace is not None)
    match ref.kind:
        case "Mesh":
            if ref.name:
                check.add(_p(path, "name"), "using name with kind Mesh is not supported")
            _disallow(check, path, ref, "mesh", "tags", "labels", "namespace", "section_name")
        case "Dataplane":
            _disallow(check, path, ref, "tags", "mesh", "proxy_types")
            if labels_and_name:
                check.add(_p(path, "labels"), "either labels or name and namespace must be specified")
            if ref.section_name and not inbound:
                check.add(_p(path, "sectionName"), "can only be used with inbound policies (from or rules)")
        case "MeshSubset":
            _disallow(check, path, ref, "name", "mesh", "labels", "namespace", "section_name")
            _check_tags(check, _p(path, "tags"), ref.tags)
        case "MeshService" | "MeshHTTPRoute" | "MeshMultiZoneService":
            _check_name(check, path, ref, required=not ref.labels)
            _disallow(check, path, ref, "mesh", "tags", "proxy_types")
            if labels_and_name:
                check.add(_p(path, "labels"), "either labels or name and namespace must be specified")
            if ref.labels and ref.section_name:
                check.add(_p(path, "sectionName"), "must not be combined with labels")
        case "MeshServiceSubset" | "MeshGateway":
            _check_name(check, path, ref, required=True)
            _disallow(check, path, ref, "mesh", "proxy_types", "labels", "namespace", "section_name")
            if ref.kind == "MeshGateway" and ref.tags and not gateway_tags:
                check.add(_p(path, "tags"), "must not be set with kind MeshGateway in this policy")
            _check_tags(check, _p(path, "tags"), ref.tags)
        case "MeshExternalService":
            _check_name(check, path, ref, required=not ref.labels)
            _disallow(check, path, ref, "mesh", "tags", "proxy_types", "section_name")
            if labels_and_name:
                check.add(_p(path, "labels"), "either labels or name must be specified")


def check_policy(spec: Any, refs: RefRules, check: Check) -> None:
    """Policy-level rules shared by every ``Mesh*`` policy: sections allowed, at least one of them
    set, every targetRef valid for its place. ``spec`` has ``target_ref`` and some of ``to``,
    ``from_``, ``rules``."""
    to = getattr(spec, "to", None)
    from_ = getattr(spec, "from_", None)
    _check_refs(
        refs,
        check,
        top=getattr(spec, "target_ref", None),
        to=None if to is None else [(i, item.target_ref) for i, item in enumerate(to)],
        from_=None if from_ is None else [(i, item.target_ref) for i, item in enumerate(from_)],
        has_rules=bool(getattr(spec, "rules", None)),
    )


def _check_refs(
    r: RefRules,
    check: Check,
    *,
    top: TargetRef | None,
    to: list[tuple[int, TargetRef]] | None,
    from_: list[tuple[int, TargetRef]] | None,
    has_rules: bool,
) -> None:
    sections = [name for name, ok in (("from", bool(r.from_)), ("to", bool(r.to)), ("rules", r.rules)) if ok]
    if not (to or from_ or has_rules):
        check.add("", f"at least one of {', '.join(sections)} has to be defined")
    top_ref = top or MESH_REF
    if top is not None:
        inbound = bool(from_ or has_rules) and not to
        check_target_ref(top, r.top, check, "targetRef", inbound=inbound, gateway_tags=r.gateway_tags)
    allowed_to = r.to_for_gateway if top_ref.kind == "MeshGateway" else r.to
    if to and r.to_gateway_only and top_ref.kind != "MeshGateway":
        check.add(
            "to",
            "must not be defined unless targetRef is a MeshGateway (to[] configures builtin gateways); "
            "for a sidecar's inbound traffic use rules[] or from[]",
        )
        to = None
    for i, ref in to or []:
        check_target_ref(ref, allowed_to, check, f"to[{i}].targetRef")
    if from_ and top_ref.kind == "MeshGateway":
        check.add("from", "must not be used with a MeshGateway targetRef; use to or rules")
    for i, ref in from_ or []:
        check_target_ref(ref, r.from_, check, f"from[{i}].targetRef")
    if has_rules and from_:
        check.add("rules", "must not be combined with from: both configure inbound traffic")


def _raw_ref(value: object) -> TargetRef | None:
    try:
        return TargetRef.model_validate(value)
    except ValidationError:
        return None


def _raw_refs(items: object) -> list[tuple[int, TargetRef]] | None:
    if not isinstance(items, list):
        return None
    out = []
    for i, item in enumerate(items):
        ref = _raw_ref(item.get("targetRef")) if isinstance(item, Mapping) else None
        if ref is not None:
            out.append((i, ref))
    return out


def validate_policy(data: Any, handler: ModelWrapValidatorHandler[S], refs: RefRules) -> S:
    """The body of a policy spec's wrap validator: validate the fields, then the policy-level
    rules. When some field is wrong, the targetRef rules still run on the refs that are well
    formed, so every problem is reported at once."""
    check = Check()
    try:
        spec = handler(data)
    except ValidationError as e:
        check.extend("", error_items(e))
        if not isinstance(data, Mapping):
            check.done()
        found = Check()
        _check_refs(
            refs,
            found,
            top=_raw_ref(data["targetRef"]) if "targetRef" in data else None,
            to=_raw_refs(data.get("to")),
            from_=_raw_refs(data.get("from")),
            has_rules=bool(data.get("rules")),
        )
        known = {p for p, _ in check.problems}
        for p, m in found.problems:
            if p and p not in known:  # "at least one of" is already covered by the field errors
                check.add(p, m)
        check.done()
        raise  # pragma: no cover - done() raised, field errors are never empty
    check_policy(spec, refs, check)
    check.done()
    return spec


def section_field(alias: str = "from") -> Any:
    """``from`` is a Python keyword: the field is ``from_`` with alias ``from``."""
    return Field(default=None, alias=alias)
