"""`fewshot compare --method-option NAME.KEY=VALUE`: one method's hyperparameter, typed from its
constructor (``coop.epochs=20``, ``clip-lora.iterations_per_shot=50``, ``tip-adapter.text=false``).

`parse_method_options` turns the repeated option into ``{method: {key: value}}``; a malformed
item, an unknown method or key, or a value of the wrong type is refused in one line naming the
item. The values are converted by the constructor's type hints (``bool``, ``int``, ``float``,
``str``, ``Literal`` (one of its values), ``X | None`` with ``none``, sequences as comma-separated values).
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

from fewshot.errors import FewshotError

_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def parse_method_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["coop.epochs=20", "coop.lr=0.01"]`` -> ``{"coop": {"epochs": 20, "lr": 0.01}}``."""
    chosen: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, key, text = _split(item)
        hints = constructor_hints(_learner_class(name, item))
        if key not in hints:
            raise FewshotError(
                f"--method-option {item}: {name} has no option {key!r}; its options: {', '.join(hints)}"
            )
        try:
            value = coerce(text, hints[key])
        except ValueError:
            raise FewshotError(
                f"--method-option {item}: {key} takes {_type_name(hints[key])}, got {text!r}"
            ) from None
        chosen.setdefault(name, {})[key] = value
    return chosen


def check_method_options(options: dict[str, dict[str, Any]], methods: list[str]) -> None:
    """Refuse options of a method that is not compared, unknown keys or choices (one line)."""
    from fewshot.build.learners import check_learner_options

    for name, given in options.items():
        if name not in methods:
            raise FewshotError(
                f"--method-option {name}.{next(iter(given), '')}: {name} is not among the compared "
                f"methods ({', '.join(methods)}); add it to --methods"
            )
        try:
            check_learner_options(name, given)
        except FewshotError as err:
            raise FewshotError(f"--method-option for {name}: {err}") from None


def _split(item: str) -> tuple[str, str, str]:
    head, equals, text = item.partition("=")
    name, dot, key = head.strip().rpartition(".")
    if not equals or not dot or not name or not key:
        raise FewshotError(f"--method-option must be NAME.KEY=VALUE (e.g. coop.epochs=20), got {item!r}")
    return name, key.strip(), text.strip()


def _learner_class(name: str, item: str) -> type:
    from fewshot.learners import LEARNERS

    if name not in LEARNERS:
        raise FewshotError(
            f"--method-option {item}: unknown method {name!r}; choose one of: {', '.join(LEARNERS.names())}"
        )
    return LEARNERS.get(name)


def constructor_hints(cls: type) -> dict[str, Any]:
    """Every hyperparameter of a learner class (after the encoder) -> its type hint, the most
    derived constructor's hint winning (``**kwargs`` reach the parents' constructors)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters
        resolved = typing.get_type_hints(klass.__init__)
        variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        for name, param in params.items():
            if name not in ("self", "encoder") and param.kind not in variadic:
                hints[name] = resolved.get(name, str)
    return {name: hints[name] for name in cls.param_names() if name in hints}


def coerce(text: str, hint: Any) -> Any:
    """``text`` as a value of type ``hint``; ValueError when it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(text)
    if hint in (int, float):
        return hint(text)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() == "none":
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(text, arg)
            except ValueError:
                continue
        raise ValueError(text)
    if origin in (list, tuple, collections.abc.Sequence):
        return [coerce(part.strip(), args[0] if args else str) for part in text.split(",") if part.strip()]
    if origin is typing.Literal:
        return _choice(text, args)
    return text  # str and anything else


def _choice(text: str, choices: tuple) -> Any:
    """The one of a ``Literal``'s ``choices`` spelled ``text``; ValueError for none."""
    spelled = [str(c) for c in choices]
    if text not in spelled:
        raise ValueError(text)
    return choices[spelled.index(text)]


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(names + (["none"] if type(None) in typing.get_args(hint) else []))
    if hint in (bool, int, float):
        return {bool: "true or false", int: "a whole number", float: "a number"}[hint]
    if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence):
        return "comma-separated values"
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    return str(hint).replace("typing.", "")
