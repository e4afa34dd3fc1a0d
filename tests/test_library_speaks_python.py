"""The library's messages name Python parameters and arguments; only the command line speaks in flags, translating
them through one table (`pixels.cli.common`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import photo
from conftest import run_cli as run

import pixels
from pixels.cli.common import PARAMETER_FLAGS, as_flag, in_flags
from pixels.errors import InputError
from pixels.outputs.writers import check_output

PACKAGE = Path(pixels.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def front_end(path: Path) -> bool:
    """The command line's own modules: `pixels.cli` and `python -m pixels.app`."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] == "cli" or parts == ("app", "__main__.py")


def library_modules() -> list[Path]:
    found = [p for p in sorted(PACKAGE.rglob("*.py")) if not front_end(p)]
    assert len(found) > 40  # the whole library, not an empty walk
    return found


def strings(tree: ast.AST) -> list[ast.Constant]:
    """Every string constant of a module but its docstrings (the parts of f-strings included)."""
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]


def test_no_library_string_names_a_command_line_flag():
    found = [f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value[:80]!r}"
             for path in library_modules() for node in strings(ast.parse(path.read_text()))
             if FLAG.search(node.value)]
    assert found == []


def test_the_scan_sees_flags_where_there_are_some():
    tree = ast.parse('"""Docstrings may say --overwrite."""\nx = f"{a!r} exists; pass --overwrite"\n')
    assert [node.value for node in strings(tree) if FLAG.search(node.value)] == [" exists; pass --overwrite"]


@pytest.mark.parametrize("python, command_line", [
    ("'x.png' exists; pass overwrite=True to replace it", "'x.png' exists; pass --overwrite to replace it"),
    ("try crop='auto' (about 2.0 GiB); MemoryOptions(vae_tiling=True)", "try --crop auto (about 2.0 GiB); --vae-tiling"),
    ("MemoryOptions(cpu_offload='model')", "--cpu-offload model"),
    ("(or Limits(check_memory=False) to try anyway)", "(or --no-memory-check to try anyway)"),
    ("use dtype='fp32' (or 'bf16')", "use --dtype fp32 (or 'bf16')"),
    ("load one with Editor.load_controlnet() to use a control", "load one with --controlnet to use a control"),
    ("pass allow_unsafe_pickle=True if you trust it", "pass --allow-unsafe-pickle if you trust it"),
    ("num_inference_steps=4", "--steps 4"),
    # what no flag sets stays as it is
    ("Exemplar(box=(1, 2, 3, 4)); fit='cover'; unknown=True", "Exemplar(box=(1, 2, 3, 4)); fit='cover'; unknown=True"),
    ("Limits(max_pixels=5, unknown=1)", "Limits(max_pixels=5, unknown=1)"),
])
def test_library_arguments_read_as_flags_on_the_command_line(python, command_line):
    assert in_flags(python) == command_line


def test_an_error_names_the_parameter_in_python_and_the_flag_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "out.png"
    photo(16, 16).save(out)
    with pytest.raises(InputError) as raised:
        check_output(out, overwrite=False)
    assert str(raised.value).endswith("exists; pass overwrite=True to replace it")  # Python: the argument
    error = InputError("must lie in (0, 1], got 2", param="strength")
    assert as_flag(error) == "--strength: must lie in (0, 1], got 2" and PARAMETER_FLAGS["strength_map"] == "--map"
    photo(32, 32).save(tmp_path / "photo.png")
    code, _, err = run(["edit", tmp_path / "photo.png", "--model", "demo", "-o", out], capsys)
    assert code == 2 and "exists; pass --overwrite to replace it" in err and "overwrite=True" not in err
