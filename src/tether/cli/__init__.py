"""The `tether` command: a thin layer over the rooms, one module per command group (see app.py)."""

from tether.cli.app import app, main

__all__ = ["app", "main"]
