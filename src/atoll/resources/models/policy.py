"""The skeleton every ``Mesh*`` policy shares, so a policy module declares only its own parts.

A policy spec has a top ``targetRef`` and some of the sections ``to[]``, ``from[]`` and ``rules[]``.
The section items are generic in the ``default`` conf model: ``PolicyItem[Conf]`` is a ``to[]`` or
``from[]`` entry (``targetRef`` + ``default``), ``PolicyRule[Conf]`` a ``rules[]`` entry
(``default``); an item with other fields (the route ``to[]{targetRef, rules}``) extends
``TargetItem``. The spec bases fix which sections exist (every other key is an unknown field):
``ToPolicySpec[To]`` (``to`` only), ``InboundPolicySpec[From, Rule]`` (``from``, ``rules``) and
``FullPolicySpec[To, From, Rule]`` (all three; ``ConfPolicySpec[Conf]`` when every entry takes the
same ``Conf``). Their wrap validator runs ``validate_policy`` with the ``RefRules`` the concrete
class sets as ``refs`` (the targetRef kinds it allows where), so a policy module writes::

    class MeshHealthCheckSpec(ToPolicySpec[PolicyItem[Conf]]):
        refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, gateway_tags=True)

and registers it with ``register_policy`` (which also records ``refs`` in ``POLICY_REFS``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import ModelWrapValidatorHandler, model_validator

from atoll.resources.base import Spec
from atoll.resources.models.targetref import POLICY_REFS, RefRules, TargetRef, section_field, validate_policy
from atoll.resources.types import ResourceType, Scope, register

ConfT = TypeVar("ConfT", bound=Spec)
ToT = TypeVar("ToT", bound=Spec)
FromT = TypeVar("FromT", bound=Spec)
RuleT = TypeVar("RuleT", bound=Spec)


class TargetItem(Spec):
    """A section entry that applies to what its ``targetRef`` names."""

    target_ref: TargetRef


class PolicyItem(TargetItem, Generic[ConfT]):
    """A ``to[]`` or ``from[]`` entry: ``targetRef`` and the ``default`` conf for it."""

    default: ConfT


class PolicyRule(Spec, Generic[ConfT]):
    """A ``rules[]`` entry: the ``default`` conf for inbound traffic."""

    default: ConfT


class PolicySpec(Spec):
    """The top ``targetRef`` and the policy-level check; ``refs`` is set by each concrete policy."""

    refs: ClassVar[RefRules]

    target_ref: TargetRef | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _check_policy(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        return validate_policy(data, handler, cls.refs)


class ToPolicySpec(PolicySpec, Generic[ToT]):
    """A policy on outbound traffic only: ``to[]``."""

    to: list[ToT] | None = None


class InboundPolicySpec(PolicySpec, Generic[FromT, RuleT]):
    """A policy on inbound traffic only: ``from[]`` and ``rules[]``."""

    from_: list[FromT] | None = section_field()
    rules: list[RuleT] | None = None


class FullPolicySpec(ToPolicySpec[ToT], Generic[ToT, FromT, RuleT]):
    """A policy with all three sections: ``to[]``, ``from[]`` and ``rules[]``."""

    from_: list[FromT] | None = section_field()
    rules: list[RuleT] | None = None


class ConfPolicySpec(FullPolicySpec[PolicyItem[ConfT], PolicyItem[ConfT], PolicyRule[ConfT]], Generic[ConfT]):
    """A policy with all three sections whose entries all take the same ``default`` conf model."""


def register_policy(name: str, plural: str, spec_model: type[PolicySpec]) -> ResourceType:
    """Register the ``Mesh*`` policy type ``name`` (mesh scope, fields under ``spec:``)."""
    POLICY_REFS[name] = spec_model.refs
    return register(
        ResourceType(name=name, spec_model=spec_model, scope=Scope.MESH, flattened=False, plural=plural, policy=True)
    )
