"""Console-script entry point.

``llm-energy-measure --help`` (and a bare call) is answered from a pre-rendered copy of the
Typer app's help so that it starts as fast as the interpreter; a test keeps that copy equal
to what the app renders. Everything else goes to the Typer app in cli.py.
"""

from __future__ import annotations

import sys

_HELP_ARGS: tuple[list[str], ...] = ([], ["--help"], ["-h"])


def main() -> None:
    """Run the CLI."""
    if sys.argv[1:] in _HELP_ARGS:
        from llm_energy_measure.console.prerendered_help import TOP_LEVEL_HELP

        sys.stdout.write(TOP_LEVEL_HELP)
        return
    from llm_energy_measure.cli import main as cli_main

    cli_main()


if __name__ == "__main__":  # python -m llm_energy_measure.entrypoint
    main()
