"""Parameter sweeps split between the inner loop and the slow tests: the sample `fast` picks runs in
every fast run, the rest of the sweep only with the slow tests (CI runs both)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


def split_sweep(values: Iterable[Any], *, fast: Callable[[Any], bool], ids: Callable[[Any], str]) -> list[Any]:
    """`values` as pytest params, those `fast` does not pick marked slow. A value that is a tuple is
    spread over the test's parameters."""
    return [
        pytest.param(*(v if isinstance(v, tuple) else (v,)), id=ids(v), marks=() if fast(v) else pytest.mark.slow)
        for v in values
    ]
