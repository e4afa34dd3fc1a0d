"""MkDocs hooks: the reference pages, generated from the code when the site is built.

A marker line in a page is replaced:

- `<!-- cli-reference -->`: the help of `pixels` and of every subcommand, from the command line's parser;
- `<!-- settings-reference -->`: a table of every setting, from the `EditSettings` declaration;
- `<!-- include: PATH -->`: the file at PATH, relative to the repository root.

Each import of pixels' internals sits in one small function below, so that a module that moves is one import
line to change here. `tests/test_docs.py` runs `render` too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- cli-reference -->"
SETTINGS_MARKER = "<!-- settings-reference -->"
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
HELP_WIDTH = "100"  # columns of the generated help, whatever the terminal that builds the site
ANSI = re.compile(r"\x1b\[[0-9;]*m")

if importlib.util.find_spec("pixels") is None:  # a checkout that is not installed
    sys.path.insert(0, str(ROOT / "src"))


# -- the internals the pages are generated from: one import each ------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    from pixels.cli import build_parser

    return build_parser()


def _settings() -> tuple[list[tuple[Any, Any]], Any]:
    """(field, Option) for every EditSettings field, and the seed's Option."""
    from pixels.core.settings import SEED, options

    return list(options()), SEED


def _flag_of(name: str, option: Any) -> str:
    from pixels.cli.common import flag_of

    return flag_of(name, option)


def _spec_key_of(name: str, option: Any) -> str:
    from pixels.core.settings import spec_key_of

    return spec_key_of(name, option)


# -- the command-line reference ----------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _help(parser: argparse.ArgumentParser) -> str:
    saved = {name: os.environ.get(name) for name in ("COLUMNS", "NO_COLOR", "PYTHON_COLORS")}
    os.environ.update(COLUMNS=HELP_WIDTH, NO_COLOR="1", PYTHON_COLORS="0")
    try:
        return ANSI.sub("", parser.format_help()).rstrip()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli_reference() -> str:
    parser = _build_parser()
    parts = ["## pixels", "", "```text", _help(parser), "```", ""]

    def add(prefix: str, parser: argparse.ArgumentParser) -> None:
        for name, summary, sub in _subcommands(parser):
            command = f"{prefix} {name}"
            parts.extend([f"## {command}", ""])
            if summary:
                parts.extend([summary[:1].upper() + summary[1:] + ".", ""])
            parts.extend(["```text", _help(sub), "```", ""])
            add(command, sub)

    add("pixels", parser)
    return "\n".join(parts)


# -- the settings reference --------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{value!r}`"


def settings_reference() -> str:
    options, seed = _settings()
    rows = ["| spec key / Python name | flag | type | default | help |", "| --- | --- | --- | --- | --- |"]

    def row(name: str, option: Any, default: str) -> None:
        key = _spec_key_of(name, option)
        names = f"`{key}`" if key == name else f"`{key}` / `{name}`"
        kind = option.kind
        if option.choices:
            kind += ": " + ", ".join(f"`{choice}`" for choice in option.choices)
        rows.append(f"| {names} | `{_flag_of(name, option)}` | {_cell(kind)} | {default} | {_cell(option.help)} |")

    for field, option in options:
        row(field.name, option, _code(field.default))
    row("seed", seed, "`None` (random)")
    return "\n".join(rows) + "\n"


# -- includes and the hook ---------------------------------------------------------------------------------
def _include(match: re.Match) -> str:
    path = (ROOT / match.group(1)).resolve()
    if ROOT not in path.parents or not path.is_file():
        raise ValueError(f"include: {match.group(1)} is not a file of the repository")
    return path.read_text(encoding="utf-8").rstrip() + "\n"


def render(markdown: str) -> str:
    """The page with its markers replaced by what they stand for."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_reference())
    return INCLUDE.sub(_include, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)
