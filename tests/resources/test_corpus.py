"""The Kuma docs compatibility corpus (``../shared/compat/kuma-docs``): accepted files decode and read
back unchanged, ``invalid/`` files are refused naming the offending field, ``later/`` files are
refused as unsupported unless their type has since been implemented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.errors import InvalidInput
from atoll.resources import decode, decode_all, dump_yaml, encode

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/compat/kuma-docs"

if not CORPUS.is_dir():  # pragma: no cover - the repo always sits beside shared/
    pytest.skip(reason=f"compatibility corpus not found at {CORPUS}", allow_module_level=True)


def _files(sub: str = "") -> list[Path]:
    return sorted((CORPUS / sub).glob("*.yaml"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


VALID = _files()
INVALID = _files("invalid")
LATER = _files("later")


def test_corpus_is_complete() -> None:
    # README: 87 top-level files (plus 4 more added since), 16 invalid, 88 later.
    assert len(VALID) >= 87
    assert len(INVALID) == 16
    assert len(LATER) == 88


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_file_is_accepted_and_reads_back_unchanged(path: Path) -> None:
    text = path.read_text()
    resources = decode_all(text)
    assert len(resources) == 1
    r = resources[0]
    parsed: dict[str, Any] = yaml.safe_load(text)  # comments stripped
    # Same meaning, and nothing added: no defaults are filled in on the way out.
    assert encode(r, with_times=False) == parsed
    # Round trip through values and through YAML text is stable.
    assert decode(encode(r)) == r
    again = decode_all(dump_yaml(r))
    assert again == [r]
    assert encode(again[0]) == encode(r)


# file -> the path of the field the error must name (exactly as written in the YAML).
INVALID_EXPECTED: dict[str, list[str]] = {
    "006-mesh.yaml": ["routing.zoneEgress"],
    "021-mesh.yaml": ["mtls.backends[0].config"],
    "022-mesh.yaml": ["spec"],
    "035-dataplane.yaml": ["networking"],
    "037-dataplane.yaml": ["networking", "metrics.conf.aggregate[2].port"],
    "038-dataplane.yaml": ["inbound"],
    "041-zone.yaml": ["spec"],
    "049-virtualoutbound.yaml": ["spec", "selectors", "conf"],
    "050-virtualoutbound.yaml": ["conf.parameters"],
    "097-meshaccesslog.yaml": ["spec.default"],
    "103-meshtrafficpermission.yaml": ["spec.targetRef.tags.customTag"],
    "114-meshretry.yaml": ["spec.targetRef.tags"],
    "119-meshcircuitbreaker.yaml": [
        "spec.rules[0].default.outlierDetection.detectors.successRate.standardDeviationFactor"
    ],
    "131-meshfaultinjection.yaml": ["spec.from[0].targetRef.name"],
    "141-meshhttproute.yaml": ["spec.to[0].rules[0].matches"],
    "142-meshhttproute.yaml": ["spec.to[0].rules[0].matches", "spec.to[0].rules[0].path"],
}


def test_every_invalid_file_has_an_expectation() -> None:
    assert sorted(INVALID_EXPECTED) == _ids(INVALID)


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_file_is_rejected_naming_the_field(path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_all(path.read_text())
    paths = [e.path for e in info.value.errors]
    for expected in INVALID_EXPECTED[path.name]:
        assert expected in paths, f"{path.name}: no error names {expected!r}; got {info.value}"
    assert all(e.message for e in info.value.errors)
    # one error per problem: no path/message pair twice
    pairs = [(e.path, e.message) for e in info.value.errors]
    assert len(pairs) == len(set(pairs))


SPECIFIC_MESSAGES = {
    "103-meshtrafficpermission.yaml": "must be a string",
    "114-meshretry.yaml": "must not be set with kind Dataplane",
    "119-meshcircuitbreaker.yaml": "must be quoted",
    "131-meshfaultinjection.yaml": "name with kind Mesh",
    "050-virtualoutbound.yaml": "kuma.io/service",
    "006-mesh.yaml": "mTLS",
    "022-mesh.yaml": "unknown field",
}


@pytest.mark.parametrize("name", sorted(SPECIFIC_MESSAGES))
def test_invalid_file_message_says_what_is_wrong(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_all((CORPUS / "invalid" / name).read_text())
    assert SPECIFIC_MESSAGES[name] in str(info.value)


# Types first listed in later/ that Atoll implements now (004-mesh.yaml stays: its "provided" CA is not).
IMPLEMENTED_LATER_TYPES = {"GlobalSecret"}


def _implemented(path: Path) -> bool:
    doc = yaml.safe_load(path.read_text())
    return isinstance(doc, dict) and doc.get("type") in IMPLEMENTED_LATER_TYPES


LATER_IMPLEMENTED = [p for p in LATER if _implemented(p)]
LATER_UNSUPPORTED = [p for p in LATER if not _implemented(p)]


def test_implemented_later_types_are_known() -> None:
    assert "058-globalsecret.yaml" in _ids(LATER_IMPLEMENTED)


@pytest.mark.parametrize("path", LATER_IMPLEMENTED, ids=_ids(LATER_IMPLEMENTED))
def test_later_file_of_an_implemented_type_is_accepted(path: Path) -> None:
    text = path.read_text()
    [r] = decode_all(text)
    assert encode(r, with_times=False) == yaml.safe_load(text)


@pytest.mark.parametrize("path", LATER_UNSUPPORTED, ids=_ids(LATER_UNSUPPORTED))
def test_later_file_is_rejected_as_unsupported(path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_all(path.read_text())
    assert "unsupported type" in str(info.value)
