"""`fewshot models`: the model cards of every registered encoder and shipped model."""

from __future__ import annotations

from typing import Annotated

import typer
from fewshot_cli.common import Command

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON list of cards instead of a table.")]


def models_command(as_json: AsJson = False) -> None:
    """List every encoder and shipped model: source, training data, licence, parameters,
    input size and preprocessing (what you may ship, and how images are prepared)."""
    from fewshot.workflows.models import model_cards

    cards = model_cards()
    if as_json:
        import json

        typer.echo(json.dumps(cards))
        return
    for card in cards:
        typer.echo(_card_text(card))


def _card_text(card: dict) -> str:
    lines = [f"{card['name']} ({card['kind']}): {card.get('summary', '')}"]
    for key in ("source", "training_data", "licence", "parameters", "input_size", "preprocessing"):
        if card.get(key) not in (None, ""):
            value = card[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
            lines.append(f"  {key.replace('_', ' ')}: {value}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("models", cls=Command)(models_command)
