"""Batch manifests: JSONL, CSV or YAML/JSON files whose rows are edits in the spec schema, plus the source
and the output name of each. Relative paths resolve against the manifest's folder.

A manifest that cannot be read, or whose outputs collide with each other or with an input, is invalid as
a whole (`InputError`); a row that breaks the schema is a failed row (`Row.error`) and the others go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, short
from ..files import read_text
from ..output import FORMATS
from ..spec import EDIT_KEYS, EditSpec, check_settings, parse_edit, read_document, resolve_path

MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a million rows of paths
ROW_KEYS = ("source", "output")  # beside the edit-spec keys
CSV_EXEMPLAR = ("exemplar", "exemplar_map", "exemplar_box", "exemplar_fit")  # one exemplar in flat columns


@dataclass
class Row:
    """One edit of a batch: its number (from 1), where its result goes, and the edit, or why it is invalid."""

    number: int
    output: str  # path relative to the output folder
    source: str | None = None
    edit: EditSpec | None = None
    error: str | None = None  # the row breaks the schema: it fails, the others go on

    def request(self, seed: int) -> dict[str, Any]:
        """The row as `Editor.edit` keyword arguments."""
        assert self.edit is not None
        return {"source": self.source, "exemplars": self.edit.exemplars, "strength_map": self.edit.strength_map,
                **{k: v for k, v in self.edit.settings.items() if k != "seed"}, "seed": seed}

    def inputs(self) -> list[str]:
        """Every input file of a valid row: its source and the files its edit names."""
        assert self.edit is not None
        return [p for p in (self.source, *self.edit.paths()) if p]


def load_manifest(path: str | Path) -> list[Row]:
    """Read a manifest (`.jsonl`, `.csv`, or `.yaml`/`.yml`/`.json` holding a list of rows or
    `{defaults: {...}, rows: [...]}`)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    defaults: dict[str, Any] = {}
    if suffix == ".jsonl":
        documents = _jsonl(read_text(path, "manifest", MAX_MANIFEST_BYTES), path.name)
    elif suffix == ".csv":
        text = read_text(path, "manifest", MAX_MANIFEST_BYTES)
        documents = [_csv_row(row) for row in csv.DictReader(io.StringIO(text))]
    elif suffix in (".yaml", ".yml", ".json"):
        documents, defaults = _document(path)
    else:
        raise InputError(f"{path.name}: expected a .jsonl, .csv, .yaml or .json file", param="manifest")
    if not documents:
        raise InputError(f"{path.name} lists no rows", param="manifest")
    rows = [_row(number, document, defaults, path.parent) for number, document in enumerate(documents, 1)]
    _check_outputs(rows, path.name)
    return rows


def load_rows(path: str | Path, defaults: dict[str, Any] | None = None) -> list[Row]:
    """The manifest's rows, with `defaults` (the model's recommended settings) for whatever a row does not set."""
    rows = load_manifest(path)
    for row in rows:
        if row.edit is not None and defaults:
            row.edit.settings = {**defaults, **row.edit.settings}
    return rows


def _jsonl(text: str, name: str) -> list:
    """One JSON document per non-blank line."""
    documents = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                documents.append(json.loads(line))
            except ValueError as error:
                raise InputError(f"line {line_number} is not JSON ({short(str(error), 120)})",
                                 param=f"manifest {name}") from None
    return documents


def _document(path: Path) -> tuple[list, dict]:
    """A YAML or JSON manifest: its rows and its defaults."""
    data = read_document(path, "manifest", MAX_MANIFEST_BYTES)
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"defaults", "rows"}, key=str)
        if unknown:
            raise InputError(f"unknown key {short(unknown[0])}; allowed: defaults, rows", param=path.name)
        defaults, data = data.get("defaults") or {}, data.get("rows")
        if not isinstance(defaults, dict):
            raise InputError(f"expected a mapping, got {short(defaults)}", param=f"{path.name}.defaults")
    if not isinstance(data, list):
        raise InputError(f"expected a list of rows (or a mapping with 'rows'), got {type(data).__name__}",
                         param=path.name)
    return data, defaults


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row in the spec schema: empty cells are absent, numbers and booleans typed by the schema, one
    exemplar in flat columns (or several as JSON in an `exemplars` column)."""
    kinds = {key: kind for key, (_, kind) in EDIT_KEYS.items()}
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value.strip() == "":
            continue
        value = value.strip()
        if key in CSV_EXEMPLAR:
            continue
        if key == "exemplars" or key == "crop" and value.startswith("["):
            out[key] = _json_cell(key, value)
        else:
            out[key] = _typed(value, kinds.get(key, "string"))
    if row.get("exemplar"):
        exemplar: dict[str, Any] = {"image": row["exemplar"].strip()}
        if row.get("exemplar_map"):
            exemplar["map"] = row["exemplar_map"].strip()
        if row.get("exemplar_box"):
            exemplar["box"] = _json_cell("exemplar_box", "[" + row["exemplar_box"].strip().strip("[]") + "]")
        if row.get("exemplar_fit"):
            exemplar["fit"] = row["exemplar_fit"].strip()
        out.setdefault("exemplars", []).append(exemplar)
    return out


def _json_cell(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value  # the schema check names the key and value


def _typed(value: str, kind: str) -> Any:
    """A cell as the first of the schema's types it reads as, else as written (the schema check names the key)."""
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(value.lower(), value)
    for name, cast in (("integer", int), ("number", float)):
        if name in kind:
            try:
                return cast(value)
            except ValueError:
                continue
    return value


def _row(number: int, document: Any, defaults: dict, base: Path) -> Row:
    where = f"row {number}"
    default_output = f"{number:05d}.png"
    if not isinstance(document, dict):
        return Row(number, default_output, error=f"expected a mapping, got {short(document)}")
    document = {**defaults, **document}
    output = document.get("output", None)
    if output is None:
        stem = Path(str(document.get("source", ""))).stem or "result"
        output = f"{number:05d}-{stem}.png"
    try:
        output = _output_name(where, output)
        if document.get("source") is None:
            raise InputError("missing: every row names its source photo", param=f"{where}.source")
        source = resolve_path(f"{where}.source", document["source"], base)
        edit = parse_edit(document, where, base, extra_keys=ROW_KEYS)
        check_settings(edit.settings)
    except InputError as error:
        return Row(number, output if isinstance(output, str) else default_output, error=_in_row(error, where))
    return Row(number, output, source, edit)


def _in_row(error: InputError, where: str) -> str:
    """The error text naming the row's key (`steps: ...`), the row being said beside it."""
    if error.param is None:
        return error.message
    param = error.param.removeprefix(where).lstrip(".")
    key = next((key for key, (argument, _) in EDIT_KEYS.items() if argument == param), param)
    return f"{key}: {error.message}" if key else error.message


def _output_name(where: str, value: Any) -> str:
    """An output path relative to the output folder, of a format pixels writes, that stays inside it."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a file name, got {short(value)}", param=f"{where}.output")
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in FORMATS:
        raise InputError(f"expected a relative name inside the output folder ending in {', '.join(FORMATS)}, got"
                         f" {short(value)}", param=f"{where}.output")
    return path.as_posix()


def _check_outputs(rows: list[Row], name: str) -> None:
    """Two rows writing one file would make 'done exactly once' meaningless: the manifest is refused."""
    seen: dict[str, int] = {}
    for row in rows:
        key = row.output.lower()
        if key in seen:
            raise InputError(f"rows {seen[key]} and {row.number} both write {row.output!r}; give each row its own"
                             " output", param=f"manifest {name}")
        seen[key] = row.number


def row_hash(row: Row, model: str) -> str:
    """What a row's result depends on: the row as resolved (paths, boxes, settings), the model, and the
    contents of its input files. A result whose embedded hash differs is stale and is made again."""
    assert row.edit is not None
    edit = row.edit
    document = {
        "model": model, "source": row.source, "map": edit.strength_map,
        "exemplars": [asdict(e) for e in edit.exemplars],  # every field: image, map, box, fit, condition...
        "settings": edit.settings, "files": {path: _file_digest(path) for path in row.inputs()},
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"  # the edit itself reports why
    return digest.hexdigest()


def row_seed(row: Row, settings_hash: str) -> int:
    """The row's seed, or one derived from what it depends on: a rerun reproduces it."""
    assert row.edit is not None
    seed = row.edit.settings.get("seed")
    return int(settings_hash[:8], 16) if seed is None else seed


__all__ = ["Row", "load_manifest", "load_rows", "row_hash", "row_seed"]
