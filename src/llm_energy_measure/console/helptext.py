"""Rendering the Typer app's top-level help at a fixed width (for the fast --help path)."""

from __future__ import annotations

HELP_WIDTH = 80


def render_top_level_help() -> str:
    """The help text `llm-energy-measure --help` prints, rendered at HELP_WIDTH columns."""
    import typer.main

    from llm_energy_measure.cli import app

    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="llm-energy-measure", terminal_width=HELP_WIDTH,
                        max_content_width=HELP_WIDTH)
    return command.get_help(ctx) + "\n"
