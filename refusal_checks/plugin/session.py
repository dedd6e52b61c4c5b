"""Checks before any model loads, the run's completeness, and the records of xdist workers.

Each check returns a message (what is wrong, the value, the fix) or None; the plugin turns
a message into ``pytest.UsageError`` (exit 4). Stdlib only at import: the plugin loads in
every pytest run of the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refusal_checks.core.files import unwritable

# The smallest --refusal-max-prompts with which every claim computes its numbers. Each
# prompt set is split into train and test halves, and a half again for the split-half
# reliability; the bootstrap of the noise-corrected cosines needs two distinct prompts in
# every resample of a set, and a resample of n prompts is one prompt n times with
# probability n^(1 - n) per set and replicate. A run draws ~12,000 resamples (500
# replicates of a dozen sets, two controls): ~190 such at n = 4 (1 in 64), one in most
# runs at n = 6 (1 in 7,776), one run in ~175 at n = 8, one in ~80,000 at n = 10.
# Measured on a planted world: every run failed at n <= 4 and the run at 6 did too.
MIN_PROMPT_BUDGET = 10

PROMPT_BUDGET_WHY = (
    f"each prompt set is split in halves (train/test, then split-half reliability), and "
    f"with fewer than {MIN_PROMPT_BUDGET} prompts the bootstrap draws resamples of a single "
    "prompt, which leave the noise-corrected cosines undefined. Leave the option out to use "
    "every prompt")


def alias_problem(aliases: dict[str, Any], pyproject: Path) -> str | None:
    """A [tool.refusal_checks.models] entry that names no model, or None.

    An entry is ``alias = "source"`` or ``alias = { source = "...", revision = "..." }``;
    without a source the alias used to resolve to ``--model ''``.
    """
    example = ('write  {alias} = "org/name"  or  {alias} = {{ source = "org/name", '
               'revision = "main" }}  (a hub id, a local folder or .gguf file, or another alias)')
    for alias, target in aliases.items():
        where = f"[tool.refusal_checks.models] {alias!r} in {pyproject}"
        if isinstance(target, dict):
            source = target.get("source")
            revision = target.get("revision")
            if not isinstance(source, str) or not source.strip():
                found = "has no 'source'" if source is None else f"has source {source!r}"
                return f"{where} {found}: {example.format(alias=alias)}."
            if revision is not None and not isinstance(revision, str):
                return f"{where} has revision {revision!r}, which is not a string: " \
                       f"{example.format(alias=alias)}."
        elif not isinstance(target, str) or not target.strip():
            return f"{where} is {target!r}, not a model: {example.format(alias=alias)}."
    return None


def synthetic_problem(name: str, source: str) -> str | None:
    """Parse a ``synthetic:<spec>`` now, so a typo is one message, not one per claim.

    Imports refusal_checks.models.synthetic (numpy) only for runs that name a synthetic model.
    """
    from dataclasses import fields

    from refusal_checks.errors import RefusalChecksError
    from refusal_checks.models.synthetic import PRESETS, World, parse_spec

    try:
        parse_spec(source)
    except RefusalChecksError as error:
        keys = ", ".join(f.name for f in fields(World))
        what = str(error).split(". ")[0].rstrip(".")  # the rest lists what follows here
        return (f"--model {name!r}: {what}. Valid specs: synthetic:<preset>[,key=value...] "
                f"with a preset from {', '.join(PRESETS)} and keys from {keys}; "
                "e.g. --model synthetic:distinct,cos=0.3")
    return None


def output_problem(option: str, path: str) -> str | None:
    """A report path that cannot be written, found before the run instead of after it."""
    reason = unwritable(path)
    if reason is None:
        return None
    return f"{option} {path}: cannot write the report there ({reason}). Pass a file path " \
           "in a folder you can write to."


# The folders a run writes into under the cache root: refusal_checks.cache's
# RESULT_NAMESPACES and the converted models. One may be a link to another disk or mount,
# so each that exists is tried as well as the root.
CACHE_FOLDERS = ("activations", "replies", "scores", "models")


def cache_problem(cache_dir: Path, source: str) -> str | None:
    """A cache folder that cannot be written (activations, replies, converted models).

    Tried by writing (:func:`refusal_checks.core.files.unwritable`): the root, and each of its
    :data:`CACHE_FOLDERS` that exists. A cache that cannot be written is refused rather
    than run in memory: a run that cannot keep its entries loses all its model work when
    it is killed (a CI time limit), and every rerun repeats it.
    """
    reason = unwritable(cache_dir, folder=True)
    for name in CACHE_FOLDERS:
        if reason is None and (cache_dir / name).is_dir():
            reason = unwritable(cache_dir / name, folder=True)
    if reason is None:
        return None
    return (f"the refusal_checks cache {cache_dir} (from {source}) cannot be written "
            f"({reason}). Pass --refusal-cache-dir DIR, or set REFUSAL_CHECKS_CACHE, to a "
            "folder you can write to.")


class Completeness:
    """Whether the run got to the end: every collected test ran and no stop was asked for.

    A report of a run that stopped early (Ctrl-C, ``-x`` / ``--maxfail``, a collection
    error, pytest.exit, an internal error) holds verdicts for only part of the claims and
    must not pass for a complete one, above all as a release gate's baseline.
    """

    def __init__(self) -> None:
        self.collection_errors = 0
        self.interrupted: str | None = None

    def collect_failed(self) -> None:
        self.collection_errors += 1

    def keyboard_interrupt(self, text: str) -> None:
        self.interrupted = text or "KeyboardInterrupt"

    def reason(self, session: Any, exitstatus: int) -> str | None:
        """Why the run is incomplete, or None when it ran to the end."""
        stop = getattr(session, "shouldfail", False) or getattr(session, "shouldstop", False)
        if self.collection_errors:  # pytest then stops with an Interrupted of its own
            n = self.collection_errors
            return f"{n} error{'s' if n > 1 else ''} during collection: some claims never ran"
        if self.interrupted:
            return f"interrupted ({self.interrupted})"
        if stop:
            return f"stopped early: {stop}"
        # 0 all passed, 1 some failed, 5 nothing collected: the run got to its end. Else
        # 2 interrupted (pytest.exit, xdist's -x), 3 internal error, 4 usage error.
        if int(exitstatus) not in (0, 1, 5):
            return f"pytest ended with exit status {int(exitstatus)} " \
                   f"({getattr(exitstatus, 'name', 'not a normal end')})"
        return None


# -- pytest-xdist: the controller writes the reports from what the workers send ------------

def merge_models(into: dict[str, dict[str, Any]], sent: dict[str, dict[str, Any]]) -> None:
    """Fold one worker's model records in: cache counters add up; the other fields are the
    same in every worker that measured them (one model, one seed), so the first stays."""
    for model, record in sent.items():
        mine = into.setdefault(model, {})
        for key, value in record.items():
            if key == "activation_cache" and isinstance(mine.get(key), dict):
                for name, count in value.items():
                    mine[key][name] = mine[key].get(name, 0) + count
            else:
                mine.setdefault(key, value)


def in_order(items: list[Any], order: dict[str, int]) -> list[Any]:
    """Verdict records (by their ``test``) or node ids in collection order, the same with
    or without workers (whose reports arrive in any order); unknown ones last, as found."""
    last = len(order)
    return sorted(items, key=lambda item: order.get(
        str(item.get("test")) if isinstance(item, dict) else str(item), last))
