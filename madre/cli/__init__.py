"""The `madre` command line: `main` is the click group (the console script's entry point)."""

from madre.cli.main import main

__all__ = ["main"]
