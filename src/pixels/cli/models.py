"""`pixels models`: the short model names, the hub model behind each, and whether it is cached."""

from __future__ import annotations

import argparse
import json

from .common import EXIT_OK, as_flags


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser(
        "models", parents=[common],
        help="list the short model names and whether each is in the local cache",
        description="Short names accepted by --model, the hub model behind each, whether it is already in"
                    " the local Hugging Face cache (checked without network), and the settings `pixels edit` uses"
                    " with it unless told otherwise; then the selection models of `pixels select` (points: clicks"
                    " and boxes, text: phrases, depth: relative depth).",
    )
    models.add_argument("--json", action="store_true",
                        help="print JSON instead of tables: one list, each row with its tasks (edit, points, text,"
                             " depth)")
    models.set_defaults(run=run)


def _print_table(rows: list[dict[str, str]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def run(args: argparse.Namespace) -> int:
    from ..models.catalog import selection_table, table

    rows = [{**row, "settings": as_flags(row["settings"])} for row in table()]
    selection = selection_table()
    if args.json:
        print(json.dumps([{**row, "tasks": "edit"} for row in rows] + selection, indent=2))
        return EXIT_OK
    _print_table(rows, ["alias", "model", "family", "local", "settings", "note"])
    print("\nselection models (pixels select --model, --depth-model):")
    _print_table(selection, ["alias", "model", "tasks", "local", "note"])
    return EXIT_OK
