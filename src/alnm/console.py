"""Terminal output shared by the CLI commands (kept free of heavy imports)."""

from __future__ import annotations

import sys

import typer


def fail(message: str) -> None:
    """Print an error in red on stderr and exit with code 2 (bad input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def table_console(width: int = 160):
    """A rich console on stdout that does not wrap tables at 80 columns when output is redirected."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else width)
