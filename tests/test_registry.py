"""The registry: lazy entries, unknown names listed, duplicate names refused."""

from __future__ import annotations

import pytest

from fewshot.errors import FewshotError
from fewshot.registry import Registry


def test_lazy_entry_resolves_on_first_use_and_unknown_names_list_the_choices():
    reg = Registry("thing")
    reg.register("ordered", "collections:OrderedDict")
    assert reg.names() == ["ordered"] and "ordered" in reg
    from collections import OrderedDict

    assert reg.get("ordered") is OrderedDict
    with pytest.raises(FewshotError, match="unknown thing 'nope'; choose one of: ordered"):
        reg.get("nope")


def test_a_name_cannot_be_registered_twice():
    reg = Registry("thing")
    reg.register("a", dict)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        reg.register("a", list)

    with pytest.raises(ValueError, match="already registered"):

        @reg.register("a")
        def other():  # pragma: no cover - never registered
            return None

    assert reg.get("a") is dict


def test_every_public_name_of_the_package_resolves():
    import subprocess
    import sys

    code = (
        "import sys, fewshot\n"
        "assert 'torch' not in sys.modules, 'import fewshot loaded torch'\n"
        "missing = [n for n in fewshot.__all__ if getattr(fewshot, n, None) is None]\n"
        "assert not missing, missing\n"
        "print(len(fewshot.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 25
