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
                    " with it unless told otherwise.",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.catalog import table

    rows = [{**row, "settings": as_flags(row["settings"])} for row in table()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    columns = ["alias", "model", "family", "local", "settings", "note"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return EXIT_OK
