"""`fewshot --help` stays instant: the CLI imports no heavy library until a command runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torchvision", "faiss", "open_clip", "sklearn", "matplotlib")

SCRIPT = """
import sys
import fewshot_cli.app as cli
try:
    cli.app(["--help"], standalone_mode=False)
    cli.app(["data", "--help"], standalone_mode=False)
except SystemExit:
    pass
print("LOADED", ",".join(m for m in {heavy} if m in sys.modules))
"""


def test_cli_import_and_help_load_no_heavy_library():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "LOADED"
