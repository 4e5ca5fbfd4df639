"""The Typer application behind the `fewshot` command.

Commands live one group per module; each module's ``register(app)`` adds its commands.
Modules import nothing heavy at import time, so ``fewshot --help`` stays instant. Any
`FewshotError` raised by a command becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperGroup


class _ErrorsAsExitCodes(TyperGroup):
    def invoke(self, ctx):
        from fewshot.errors import FewshotError

        try:
            return super().invoke(ctx)
        except FewshotError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="fewshot",
    cls=_ErrorsAsExitCodes,
    help="Few-shot and zero-shot learning: ProtoNet, MAML, CLIP zero-shot, embedding search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One command module per line, in the order `fewshot --help` lists them.
COMMAND_MODULES = (
    "train",
    "evaluate",
    "predict",
    "data",
    "label",
    "index",
    "finetune",
    "compare",
    "models",
    "continual",
    "multitask",
    "rank_models",
    "curves",
    "review",
    "representations",
    "adapt",
    "embed",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"fewshot_cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
