"""The documentation's examples work: every fenced code block of README.md and docs/ is run, read or marked.

The convention (docs/contributing.md, "Examples are tested"): each page's blocks run in order in a fresh
folder holding the example files (`photo.png`, `photo.jpg`, `moon.png`, `cutout.png`); `python` blocks run in
one namespace per page, `bash` blocks are `pixels` commands run through `pixels.cli.main`, `yaml`/`json`/`csv`
blocks are files (`<!-- file: NAME -->`) read by the spec or manifest reader, `text` blocks are shown only.
`<!-- needs weights -->` above a fence: compiled or parsed, not run; `<!-- not run: REASON -->`: not run.
Also: relative links point to files and headings that exist, the README's install line is what CI runs, and
the reference pages are generated.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
INDENTED_FENCE = re.compile(r"^\s+(`{3,}|~{3,})")
MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
LANGUAGES = {"python", "bash", "yaml", "json", "csv", "text"}
DATA = {"yaml", "json", "csv"}
MARKERS = {"needs weights", "not run", "file"}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language != "text" and not {"needs weights", "not run"} & set(self.markers)


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            assert not INDENTED_FENCE.match(lines[i]), f"{page.relative_to(ROOT)}:{i + 1}: fences start a line"
            i += 1
            continue
        fence, language = match.groups()
        markers, above = {}, i - 1
        while above >= 0 and (comment := MARKER.match(lines[above].strip())):
            key, _, value = comment.group(1).partition(":")
            markers[key.strip()] = value.strip()
            above -= 1
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        assert end < len(lines), f"{page.relative_to(ROOT)}:{i + 1}: the fence is never closed"
        found.append(Block(page, i + 1, language, "\n".join(lines[i + 1:end]), markers))
        i = end + 1
    return found


def commands(text: str) -> list[list[str]]:
    """The command lines of a shell block, `\\` continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
RUN_PAGES = [page for page in PAGES if any(block.page == page and block.runs for block in ALL_BLOCKS)]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# -- what the examples find in their folder ---------------------------------------------------------------
def _demo_photo(name: str) -> Image.Image:
    from pixels.demo import asset  # the bundled photos

    return asset(name)


def prepare(folder: Path) -> None:
    rocket, moon = _demo_photo("rocket.png"), _demo_photo("moon.png")
    rocket.save(folder / "photo.png")
    rocket.save(folder / "photo.jpg", quality=95)
    moon.save(folder / "moon.png")
    yy, xx = np.mgrid[: moon.height, : moon.width]
    disc = np.hypot(xx - (moon.width - 1) / 2, yy - (moon.height - 1) / 2) <= moon.width * 0.45
    cutout = moon.convert("RGBA")
    cutout.putalpha(Image.fromarray(np.where(disc, 255, 0).astype(np.uint8)))
    cutout.save(folder / "cutout.png")


# -- checking one block -------------------------------------------------------------------------------------
def _check_markers(block: Block) -> None:
    unknown = set(block.markers) - MARKERS
    assert not unknown, f"{block.where}: unknown marker {sorted(unknown)}; markers: {sorted(MARKERS)}"
    assert block.language in LANGUAGES, f"{block.where}: fence language {block.language!r}; use one of {LANGUAGES}"
    if "not run" in block.markers:
        assert block.markers["not run"], f"{block.where}: `not run` says why: <!-- not run: REASON -->"
    if "needs weights" in block.markers:
        assert block.language in ("python", "bash"), f"{block.where}: only python and bash blocks need weights"
    if block.language in DATA and "not run" not in block.markers:
        assert block.markers.get("file"), f"{block.where}: a {block.language} block names its file: <!-- file: NAME -->"
    elif "file" in block.markers:
        assert block.language in DATA, f"{block.where}: only yaml, json and csv blocks are files"


def _run_python(block: Block, namespace: dict) -> None:
    code = compile(block.text, block.where, "exec")
    if block.runs:
        exec(code, namespace)


def _run_shell(block: Block, capsys) -> None:
    from pixels.cli import build_parser, main

    for argv in commands(block.text):
        assert argv[0] == "pixels", (f"{block.where}: a bash block runs pixels commands only, not {argv[0]!r};"
                                     " mark it <!-- not run: REASON --> otherwise")
        if block.runs:
            code = main(argv[1:])
            out = capsys.readouterr()
            assert code == 0, f"{block.where}: `{shlex.join(argv)}` exited {code}:\n{out.err}"
        else:  # needs weights: the flags must still be the command line's
            try:
                build_parser().parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{block.where}: `{shlex.join(argv)}` does not parse:\n{capsys.readouterr().err}")


def _read_data(block: Block) -> None:
    from pixels.batch.manifest import load_manifest
    from pixels.inputs.spec import load_spec

    path = Path(block.markers["file"])
    path.write_text(block.text + "\n", encoding="utf-8")
    document = yaml.safe_load(block.text) if path.suffix in (".yaml", ".yml", ".json") else None
    if isinstance(document, dict) and "edits" in document:
        load_spec(path)
    else:
        rows = load_manifest(path)
        assert rows and all(row.error is None for row in rows), \
            f"{block.where}: " + "; ".join(row.error for row in rows if row.error)


def test_every_block_follows_the_convention():
    assert len(ALL_BLOCKS) > 20
    for block in ALL_BLOCKS:
        _check_markers(block)
        if block.language == "python":
            compile(block.text, block.where, "exec")
        if block.language == "bash" and "not run" not in block.markers:
            assert all(argv[0] == "pixels" for argv in commands(block.text)), \
                f"{block.where}: a bash block runs pixels commands only; mark it <!-- not run: REASON --> otherwise"


@pytest.mark.parametrize("page", RUN_PAGES, ids=_id)
def test_examples_run(page, tmp_path, monkeypatch, capsys):
    prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing in the docs that runs downloads anything
    namespace = {"__name__": "__docs__"}
    for block in blocks(page):
        _check_markers(block)
        if block.language == "text" or "not run" in block.markers:
            continue
        if block.language == "python":
            _run_python(block, namespace)
        elif block.language == "bash":
            _run_shell(block, capsys)
        else:
            _read_data(block)


# -- links --------------------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _hooks():
    spec = importlib.util.spec_from_file_location("pixels_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """The page without its code: fenced blocks and inline code spans."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(page: Path, hooks) -> set[str]:
    from markdown.extensions.toc import slugify

    text = page.read_text(encoding="utf-8")
    if page.is_relative_to(ROOT / "docs"):
        text = hooks.render(text)  # the generated headings count too
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    titles = (re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "").replace("*", "")
              for title in HEADING.findall(text))
    return {slugify(title, "-") for title in titles}


def test_relative_links_point_to_files_and_headings_that_exist():
    hooks, broken = _hooks(), []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{_id(page)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file, hooks):
                broken.append(f"{_id(page)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# -- the README, CI and the generated pages -----------------------------------------------------------------
def test_readme_is_short_and_installs_as_ci_does():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12_000
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = [line for block in blocks(ROOT / "README.md") for line in block.text.splitlines()
               if line.startswith("pip install")]
    assert install and all(line in ci.splitlines() for line in install), install
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci.splitlines()
    assert "mkdocs build --strict" in ci


def test_reference_pages_are_generated_from_the_code():
    import argparse

    from pixels.cli import build_parser
    from pixels.cli.common import flag_of
    from pixels.core.settings import options

    hooks = _hooks()
    cli = hooks.render((ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8"))
    assert hooks.CLI_MARKER not in cli
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in subparsers.choices:
        assert f"\n## pixels {name}\n" in cli and f"usage: pixels {name} " in cli
    settings = hooks.render((ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8"))
    assert hooks.SETTINGS_MARKER not in settings
    for f, option in options():
        assert f"`{flag_of(f.name, option)}`" in settings and f"`{f.name}`" in settings
    benchmarks = hooks.render((ROOT / "docs" / "reference" / "benchmarks.md").read_text(encoding="utf-8"))
    assert (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8").strip() in benchmarks
