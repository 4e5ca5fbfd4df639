"""Lazy package attributes (PEP 562): names resolve to their module's object on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    package: str, table: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package`, importing ``table[name]`` when `name` is used."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's required name
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        module = importlib.import_module(package)
        return sorted({*vars(module), *table})

    return __getattr__, __dir__
