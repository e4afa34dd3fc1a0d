"""What the architecture promises: the layers import only what they may (the import-linter contracts in
pyproject.toml), every family's adapter is called the same way, and only the adapters know the families by
name."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pixels
from pixels.adapters import ADAPTERS, Adapter

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_imports_only_what_it_may():
    """core and adapters read no input and write no output, models and selections load without them, the library
    knows no front end, and argparse lives in the command line: every contract is checked and kept."""
    ran = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml"),
                          "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "5 kept, 0 broken" in ran.stdout


def test_every_adapter_encodes_prompts_with_one_signature():
    expected = inspect.signature(Adapter.encode_prompt)
    assert list(expected.parameters) == ["self", "prompt", "negative_prompt", "guidance", "image_size",
                                         "prompt_images", "regions", "generator"]
    overriding = [adapter for adapter in ADAPTERS if "encode_prompt" in vars(adapter)]
    assert len(overriding) >= 5  # sd, sdxl, kandinsky, sd3, flux, pixel: not an empty walk
    for adapter in overriding:
        found = inspect.signature(adapter.encode_prompt)
        assert [(p.name, p.kind, p.default) for p in found.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in expected.parameters.values()], adapter.__name__


def family_tests(tree: ast.AST) -> list[int]:
    """Lines comparing a `family` with a family's name (`adapter.family == "sd"`, `family in ("sd", "sdxl")`)."""
    def is_family(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "family") or \
            (isinstance(node, ast.Attribute) and node.attr == "family")

    def is_name(node: ast.AST) -> bool:
        values = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return all(isinstance(v, ast.Constant) and v.value in FAMILIES for v in values)

    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
            and any(is_family(side) for side in [node.left, *node.comparators])
            and any(is_name(side) for side in [node.left, *node.comparators])]


FAMILIES = {adapter.family for adapter in ADAPTERS}


def test_only_the_adapters_know_the_families_by_name():
    package = Path(pixels.__file__).parent
    found = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py"))
             if path.relative_to(package).parts[0] != "adapters" and path.name != "tiny.py"
             for line in family_tests(ast.parse(path.read_text()))]
    assert found == []
    assert family_tests(ast.parse('if adapter.family in ("sd", "sdxl"):\n    pass\nok = family == "pixel"\n')) == [1, 3]
