"""The ``--refusal-json`` report's schema: its version, the keys every verdict carries, and
reading a saved report back (:func:`load_report`, checked by :func:`check_payload`).

The writer is :func:`refusal_checks.reports.summary.json_report`; the HTML page, ``python -m
refusal_checks html`` and ``compare`` read through this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refusal_checks.errors import RefusalChecksError

SCHEMA = "refusal_checks/report/1"
VERDICT_KEYS = ("claim", "model", "outcome", "estimate", "interval", "comparison", "threshold",
                "n")


class ReportFileError(RefusalChecksError, ValueError):
    """A saved report that cannot be rendered; the message names the file and the fix."""


def check_payload(payload: Any, source: str = "report") -> dict[str, Any]:
    """Return ``payload`` if it is a schema-1 report with well-formed verdicts.

    Raises:
        ReportFileError: Wrong type, wrong schema, or a verdict missing a required key.
    """
    fix = "Pass a file written by pytest --refusal-json"
    if not isinstance(payload, dict):
        raise ReportFileError(f"{source}: expected a JSON object, got {type(payload).__name__}. "
                              f"{fix}.")
    if payload.get("schema") != SCHEMA:
        raise ReportFileError(f"{source}: schema is {payload.get('schema')!r}, expected "
                              f"{SCHEMA!r}. {fix} (this version reads schema 1 only).")
    if not isinstance(payload.get("models", {}), dict):
        raise ReportFileError(f"{source}: 'models' must be an object (model -> details). {fix}.")
    verdicts = payload.get("verdicts")
    if not isinstance(verdicts, list):
        raise ReportFileError(f"{source}: 'verdicts' must be a list. {fix}.")
    for index, verdict in enumerate(verdicts):
        missing = [key for key in VERDICT_KEYS
                   if not isinstance(verdict, dict) or key not in verdict]
        if missing:
            raise ReportFileError(f"{source}: verdict {index} lacks {', '.join(missing)}. {fix}.")
        interval = verdict["interval"]
        if not isinstance(interval, list) or len(interval) != 2:
            raise ReportFileError(f"{source}: verdict {index} has interval {interval!r}, "
                                  f"expected [low, high]. {fix}.")
    return payload


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and check a ``--refusal-json`` file.

    Raises:
        ReportFileError: Missing file, not JSON, or not a schema-1 report.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportFileError(f"{path}: no such file. Write one with pytest claims/ "
                              "--refusal-json PATH.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportFileError(f"{path} cannot be read: {error}.") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportFileError(f"{path}: not valid JSON (line {error.lineno}, column "
                              f"{error.colno}: {error.msg}). Pass a file written by pytest "
                              "--refusal-json.") from None
    return check_payload(payload, str(path))
