"""Shell completion: ``atoll completion bash|zsh|fish`` prints the script, completing commands, options,
resource types and resource names.

The scripts are click's own: the shell calls ``atoll`` again with ``_ATOLL_COMPLETE`` set, and click
answers from the command tree without running any command. Two callbacks feed it what click cannot
know: ``complete_type`` (the resource types, plural and singular, from the type registry) and
``complete_name`` (the names of the resources of the type already typed, in the mesh given with ``-m``
or ``default``, asked of the control plane the command line names with ``--cp``, else the usual
``ATOLL_CP`` / context / default). The hidden command ``atoll complete-names TYPE [-m MESH]`` prints
the same names, one per line, for scripts of other shells. Completion never prints errors: an
unreachable CP just completes nothing.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

from atoll.cli.common import State
from atoll.cli.render import cli_name, lookup_type
from atoll.resources.types import all_types

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ATOLL_COMPLETE"
DEFAULT_MESH = "default"


def type_words() -> list[str]:
    """Every word that names a resource type: plurals and singulars, lower case, sorted."""
    return sorted({w for rt in all_types() for w in (rt.plural, cli_name(rt))})


def complete_type(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(w) for w in type_words() if w.startswith(incomplete.lower())]


def resource_names(cp: str | None, type_name: str, mesh: str | None) -> list[str]:
    """The names of ``type_name`` resources (in ``mesh`` for mesh-scoped types) at the CP; [] on any error."""
    try:
        rt = lookup_type(type_name)
        with State(cp=cp).client() as client:
            docs = client.list(rt, (mesh or DEFAULT_MESH) if rt.mesh_scoped else None)
    except Exception:  # completion must never fail loudly
        return []
    return sorted(str(d.get("name")) for d in docs if d.get("name"))


def complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    type_name = ctx.params.get("type_name")
    if not isinstance(type_name, str):
        return []
    cp = ctx.find_root().params.get("cp_address")
    names = resource_names(cp if isinstance(cp, str) else None, type_name, ctx.params.get("mesh"))
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@click.command(
    epilog="""\b
Examples:
  source <(atoll completion bash)                      # this shell; add it to ~/.bashrc to keep it
  atoll completion zsh > "${fpath[1]}/_atoll"          # zsh: a file on $fpath, then restart the shell
  atoll completion fish > ~/.config/fish/completions/atoll.fish""",
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish."""
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(ctx.find_root().command, {}, "atoll", COMPLETE_VAR).source())


@click.command(
    name="complete-names",
    hidden=True,
    epilog="""\b
Example:
  atoll complete-names dataplanes -m default""",
)
@click.argument("type_name", metavar="TYPE")
@click.option("-m", "--mesh", default=None)
@click.pass_context
def complete_names(ctx: click.Context, type_name: str, mesh: str | None) -> None:
    """Print the names of the resources of TYPE, one per line (used by shell completion)."""
    cp = ctx.find_root().params.get("cp_address")
    for name in resource_names(cp if isinstance(cp, str) else None, type_name, mesh):
        click.echo(name)
