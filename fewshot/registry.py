"""A small name -> factory registry, in the spirit of timm's model registry.

Entries may be registered as objects (with the `register` decorator) or lazily as an
import path string ``"package.module:attribute"``, so that listing names (for the command
line's choices) never imports torch, open_clip or faiss.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from fewshot.errors import FewshotError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind of thing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, target: Callable[..., T] | str | None = None):
        """Register `target` under `name`; without a target, return a decorator.

        Raises:
            ValueError: `name` is already taken (a second entry would silently replace the first).
        """
        if target is not None:
            self._add(name, target)
            return target

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, target: Callable[..., T] | str) -> None:
        existing = self._entries.get(name)
        if existing is not None and existing != target and existing != _path_of(target):
            raise ValueError(f"{self.kind} {name!r} is already registered ({existing!r})")
        if not isinstance(existing, str) or not isinstance(target, str):
            self._entries[name] = target  # an object replaces the lazy path that named it

    def discover(self, package: str, decorator: str) -> None:
        """Register lazily every class decorated ``@<decorator>("name")`` in the modules of
        ``package``, found by reading their source, so that listing names imports nothing and
        a new entry is one new module. Importing the module later runs the decorator, which
        then replaces the lazy path with the class."""
        spec = importlib.util.find_spec(package)
        pattern = re.compile(rf'^@{re.escape(decorator)}\("([^"]+)"\)\s*\nclass (\w+)', re.MULTILINE)
        for folder in spec.submodule_search_locations or []:
            for path in sorted(Path(folder).glob("*.py")):
                for name, cls in pattern.findall(path.read_text(encoding="utf-8")):
                    self._add(name, f"{package}.{path.stem}:{cls}")

    def names(self) -> list[str]:
        """All registered names, sorted; imports nothing."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under `name`, importing it on first use."""
        if name not in self._entries:
            raise FewshotError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = entry
        return entry

    def name_of(self, target: Any) -> str:
        """The name ``target`` (a registered class or factory) is registered under."""
        path = _path_of(target)
        for name, entry in self._entries.items():
            if entry is target or entry == path:
                return name
        raise FewshotError(f"{target!r} is not a registered {self.kind}")

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the thing registered under `name` with keyword arguments."""
        return self.get(name)(**kwargs)


def _path_of(obj: Any) -> str | None:
    """``module:Class`` of an object (what a lazy entry spells), or None for a string."""
    if isinstance(obj, str):
        return None
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
