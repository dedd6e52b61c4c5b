"""Loading prompt sets: the bundled categories and loaders for user-given prompt files.

Loaders read CoCoNot JSONL, XSTest CSV and our generic JSONL / CSV (columns ``prompt``,
``category``, optional ``side``, ``subgenre``, ``topic``) into a
:class:`~refusal_checks.prompts.sets.PromptCollection`; :func:`bundled` is the collection
we ship. The sets themselves (digests, budgets, splits) are in
:mod:`refusal_checks.prompts.sets`. Stdlib only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from refusal_checks.prompts.sets import SIDES, CategoryPrompts, PromptCollection, PromptSet

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

CATEGORIES: tuple[str, ...] = (
    "safety_core", "over_refusal", "humanizing", "incomplete", "indeterminate",
    "safety_concerns", "unsupported", "hate_speech", "crime_assistance",
    "inappropriate_topics", "unqualified_advice",
)
COCONOT_CATEGORIES: dict[str, str] = {
    "Humanizing requests": "humanizing",
    "Incomplete requests": "incomplete",
    "Indeterminate requests": "indeterminate",
    "Requests with safety concerns": "safety_concerns",
    "Unsupported requests": "unsupported",
}
_GENERIC_FIX = ('Each JSONL line must be one object such as {"prompt": "...", "category": '
                '"humanizing", "side": "refuse"}')
_CSV_FIX = "Give a header row with columns prompt (or text), category and optionally side"


class PromptFileError(ValueError):
    """A prompt file that cannot be used; message names file, line and the fix."""


# A parsed row: (category, side, text, file label, 1-based line, sub-genre, topic).
_Row = tuple[str, str, str, str, int, str, str]
_SUBGENRE_KEYS = ("subgenre", "subcategory", "type")  # ours, CoCoNot's, XSTest's


def _label(record: dict[str, object], keys: Sequence[str]) -> str:
    """The first of ``keys`` that holds a string in ``record`` (stripped), else ""."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _fail(label: str, line: int | None, what: str, fix: str) -> PromptFileError:
    where = f"{label}, line {line}" if line is not None else label
    return PromptFileError(f"{where}: {what}. {fix}.")


def _decode(label: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _fail(label, line, f"bytes are not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    "Re-save the file as UTF-8") from None


def _text(label: str, line: int, value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(label, line, f"field {field!r} must be a string, found {value!r}",
                    f"Put the {field} in double quotes")
    if not value.strip():
        raise _fail(label, line, f"field {field!r} is empty or whitespace only",
                    "Write the prompt or delete the row")
    return value


def _side(label: str, line: int, value: object) -> str:
    if value not in SIDES:
        raise _fail(label, line, f"unknown side {value!r}",
                    f"Use one of: {', '.join(SIDES)} (omit the field for refuse)")
    return str(value)


def _parse_jsonl(label: str, content: str) -> list[_Row]:
    rows: list[_Row] = []
    coconot: bool | None = None
    side_default = "matched" if "contrast" in Path(label).name else "refuse"
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _fail(label, line, f"invalid JSON ({exc.msg} at column {exc.colno})",
                        f"{_GENERIC_FIX}; fix or delete this line") from None
        if not isinstance(obj, dict):
            raise _fail(label, line, f"expected a JSON object, found {type(obj).__name__}",
                        _GENERIC_FIX)
        if coconot is None:  # CoCoNot rows carry a subcategory and never a side
            coconot = "subcategory" in obj and "side" not in obj
        key = "prompt" if "prompt" in obj else "text"
        missing = ([] if key in obj else ["prompt (or text)"]) + (
            [] if "category" in obj else ["category"])
        if missing:
            raise _fail(label, line, f"missing field(s) {', '.join(missing)}; fields found: "
                        f"{', '.join(obj) or 'none'}", _GENERIC_FIX)
        text = _text(label, line, obj[key], key)
        category = _text(label, line, obj["category"], "category")
        if coconot:
            if category not in COCONOT_CATEGORIES:
                raise _fail(label, line, f"unknown CoCoNot category {category!r}",
                            f"Known CoCoNot categories: {', '.join(COCONOT_CATEGORIES)}; "
                            "rename it or write the file in the generic format")
            rows.append((COCONOT_CATEGORIES[category], side_default, text, label, line,
                         _label(obj, _SUBGENRE_KEYS), _label(obj, ["topic"])))
        else:
            rows.append((category, _side(label, line, obj.get("side", "refuse")), text,
                         label, line, _label(obj, _SUBGENRE_KEYS), _label(obj, ["topic"])))
    return rows


def _parse_csv(label: str, content: str) -> list[_Row]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    if "completion" in columns:
        raise _fail(label, 1, f"this looks like a completions file (columns: {', '.join(columns)})"
                    ", not a prompt file", "Pass a prompt file such as xstest_prompts.csv; "
                    "labelled completions are for validating a judge")
    xstest = "label" in columns and "category" not in columns
    key = "prompt" if "prompt" in columns else "text"
    need = [key, "label"] if xstest else [key, "category"]
    if not columns or any(c not in columns for c in need):
        raise _fail(label, 1, f"CSV header has columns [{', '.join(columns)}], expected "
                    f"prompt (or text) and category (or XSTest's prompt and label)", _CSV_FIX)
    rows: list[_Row] = []
    for record in reader:
        line = reader.line_num  # last physical line of the record; exact for one-line rows
        text = _text(label, line, record.get(key) or "", key)
        if xstest:
            verdict = {"unsafe": "refuse", "safe": "matched"}.get((record.get("label") or "").strip())
            if verdict is None:
                raise _fail(label, line, f"XSTest label {record.get('label')!r} is not safe or "
                            "unsafe", "Set label to safe or unsafe")
            rows.append(("over_refusal", verdict, text, label, line,
                         _label(record, _SUBGENRE_KEYS), _label(record, ["topic"])))
        else:
            category = _text(label, line, record.get("category") or "", "category")
            side = _side(label, line, (record.get("side") or "").strip() or "refuse")
            rows.append((category, side, text, label, line, _label(record, _SUBGENRE_KEYS),
                         _label(record, ["topic"])))
    return rows


def _parse(label: str, data: bytes) -> list[_Row]:
    content = _decode(label, data)
    if not content.strip():
        raise _fail(label, None, "the file is empty", f"Add prompt rows ({_GENERIC_FIX})")
    suffix = Path(label).suffix.lower()
    as_json = suffix in (".jsonl", ".json", ".ndjson") or (
        suffix != ".csv" and content.lstrip().startswith("{"))
    rows = _parse_jsonl(label, content) if as_json else _parse_csv(label, content)
    if not rows:
        raise _fail(label, None, "the file holds no prompt rows",
                    f"Add rows ({_GENERIC_FIX}) or pass another file")
    return rows


def _collect(rows: Sequence[_Row], source: str | None, fallback: PromptSet | None,
             where: str) -> PromptCollection:
    """Merge rows into a collection; ``source`` None labels sets by their files."""
    texts: dict[tuple[str, str], list[str]] = {}
    labels: dict[tuple[str, str], list[tuple[str, str]]] = {}
    files: dict[tuple[str, str], list[str]] = {}
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    for category, side, text, label, line, subgenre, topic in rows:
        group = ("benign", "benign") if side == "benign" else (category, side)
        if (*group, text) in seen:
            first, first_line = seen[(*group, text)]
            raise _fail(label, line, f"duplicate prompt in {'/'.join(group)}: the same text is at "
                        f"{first}, line {first_line}", "Delete one of the two rows (a duplicate "
                        "silently counts one prompt twice in every mean)")
        seen[(*group, text)] = (label, line)
        texts.setdefault(group, []).append(text)
        labels.setdefault(group, []).append((subgenre, topic))
        if label not in files.setdefault(group, []):
            files[group].append(label)

    def make(group: tuple[str, str]) -> PromptSet:
        name = "benign" if group[1] == "benign" else "/".join(group)
        subgenres, topics = (tuple(column) for column in zip(*labels[group]))
        return PromptSet(name, group[0], group[1], tuple(texts[group]),
                         source or ", ".join(files[group]),
                         subgenres if any(subgenres) else (), topics if any(topics) else ())

    for category, side in texts:
        if side == "matched" and (category, "refuse") not in texts:
            raise _fail(files[(category, side)][0], None, f"category {category!r} has matched rows "
                        "but no refuse rows", "Add its refuse rows (e.g. pass the CoCoNot eval "
                        "file with its contrast file) or drop the matched rows")
    cats = {c: CategoryPrompts(c, make((c, s)), make((c, "matched")) if (c, "matched") in texts
                               else None) for c, s in texts if s == "refuse"}
    if not cats:
        raise _fail(where, None, "no category has refuse rows",
                    "Pass at least one file with prompts that should be refused")
    if ("benign", "benign") in texts:
        benign = make(("benign", "benign"))
    elif fallback is not None:
        benign = fallback
    else:
        raise _fail(where, None, "no row has side 'benign' and no fallback pool was given",
                    "Add rows with \"side\": \"benign\" or pass benign_fallback=bundled().benign")
    return PromptCollection(cats, benign, source or where)


def load_prompts(paths: Sequence[str | Path],
                 benign_fallback: PromptSet | None = None) -> PromptCollection:
    """Read prompt files (CoCoNot JSONL, XSTest CSV, generic JSONL/CSV) into one collection.

    Args:
        paths: One or more files; their rows are merged (category, side, prompt).
        benign_fallback: The benign pool to use when no row has side ``"benign"``.

    Returns:
        Categories in order of first appearance, each with refuse and (maybe) matched sets.

    Raises:
        PromptFileError: A file is missing or malformed; the message names file, line, fix.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise PromptFileError("No prompt files given. Pass at least one .jsonl or .csv path.")
    rows: list[_Row] = []
    for item in paths:
        path = Path(item).expanduser()
        if not path.exists():
            raise _fail(str(path), None, "no such file", "Check the path (it is relative to "
                        f"{Path.cwd()})")
        if path.is_dir():
            raise _fail(str(path), None, "is a directory, not a prompt file",
                        "Pass the .jsonl or .csv files inside it")
        try:
            data = path.read_bytes()
        except OSError as error:  # permissions, a file that vanished, an I/O error
            raise _fail(str(path), None, f"cannot be read ({error.strerror or error})",
                        "Make it readable for this user (e.g. chmod a+r on the file, "
                        "and a+x on its folders) or pass a readable copy") from None
        rows.extend(_parse(str(path), data))
    return _collect(rows, None, benign_fallback, ", ".join(str(p) for p in paths))


def _data_dir() -> Traversable:
    try:
        return resources.files("refusal_checks").joinpath("data")
    except NotADirectoryError:
        # An editable install made before __init__.py existed maps the package as a namespace,
        # which Python 3.11's resources cannot read; the data sits next to this module anyway.
        return Path(__file__).resolve().parents[1] / "data"


@lru_cache(maxsize=1)
def _bundled_rows() -> tuple[_Row, ...]:
    data = _data_dir()
    rows: list[_Row] = []
    for stem, sides in [(c, ("refuse", "matched")) for c in CATEGORIES] + [("benign", ("benign",))]:
        entry = data.joinpath(f"{stem}.jsonl")
        label = f"refusal_checks/data/{stem}.jsonl"
        if not entry.is_file():
            raise _fail(label, None, "bundled prompt file is missing",
                        "Reinstall refusal_checks (pip install -e .) so package data is included")
        for row in _parse(label, entry.read_bytes()):
            if row[1] not in sides or (stem != "benign" and row[0] != stem):
                raise _fail(label, row[4], f"row has category {row[0]!r}, side {row[1]!r}",
                            f"Bundled {stem}.jsonl rows need category {stem!r} and side in "
                            f"{', '.join(sides)}")
            rows.append(row)
    return tuple(rows)


def bundled() -> PromptCollection:
    """The prompt sets we ship: CATEGORIES (refuse + matched each) and a benign pool."""
    return _collect(_bundled_rows(), "bundled", None, "refusal_checks/data")
