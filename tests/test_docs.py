"""The documentation describes the tree as it is, and works in a fresh clone.

Checked in ``README.md``, ``docs/*.md`` and ``bench/README.md`` (outside fenced code blocks):

- every relative link resolves to a file (or directory) of this repository that a clone has: tracked,
  or new and not ignored; a ``#anchor`` names a heading of the target page (GitHub's slugs);
- no link or path in code spans leaves the repository by a relative path (``../shared/...``), and no
  link is an absolute file path;
- a code span naming a repository path (``src/atoll/...``, ``tests/...``) names one that exists, and a
  code span naming a dotted ``atoll.`` name names a module, or an attribute of one, that exists;
- every YAML example of a resource (a document with ``type:``) decodes with Atoll's own codec, after
  filling ``{{ placeholders }}`` from the ``--dataplane-var name=value`` the same block shows;
- the import-linter contracts of ``pyproject.toml`` are the ones the docs describe: each contract is
  named in ``docs/contributing.md``, which lists the layers in order, and the layer table of
  ``docs/architecture.md`` numbers every package as ``pyproject.toml`` orders it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import yaml

from atoll.dp.document import render_template
from atoll.resources import decode

REPO = Path(__file__).resolve().parents[1]
REQUIRED_DOCS = ("architecture.md", "resource-model.md", "multizone.md", "contributing.md")

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_REPO_PATH = re.compile(r"^(?:src|tests|bench|docs|scripts)/[\w.\-/]*$")
_DOTTED = re.compile(r"^atoll(?:\.[A-Za-z_]\w*)+$")
_DP_VAR = re.compile(r"--dataplane-var\s+(\w+)=(\S+)")
_RUN_OUTPUT = re.compile(r"^bench/results/\w+-\d{8}T\d{6}Z\.json$")
"""A benchmark run's own output file (git ignores them): named as an example, not as a file of the tree."""


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def split_fences(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """(prose lines with their numbers, fenced blocks as (first line number, info string, body))."""
    prose: list[tuple[int, str]] = []
    blocks: list[tuple[int, str, str]] = []
    fence: tuple[str, int, str, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None:
            if m is not None:
                fence = (m.group(2), number, m.group(3).strip(), [])
            else:
                prose.append((number, line))
        elif m is not None and m.group(2).startswith(fence[0]) and not m.group(3).strip():
            blocks.append((fence[1], fence[2], "\n".join(fence[3])))
            fence = None
        else:
            fence[3].append(line)
    assert fence is None, f"a code block opened on line {fence[1]} is never closed"
    return prose, blocks


def links(prose: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for number, line in prose:
        bare = _CODE_SPAN.sub("", line)
        for m in _LINK.finditer(bare):
            yield number, m.group(1)
        ref = _REF_DEF.match(bare)
        if ref is not None:
            yield number, ref.group(1)


def code_spans(prose: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for number, line in prose:
        for m in _CODE_SPAN.finditer(line):
            yield number, m.group(2).strip()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation removed, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose:
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m is None:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


@cache
def clone_files() -> frozenset[str] | None:
    """Files a clone of the current work would have: tracked, or new and not ignored. None without git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(p for p in out.decode().split("\0") if p)


def in_clone(target: Path) -> bool:
    files = clone_files()
    if files is None:
        return target.exists()
    rel = target.relative_to(REPO).as_posix()
    return rel in files or any(f.startswith(rel + "/") for f in files)


def inside_repo(target: Path) -> bool:
    return target == REPO or REPO in target.parents


def link_problem(doc: Path, target: str) -> str | None:
    """What is wrong with link ``target`` written in ``doc``, or None."""
    if not target:
        return "empty link"
    if _SCHEME.match(target):
        return None  # a URL: not a file of the repository
    if target.startswith("/"):
        return f'"{target}" is an absolute path: link files of the repository by a relative path'
    path_part, _, anchor = target.partition("#")
    dest = (doc.parent / path_part).resolve() if path_part else doc
    if not inside_repo(dest):
        return f'"{target}" points outside the repository, which a clone does not have'
    if not in_clone(dest):
        return f'"{target}" names no file of the repository (or one that git ignores)'
    if anchor:
        if dest.suffix != ".md":
            return f'"{target}": an anchor into a file that is not Markdown'
        if anchor not in anchors(dest):
            return f'"{target}": no heading of {dest.relative_to(REPO)} has the anchor #{anchor}'
    return None


def dotted_problem(name: str) -> str | None:
    """None when ``name`` is a module of Atoll, or an attribute (chain) of one."""
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        module_name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        obj: object = importlib.import_module(module_name)
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return f"`{name}`: {module_name} has no {'.'.join(parts[cut:])}"
            obj = getattr(obj, attr)
        return None
    return f"`{name}` is not a module of Atoll"


@pytest.mark.parametrize("name", REQUIRED_DOCS)
def test_the_docs_a_user_needs_are_in_the_repository(name: str) -> None:
    assert (REPO / "docs" / name).is_file(), f"docs/{name} is missing"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"(docs/{name})" in readme, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("doc", doc_files(), ids=_ids(doc_files()))
def test_every_link_resolves_inside_the_repository(doc: Path) -> None:
    prose, _ = split_fences(doc.read_text(encoding="utf-8"))
    problems = [f"{doc.name}:{n}: {p}" for n, target in links(prose) if (p := link_problem(doc, target))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", doc_files(), ids=_ids(doc_files()))
def test_paths_and_modules_named_in_code_spans_exist(doc: Path) -> None:
    prose, _ = split_fences(doc.read_text(encoding="utf-8"))
    problems: list[str] = []
    for n, span in code_spans(prose):
        if span.startswith(("../", "./")):
            if not inside_repo((doc.parent / span).resolve()):
                problems.append(f"{doc.name}:{n}: `{span}` points outside the repository")
        elif _REPO_PATH.match(span) and not _RUN_OUTPUT.match(span):
            if not in_clone(REPO / span.rstrip("/")):
                problems.append(f"{doc.name}:{n}: `{span}` is not a path of the repository")
        elif _DOTTED.match(span) and (p := dotted_problem(span)):
            problems.append(f"{doc.name}:{n}: {p}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", doc_files(), ids=_ids(doc_files()))
def test_resource_examples_decode(doc: Path) -> None:
    _, blocks = split_fences(doc.read_text(encoding="utf-8"))
    problems: list[str] = []
    for first, info, body in blocks:
        if info.split()[:1] != ["yaml"]:
            continue
        dp_vars = dict(_DP_VAR.findall(body))
        # A VirtualOutbound's own templates ({{.svc}}) are its data, not placeholders of the agent's.
        text = render_template(body, dp_vars) if "{{" in body and dp_vars else body
        for item in yaml.safe_load_all(text):
            if isinstance(item, dict) and "type" in item:
                try:
                    decode(item)
                except Exception as e:
                    problems.append(f"{doc.name}: the example on line {first}: {e}")
    assert not problems, "\n".join(problems)


def import_contracts() -> list[dict[str, object]]:
    with (REPO / "pyproject.toml").open("rb") as f:
        contracts: list[dict[str, object]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return contracts


def layers() -> list[str]:
    found = [c["layers"] for c in import_contracts() if c.get("type") == "layers"]
    assert len(found) == 1, "expected one layers contract in pyproject.toml"
    value = found[0]
    assert isinstance(value, list)
    return [str(layer) for layer in value]


def test_every_import_contract_is_described() -> None:
    text = (REPO / "docs" / "contributing.md").read_text(encoding="utf-8")
    missing = [str(c["name"]) for c in import_contracts() if str(c["name"]) not in text]
    assert not missing, f"docs/contributing.md does not describe these import-linter contracts: {missing}"
    prose, _ = split_fences(text)
    wanted = layers()
    listed = [span for _, span in code_spans(prose) if span in wanted]
    assert listed[: len(wanted)] == wanted, (
        f"docs/contributing.md lists the layers as {listed}, pyproject.toml {wanted}"
    )


def test_the_layer_table_numbers_packages_as_pyproject_orders_them() -> None:
    prose, _ = split_fences((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    table = {
        m.group(2): int(m.group(1)) for _, line in prose if (m := re.match(r"^\| (\d+) \| `(atoll[\w.]*)` \|", line))
    }
    expected = {package.strip(): number for number, layer in enumerate(layers(), 1) for package in layer.split("|")}
    assert table == expected, f"docs/architecture.md numbers the layers {table}, pyproject.toml says {expected}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The link and name checks fail on the mistakes they exist for (so they are not vacuous)."""
    readme = REPO / "README.md"
    assert link_problem(readme, "../shared/spec/multizone-deployment.md") is not None
    assert link_problem(readme, "docs/no-such-page.md") is not None
    assert link_problem(readme, "docs/architecture.md#no-such-heading") is not None
    assert link_problem(readme, "/etc/passwd") is not None
    assert link_problem(readme, "docs/architecture.md#packages-and-layers") is None
    assert link_problem(readme, "https://www.envoyproxy.io/") is None
    assert dotted_problem("atoll.no_such_package") is not None
    assert dotted_problem("atoll.store.protocol.NoSuchThing") is not None
    assert dotted_problem("atoll.store.protocol.Store") is None
    prose, blocks = split_fences("see [x](a.md) `[y](b.md)`\n```\n[z](c.md)\n```\n[w]: d.md\n")
    assert [t for _, t in links(prose)] == ["a.md", "d.md"]
    assert blocks == [(2, "", "[z](c.md)")]
    assert slug("Walk 1: a store change reaches `Envoy`") == "walk-1-a-store-change-reaches-envoy"
