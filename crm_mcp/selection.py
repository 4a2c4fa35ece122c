"""Which tools a server offers, decided once at start-up: `--read-only`, `--resources`, `--tools`,
`--workflows/--no-workflows`.

tools/list must not change during a connection, so the selection is applied when the server is
built and never again. A tool the selection leaves out is still *known*: calling it anyway gets a
tool result with `isError: true` that says why it is off and how to turn it on (a restart with
other flags), rather than a JSON-RPC "unknown tool" error that the model cannot act on. Only names
that are no tool of this server at all stay JSON-RPC errors.

Rules, in order:

1. The catalogue: the 50 operation tools, plus the workflow tools unless workflows are off.
2. `--resources a,b` and `--tools x,y` (either or both) narrow it to the operation tools of those
   resources, the workflow tools whose every resource is among them, and the tools named. Without
   either, the whole catalogue.
3. `--read-only` then removes every tool that writes (create, update, delete, and workflow tools
   that are not read-only, such as `log_interaction`).

Unknown resource or tool names, and contradictions (`--tools create_contact --read-only`,
`--tools search_crm --no-workflows`), are start-up errors (`SelectionError`) that list the valid
names, so that a typo in a client's config fails loudly instead of serving a surprising tool list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crm_mcp.tools import WORKFLOWS, Tool

# Whether the workflow tools (search_crm, get_account_overview, log_interaction) are offered when
# no flag says: on, as they answer whole questions in one call; --no-workflows leaves them out.
WORKFLOWS_DEFAULT = True

# --tool-mode: "all" lists every offered tool; "discover" lists find_tools, describe_tool and
# call_tool, through which the same offered tools are found, described and run.
TOOL_MODES = ("all", "discover")


# What a read-only server says when a write is asked for: why not, and what the agent can do.
READ_ONLY_OPTIONS = (
    "You can ask the user to enable writes (restart the server without --read-only), or offer to draft "
    "the change (the record, the fields and their new values) for the user to apply."
)


class SelectionError(ValueError):
    """A tool selection that cannot be served; the message names the flag and the valid values."""


@dataclass(frozen=True)
class Selection:
    """The start-up flags that choose the tools. The default offers everything, workflow tools
    included, with writes enabled."""

    read_only: bool = False
    resources: tuple[str, ...] | None = None  # None: every resource
    tools: tuple[str, ...] | None = None  # None: no tools named one by one
    workflows: bool = WORKFLOWS_DEFAULT
    tool_mode: str = "all"  # "discover": tools/list offers only the meta-tools (crm_mcp.discovery)


@dataclass(frozen=True)
class ToolSet:
    """What a server built from a selection offers, what it withholds, and its mode line."""

    offered: tuple[Tool, ...]
    withheld: dict[str, str] = field(default_factory=dict)  # tool name -> the isError text of a call
    mode: str = "Mode: read-write."
    tool_mode: str = "all"


def parse_names(text: str | None, flag: str) -> tuple[str, ...] | None:
    """`"contacts, notes"` -> ("contacts", "notes"); None stays None; an empty list is an error."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise SelectionError(f"{flag} needs at least one name (comma-separated), got {text!r}.")
    return names


def resource_names() -> tuple[str, ...]:
    from crm_mcp.operations import RESOURCES

    return tuple(r.name for r in RESOURCES)


def catalogue(selection: Selection) -> tuple[Tool, ...]:
    """Every tool this server could offer: the registry, without the workflow tools when off."""
    from crm_mcp.tools import registry

    return tuple(t for t in registry() if selection.workflows or t.toolset != WORKFLOWS)


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names)


def select_tools(selection: Selection | None = None, tools: Sequence[Tool] | None = None) -> ToolSet:
    """Apply `selection` to `tools` (default: the catalogue). Raises SelectionError."""
    selection = selection or Selection()
    if selection.tool_mode not in TOOL_MODES:
        raise SelectionError(f"--tool-mode: unknown mode {selection.tool_mode!r}. Valid modes: {_listing(TOOL_MODES)}.")
    pool = tuple(tools) if tools is not None else catalogue(selection)
    if tools is None:
        from crm_mcp.tools import by_name

        known = by_name()
    else:
        known = {t.name: t for t in pool}

    if selection.resources is not None:
        valid = resource_names()
        unknown = [r for r in selection.resources if r not in valid]
        if unknown:
            raise SelectionError(
                f"--resources: unknown resource {_listing(repr(u) for u in unknown)}. "
                f"Valid resources: {_listing(valid)}."
            )
    if selection.tools is not None:
        unknown = [t for t in selection.tools if t not in known]
        if unknown:
            raise SelectionError(
                f"--tools: unknown tool {_listing(repr(u) for u in unknown)}. "
                f"Valid tools: {_listing(known)} (`crm-mcp tools` lists them)."
            )
        pool_names = {t.name for t in pool}
        off = [t for t in selection.tools if t not in pool_names]
        if off:
            raise SelectionError(
                f"--tools names workflow tool {_listing(off)} but workflows are off; "
                "add --workflows or leave it out of --tools."
            )
        if selection.read_only:
            writes = [t for t in selection.tools if known[t].writes]
            if writes:
                raise SelectionError(
                    f"--tools names {_listing(writes)}, which write{'s' if len(writes) == 1 else ''}, "
                    "but --read-only is on; leave out one or the other."
                )

    chosen = pool
    if selection.resources is not None or selection.tools is not None:
        wanted_resources = set(selection.resources or ())
        named = set(selection.tools or ())
        chosen = tuple(
            t for t in pool
            if t.name in named or (wanted_resources and (t.resources or {""}) <= wanted_resources)
        )
    if selection.read_only:
        chosen = tuple(t for t in chosen if not t.writes)
    if not chosen:
        raise SelectionError(
            "This selection leaves no tools: --read-only with --resources/--tools naming only write "
            "tools. Name a readable resource or tool."
        )

    offered_names = {t.name for t in chosen}
    withheld: dict[str, str] = {}
    for name, tool in known.items():
        if name in offered_names:
            continue
        if selection.read_only and tool.writes:
            withheld[name] = (f"{name} is not available: this server runs read-only (--read-only), so nothing "
                              f"was changed. {READ_ONLY_OPTIONS}")
        elif tool.toolset == WORKFLOWS and not selection.workflows:
            withheld[name] = (
                f"{name} is not available: workflow tools are off on this server (--no-workflows). "
                "Restart it with --workflows to use them."
            )
        else:
            withheld[name] = (
                f"{name} is not enabled on this server: it was started with "
                f"{_flags_text(selection)}. Use the tools listed in tools/list, or restart the server "
                f"with {name} in --tools (or its resource in --resources)."
            )
    return ToolSet(chosen, withheld, mode_line(selection), selection.tool_mode)


def _flags_text(selection: Selection) -> str:
    parts = []
    if selection.resources is not None:
        parts.append("--resources " + ",".join(selection.resources))
    if selection.tools is not None:
        parts.append("--tools " + ",".join(selection.tools))
    return " and ".join(parts) or "a narrower tool selection"


def mode_line(selection: Selection) -> str:
    """The sentence the server's instructions carry about the mode in force."""
    if selection.read_only:
        line = f"Mode: read-only: no tool creates, updates or deletes. {READ_ONLY_OPTIONS}"
    else:
        line = "Mode: read-write."
    if selection.resources is not None:
        line += f" Only these resources: {', '.join(selection.resources)}."
    if selection.tools is not None:
        line += f" Tools chosen: {', '.join(selection.tools)}."
    if selection.tool_mode == "discover":
        line += " Find tools with find_tools, their arguments with describe_tool; run them with call_tool."
    return line
