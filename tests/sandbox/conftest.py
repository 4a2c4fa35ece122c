"""Collection of the sandbox's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The contract fuzz is slow through and through (its module is marked slow), but collecting it
    loads the whole contract into schemathesis: ~2 s on every worker of every fast run."""
    if collection_path.name == "test_contract_fuzz.py" and config.getoption("markexpr") == "not slow":
        return True
    return None
