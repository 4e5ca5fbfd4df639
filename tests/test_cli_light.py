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


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_help_page_shows_flags_without_a_type_and_arguments_in_capitals():
    import typer.main
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    names = list(_commands(typer.main.get_command(app)))
    assert len(names) >= 12
    for name in names:
        result = CliRunner().invoke(app, [*name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        assert "<bool>" not in result.output, name
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage, (name, usage)
    label = CliRunner().invoke(app, ["label", "--help"], env={"COLUMNS": "200"}).output
    assert "Usage: fewshot label [OPTIONS] IMAGES..." in label
