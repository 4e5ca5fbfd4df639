"""Options of how episodes are drawn, shared by `fewshot train`, `eval` and `compare`."""

from __future__ import annotations

from typing import Annotated

import typer

WithinGroup = Annotated[
    bool,
    typer.Option(
        "--within-group",
        help="Draw each episode's classes from one group: Omniglot one alphabet (Lake et al.'s "
        "within-alphabet episodes), an image folder one parent folder (root/<group>/<class>/).",
    ),
]
SkipSmallGroups = Annotated[
    bool,
    typer.Option(
        "--skip-small-groups", help="With --within-group: leave out groups with fewer classes than --ways."
    ),
]
VariableEpisodes = Annotated[
    bool,
    typer.Option(
        "--variable-episodes",
        help="Variable-way, variable-shot episodes (simplified Meta-Dataset): each draws its ways "
        "from min(5, --ways) to --ways and one shot count from 1 to --shots.",
    ),
]
Rotations = Annotated[
    bool | None,
    typer.Option(
        "--rotations/--no-rotations",
        help="Omniglot: rotations by 90/180/270 degrees as extra classes (default: yes on the "
        "vinyals and random splits, no on lake).",
        show_default=False,
    ),
]
