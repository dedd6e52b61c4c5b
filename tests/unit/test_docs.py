"""README is a short front door, and README.md and docs/*.md agree with the code: every
relative link resolves (to a heading, where it names one), and every option and subcommand
they name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The module whose pytest_addoption registers the options ("refusal_checks.plugin.hooks"
# once the plugin is a package of its own).
PLUGIN = "refusal_checks.plugin.hooks"
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`]+`")
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
PLUGIN_OPTION = re.compile(r"--refusal-[a-z0-9]+(?:-[a-z0-9]+)*|--model\b")
# The program's own --cache-dir DIR may stand before the subcommand.
SUBCOMMAND = re.compile(
    r"python -m refusal_checks(?:[ \t]+--cache-dir[ \t]+[^\s`]+)?[ \t]+([^\s`]+)([^\n`#|&;]*)")
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _code(text: str) -> list[str]:
    """Fenced blocks and inline code spans, in order of appearance."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    return blocks + CODE_SPAN.findall(FENCE.sub("", text))


def _prose(text: str) -> str:
    """The text without fenced blocks or code spans (a `# comment` in a block is no heading,
    a `[x](y)` in a span is no link)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but '-' and '_'
    dropped, spaces to '-'; a repeated heading gets -1, -2, ..."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        unique, k = slug, 0
        while unique in found:
            k += 1
            unique = f"{slug}-{k}"
        found.add(unique)
    return found


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file (or heading) does not exist."""
    text = page.read_text()
    shown = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
    broken = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{shown}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{shown}: {target} (no heading #{anchor} in {linked.name})")
    return broken


def cli_parser(source: str) -> tuple[dict[str, set[str]], set[str]]:
    """Subcommands of ``python -m refusal_checks`` with their options, and the options of
    the top-level parser, read from ``__main__.py``'s argparse calls (nothing imported)."""
    commands: dict[str, set[str]] = {}
    owner: dict[str, str] = {}  # variable -> subcommand
    top: set[str] = set()
    parsers: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(func, ast.Attribute) and func.attr == "ArgumentParser":
                parsers.update(names)
            elif isinstance(func, ast.Attribute) and func.attr == "add_parser":
                owner.update(dict.fromkeys(names, _first_string(node.value)))
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr == "add_parser":
            commands.setdefault(_first_string(node), set())
        elif node.func.attr == "add_argument" and isinstance(node.func.value, ast.Name):
            flags = {a.value for a in node.args
                     if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
            var = node.func.value.id
            if var in owner:
                commands.setdefault(owner[var], set()).update(flags)
            elif var in parsers:
                top |= flags
    return commands, top


def _first_string(call: ast.Call) -> str:
    first = call.args[0]
    assert isinstance(first, ast.Constant) and isinstance(first.value, str), ast.dump(call)
    return first.value


def unknown_names(text: str, options: set[str], commands: dict[str, set[str]],
                  top: set[str]) -> list[str]:
    """Plugin options (``--refusal-*``, ``--model``) that ``options`` does not hold,
    anywhere in ``text``; and in code, ``python -m refusal_checks`` subcommands that do not
    exist and options a subcommand does not take (``claims`` passes its on to pytest)."""
    unknown = [f"option {name}" for name in PLUGIN_OPTION.findall(text) if name not in options]
    for code in _code(text):
        for command, rest in SUBCOMMAND.findall(code):
            if command not in commands:
                unknown.append(f"subcommand {command!r}")
            elif command != "claims":
                unknown += [f"option {flag} of {command}" for flag in OPTION.findall(rest)
                            if flag not in commands[command] | top | {"-h", "--help"}]
    return unknown


@pytest.fixture
def registered(pytester: pytest.Pytester) -> set[str]:
    """The plugin's options, as ``pytest --help`` lists them (pytest's own parser)."""
    shown = pytester.runpytest("-p", "no:refusal_checks", "-p", PLUGIN, "-p",
                               "no:cacheprovider", "--help").stdout.str()
    found = set(re.findall(r"^\s+(--refusal-[a-z-]+|--model)\b", shown, re.M))
    assert {"--model", "--refusal-judge", "--refusal-json"} <= found
    return found


@pytest.fixture
def cli() -> tuple[dict[str, set[str]], set[str]]:
    commands, top = cli_parser((REPO / "refusal_checks" / "__main__.py").read_text())
    assert {"claims", "label", "train-sae", "models"} <= set(commands)
    assert {"--model", "--force"} <= commands["train-sae"] and "--cache-dir" in top
    return commands, top


def test_readme_is_a_short_front_door() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES


def test_every_relative_link_resolves() -> None:
    assert [b for page in pages() for b in broken_links(page)] == []


def test_every_option_and_subcommand_named_exists(
        registered: set[str], cli: tuple[dict[str, set[str]], set[str]]) -> None:
    found = {str(page.relative_to(REPO)): unknown_names(page.read_text(), registered, *cli)
             for page in pages()}
    assert {name: names for name, names in found.items() if names} == {}


def test_the_link_checker_finds_planted_bad_links(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Title\n\n## The `cost` profile: where it went\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md) [ok](b.md#the-cost-profile-where-it-went) [ok](#local)\n"
                    "[web](https://example.org/x.md) `[span](missing.md)`\n"
                    "[gone](missing.md) [bad anchor](b.md#no-such-heading)\n\n"
                    "## Local\n\n```\n[block](missing.md)\n# not a heading\n```\n"
                    "[code comment is no heading](#not-a-heading)\n")
    assert broken_links(page) == [
        "a.md: missing.md (no such file)",
        "a.md: b.md#no-such-heading (no heading #no-such-heading in b.md)",
        "a.md: #not-a-heading (no heading #not-a-heading in a.md)",
    ]


def test_the_command_checker_finds_a_planted_unknown_option_and_subcommand() -> None:
    commands = {"claims": set(), "label": {"--seed", "-n"}, "models": set()}
    text = ("`pytest claims/ --model x --refusal-json r.json`, `--refusal-nonsense`\n"
            "```\npytest claims/ --refusal-jsn r.json\n"
            "python -m refusal_checks label l.jsonl -n 4 --seed 1 --cache-dir d  # --x\n"
            "python -m refusal_checks label l.jsonl --bogus\n"
            "python -m refusal_checks claims -k distinct --model m\n"
            "python -m refusal_checks frobnicate\n```\n")
    assert unknown_names(text, {"--model", "--refusal-json"}, commands, {"--cache-dir"}) == [
        "option --refusal-nonsense", "option --refusal-jsn", "option --bogus of label",
        "subcommand 'frobnicate'",
    ]


def test_the_cli_reader_finds_subcommands_and_their_options() -> None:
    source = ("import argparse\nparser = argparse.ArgumentParser()\n"
              "parser.add_argument('--cache-dir')\nsub = parser.add_subparsers()\n"
              "sub.add_parser('models')\nrun = sub.add_parser('run', help='x')\n"
              "run.add_argument('--fast', '-f')\nrun.add_argument('path')\n")
    assert cli_parser(source) == ({"models": set(), "run": {"--fast", "-f"}}, {"--cache-dir"})
