"""Module attributes imported on first use (PEP 562), for packages whose parts start-up need not load."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import import_module
from typing import Any


def load_attribute(owner: str, name: str, module_of: Mapping[str, str], package: str) -> Any:
    """`name` of the module `owner` (from its `__getattr__`): imported from `package.<module_of[name]>`
    and kept on `owner`, so that the next use finds it without asking again."""
    module = module_of.get(name)
    if module is None:
        raise AttributeError(f"module {owner!r} has no attribute {name!r}")
    value = getattr(import_module(f"{package}.{module}"), name)
    setattr(sys.modules[owner], name, value)
    return value
