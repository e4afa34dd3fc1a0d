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
import os
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, short
from ..files import read_text
from ..inputs.spec import (
    EDIT_KEYS,
    MAX_DEPTH,
    EditSpec,
    check_settings,
    check_size,
    parse_edit,
    read_document,
    resolve_path,
    spec_param,
)
from ..outputs.writers import FORMATS

MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a million rows of paths
MAX_ROWS = 1_000_000
MAX_OUTPUT_CHARS, MAX_OUTPUT_DEPTH = 1024, 16  # an output name inside the output folder
NAME_STEM = 200  # characters of a source's name kept in a default output name
RESERVED_PREFIX = ".pixels-"  # pixels' own names in a folder: temporary files, a batch job's marker and lock
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
    `{defaults: {...}, rows: [...]}`). Relative paths in it resolve against its folder, made absolute: the
    rows are the same however the manifest's own path is written."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    suffix = path.suffix.lower()
    defaults: dict[str, Any] = {}
    if suffix == ".jsonl":
        documents = _jsonl(read_text(path, "manifest", MAX_MANIFEST_BYTES), path.name)
    elif suffix == ".csv":
        documents = _csv(read_text(path, "manifest", MAX_MANIFEST_BYTES), path.name)
    elif suffix in (".yaml", ".yml", ".json"):
        documents, defaults = _document(path)
    else:
        raise InputError(f"{path.name}: expected a .jsonl, .csv, .yaml or .json file", param="manifest")
    if not documents:
        raise InputError(f"{path.name} lists no rows", param="manifest")
    if len(documents) > MAX_ROWS:
        raise InputError(f"{path.name} lists {len(documents):,} rows, more than the limit of {MAX_ROWS:,}; split"
                         " it into several jobs", param="manifest")
    documents = [{**defaults, **d} if isinstance(d, dict) else d for d in documents]
    names = _default_outputs(documents)
    rows = [_row(number, document, names[number - 1], path.parent) for number, document in enumerate(documents, 1)]
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
    """One JSON document per non-blank line, each within the size and nesting limits of a spec."""
    documents = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            where = f"manifest {name}, line {line_number}"
            try:
                document = json.loads(line)
            except RecursionError:
                raise InputError(f"nested more than {MAX_DEPTH} levels deep; this is not a row", param=where) from None
            except ValueError as error:
                raise InputError(f"not JSON ({short(str(error), 120)})", param=where) from None
            check_size(document, where)
            documents.append(document)
    return documents


def _csv(text: str, name: str) -> list:
    """A CSV manifest's rows in the spec schema; a cell longer than the csv module's limit is refused."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        return [_csv_row(row) for row in reader]
    except csv.Error as error:
        message = f"a cell is longer than {csv.field_size_limit():,} characters" if "field larger" in str(error) \
            else str(error)
        raise InputError(message, param=f"manifest {name}, line {reader.line_num + 1}") from None


def _document(path: Path) -> tuple[list, dict]:
    """A YAML or JSON manifest: its rows and its defaults."""
    data = read_document(path, "manifest", MAX_MANIFEST_BYTES)
    defaults: dict[str, Any] = {}
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
    exemplar in flat columns (or several as JSON in an `exemplars` column), prompt images as JSON."""
    kinds = {key: kind for key, (_, kind) in EDIT_KEYS.items()}
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value.strip() == "":
            continue
        value = value.strip()
        if key in CSV_EXEMPLAR:
            continue
        if key in ("exemplars", "prompt_images", "regions") or key == "crop" and value.startswith("["):
            out[key] = _json_cell(key, value)
        elif key == "map" and value.startswith("{"):
            out[key] = _selection_cell(key, value)
        else:
            out[key] = _typed(value, kinds.get(key, "string"))
    if row.get("exemplar"):
        exemplar: dict[str, Any] = {"image": row["exemplar"].strip()}
        if row.get("exemplar_map"):
            cell = row["exemplar_map"].strip()
            exemplar["map"] = _selection_cell("exemplar_map", cell) if cell.startswith("{") else cell
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


def _selection_cell(key: str, value: str) -> Any:
    """A map cell written as a selection (`{text: the sofa, grow: 4}`, YAML or JSON): its mapping, which the spec
    check reads as a `pixels.select.Select` (and whose errors it names in the row's message)."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # read as a file name: the row fails naming it, the others go on


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


def _default_outputs(documents: list) -> list[str]:
    """The output name of each row: its own `output`, or `<source name>.png` (`-2`, `-3`... for the second
    and later rows of one name), so that inserting or removing a row renames no other row's output."""
    taken = {d["output"].lower() for d in documents if isinstance(d, dict) and isinstance(d.get("output"), str)}
    names, counts = [], {}
    for document in documents:
        given = document.get("output") if isinstance(document, dict) else None
        if given is not None:
            names.append(given)
            continue
        source = document.get("source") if isinstance(document, dict) else None
        stem = (Path(source).stem if isinstance(source, str) else "")[:NAME_STEM] or "row"
        while True:
            counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
            count = counts[stem.lower()]
            name = f"{stem}.png" if count == 1 else f"{stem}-{count}.png"
            if name.lower() not in taken:
                break
        taken.add(name.lower())
        names.append(name)
    return names


def _row(number: int, document: Any, output: Any, base: Path) -> Row:
    where = f"row {number}"
    if not isinstance(document, dict):
        return Row(number, output if isinstance(output, str) else f"row-{number}.png",
                   error=f"expected a mapping, got {short(document)}")
    try:
        output = _output_name(where, output)
        if document.get("source") is None:
            raise InputError("missing: every row names its source photo", param=f"{where}.source")
        source = resolve_path(f"{where}.source", document["source"], base)
        edit = parse_edit(document, where, base, extra_keys=ROW_KEYS)
        check_settings(edit.settings)
    except InputError as error:
        return Row(number, output if isinstance(output, str) else f"row-{number}.png", error=in_row(error, where))
    return Row(number, output, source, edit)


def in_row(error: InputError, where: str = "") -> str:
    """The error text naming the row's key (`steps: ...`, `map: ...`), the row being said beside it."""
    if error.param is None:
        return error.message
    param = error.param.removeprefix(where).lstrip(".") if where else error.param
    return f"{spec_param(param)}: {error.message}" if param else error.message


def _output_name(where: str, value: Any) -> str:
    """An output path relative to the output folder, of a format pixels writes, that stays inside it, within
    the limits of a path, and not named like pixels' own files there (which a run may remove)."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a file name, got {short(value)}", param=f"{where}.output")
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in FORMATS:
        raise InputError(f"expected a relative name inside the output folder ending in {', '.join(FORMATS)}, got"
                         f" {short(value)}", param=f"{where}.output")
    if len(value) > MAX_OUTPUT_CHARS or len(path.parts) > MAX_OUTPUT_DEPTH:
        raise InputError(f"{short(value, 60)} is {len(value):,} characters in {len(path.parts):,} parts; the limit is"
                         f" {MAX_OUTPUT_CHARS} characters in {MAX_OUTPUT_DEPTH} parts", param=f"{where}.output")
    if any(len(os.fsencode(part)) > 255 for part in path.parts):
        raise InputError(f"a part of {short(value, 60)} is longer than 255 bytes", param=f"{where}.output")
    if any(part.startswith(RESERVED_PREFIX) for part in path.parts):
        raise InputError(f"{short(value)}: names starting with {RESERVED_PREFIX!r} are pixels' own (temporary"
                         " files, the job's marker and lock); choose another name", param=f"{where}.output")
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


def row_hash(row: Row, engine: dict[str, Any], digests: dict[str, str] | None = None) -> str:
    """What a row's result depends on: the row's values (boxes, settings, exemplar fields), the contents of
    its input files in place of their paths, and `engine` (the model, the precision, the device kind, the
    threads, pixels' version: see `batch.engine.identity`). How a path is written does not count: the same
    files under other names give the same hash. A result whose embedded hash differs is made again.
    digests: a cache of file digests shared by the rows of a job."""
    assert row.edit is not None
    digests = {} if digests is None else digests
    inputs = set(row.inputs())
    for path in inputs - set(digests):
        digests[path] = _file_digest(path)

    def contents(value: Any) -> Any:
        if isinstance(value, str):
            return f"sha256:{digests[value]}" if value in inputs else value
        if is_dataclass(value) and not isinstance(value, type):
            return contents(asdict(value))
        if isinstance(value, dict):
            return {str(k): contents(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [contents(v) for v in value]
        return value

    edit = row.edit
    document = {"engine": engine, "source": contents(row.source), "map": contents(edit.strength_map),
                "exemplars": contents(edit.exemplars), "settings": contents(edit.settings)}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"unreadable {path}"  # the edit itself reports why
    return digest.hexdigest()


def row_seed(row: Row, settings_hash: str) -> int:
    """The row's seed, or one derived from what it depends on: a rerun reproduces it."""
    assert row.edit is not None
    seed = row.edit.settings.get("seed")
    return int(settings_hash[:8], 16) if seed is None else seed


__all__ = ["Row", "in_row", "load_manifest", "load_rows", "row_hash", "row_seed"]
