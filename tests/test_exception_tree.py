"""The tree drawn in ``atoll.errors`` is the real one: every exception class under ``atoll``, each
where it lives, each under its base class, and nothing drawn that does not exist."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

import atoll
import atoll.errors

_LINE = re.compile(r"^    (?P<branch>(?:[│ ]   )*(?:[├└]── )?)(?P<name>[\w.]+)(?:\s{2,}(?P<module>[\w.]+)\s{2,}\S)?")


@dataclass(frozen=True)
class Drawn:
    name: str
    module: str | None  # None: a class from outside atoll (builtins, click), drawn as a base only
    parent: str | None  # "name module" of the line it hangs from


def _drawn() -> list[Drawn]:
    doc = atoll.errors.__doc__ or ""
    lines = doc.split("\n    Exception\n", 1)[1].split("\n\n", 1)[0].splitlines()
    stack: list[str] = ["Exception"]  # the last node seen at each depth
    out = []
    for line in lines:
        m = _LINE.match(line)
        assert m is not None, f"a tree line that does not parse: {line!r}"
        depth = len(m["branch"]) // 4
        key = f"{m['name']} {m['module']}" if m["module"] else m["name"]
        del stack[depth:]
        out.append(Drawn(m["name"], m["module"], stack[-1]))
        stack.append(key)
    return out


def _defined() -> dict[str, type[BaseException]]:
    """Every exception class defined in an ``atoll`` module, by ``"Name module"`` (module without ``atoll.``)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(atoll.__path__, "atoll."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{obj.__qualname__} {obj.__module__.removeprefix('atoll.')}"] = obj
    return found


def _key(cls: type) -> str:
    if cls.__module__.startswith("atoll."):
        return f"{cls.__qualname__} {cls.__module__.removeprefix('atoll.')}"
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"  # click.UsageError


def test_every_exception_class_is_drawn_once_where_it_lives() -> None:
    drawn = [f"{d.name} {d.module}" for d in _drawn() if d.module is not None]
    assert len(drawn) == len(set(drawn)), "a class drawn twice"
    assert sorted(drawn) == sorted(_defined()), "update the tree in atoll/errors.py"


def test_every_class_hangs_from_its_first_base() -> None:
    defined = _defined()
    for d in _drawn():
        if d.module is None:
            continue
        cls = defined[f"{d.name} {d.module}"]
        assert d.parent == _key(cls.__bases__[0]), f"{d.name} ({d.module}) is drawn under {d.parent}"


def test_the_drawing_reads_the_module_it_documents() -> None:
    """The parser finds the classes of ``atoll.errors`` itself (so the checks above cannot pass on nothing)."""
    own = {d.name for d in _drawn() if d.module == "errors"}
    assert {"AtollError", "InvalidInput", "NotFound", "Forbidden", "CertificateError", "InvalidToken"} <= own
