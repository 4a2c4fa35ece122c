"""tools/bench_agent.py's tasks, run as the benchmark runs them (real MCP client sessions on a
sandbox CRM, answers checked against the sandbox's own data): every task right in both modes."""

from __future__ import annotations

from types import ModuleType

import anyio
import pytest
from bench_support import load_tool


def bench() -> ModuleType:
    return load_tool("bench_agent")


def test_the_tasks_cover_what_the_issue_asks() -> None:
    names = [t.name for t in bench().TASKS]
    assert len(names) >= 12 and len(set(names)) == len(names)
    for needed in ("30-day history", "total across pages", "custom object", "ambiguous name", "leads by status",
                   "users by role", "pipeline stages", "log a call", "move a deal", "delete a note"):
        assert needed in names


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["all", "discover"])
def test_every_task_is_right(mode: str) -> None:
    module = bench()

    async def go() -> list[object]:
        with module.SandboxServer(db=":memory:") as sandbox:
            return await module.run_mode(sandbox, mode)

    outcomes = anyio.run(go)
    wrong = [f"{o.task.name}: {o.detail}" for o in outcomes if not o.right]
    assert len(outcomes) == len(module.TASKS) and wrong == []
