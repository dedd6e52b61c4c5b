"""How well a refusal judge agrees with human labels.

The ground truth is a labelled completions file in XSTest's format (PAPER.md, "Data
available offline"): columns ``id, type, prompt, completion, annotation_1, annotation_2,
agreement, final_label``, where ``final_label`` is ``1_full_compliance``,
``2_full_refusal`` or ``3_partial_refusal``. Full and partial refusals count as refusals
(positive class). Rates carry Wilson 95% intervals and their n (PAPER.md, "Rates carry
their n"). Stdlib + :mod:`refusal_checks.stats.intervals`; no torch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from refusal_checks.errors import RefusalChecksError
from refusal_checks.judges.base import Judge, judge_refused
from refusal_checks.stats.intervals import wilson_interval

# final_label -> refused (XSTest v2 annotation guidelines).
LABELS: dict[str, bool] = {
    "1_full_compliance": False,
    "2_full_refusal": True,
    "3_partial_refusal": True,
}
REQUIRED_COLUMNS: tuple[str, ...] = ("completion", "final_label")
_FIX = ("Pass a labelled completions CSV such as xstest_v2_completions_mistralinstruct.csv, "
        "with a header row holding at least the columns completion and final_label")


class LabelledFileError(RefusalChecksError, ValueError):
    """A labelled completions file that cannot be used; the message names file, line, fix."""


def _fail(path: Path | str, line: int | None, what: str, fix: str = _FIX) -> LabelledFileError:
    where = f"{path}, line {line}" if line is not None else str(path)
    return LabelledFileError(f"{where}: {what}. {fix}.")


@dataclass(frozen=True)
class LabelledCompletions:
    """Replies with their human final labels, in file order.

    Attributes:
        source: The file read.
        ids: The ``id`` column, or 1-based row numbers when the file has none.
        texts: The completions.
        labels: The raw ``final_label`` values (keys of LABELS).
        prompts: The ``prompt`` column, for judges that read it (WildGuard); None when the
            file has none.
    """

    source: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    prompts: tuple[str, ...] | None = None

    @property
    def refused(self) -> tuple[bool, ...]:
        """Human verdicts: True for full or partial refusal."""
        return tuple(LABELS[label] for label in self.labels)

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled_completions(path: str | Path) -> LabelledCompletions:
    """Read an XSTest-style labelled completions CSV from any path.

    Raises:
        LabelledFileError: Missing file, not UTF-8, missing columns, an unknown
            ``final_label``, or no rows; the message names the file (and line) and the fix.
    """
    path = Path(path)
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise _fail(path, None, "no such file", "Check the path; the XSTest file ships in "
                    "../shared/datasets/xstest_labelled/") from None
    except IsADirectoryError:
        raise _fail(path, None, "is a directory, not a CSV file",
                    "Pass the .csv file inside it") from None
    except UnicodeDecodeError as exc:
        raise _fail(path, None, f"bytes are not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    "Re-save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise _fail(path, 1, f"header has columns [{', '.join(columns)}], missing "
                    f"{', '.join(missing)}")
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    prompts: list[str] = []
    for record in reader:
        line = reader.line_num  # last physical line of the record (completions span lines)
        label = (record.get("final_label") or "").strip()
        if label not in LABELS:
            raise _fail(path, line, f"final_label {label!r} is not one of "
                        f"{', '.join(LABELS)}", "Relabel the row or drop it")
        text = record.get("completion")
        if text is None:
            raise _fail(path, line, "row has fewer fields than the header",
                        "Quote completions that contain commas or newlines")
        ids.append((record.get("id") or "").strip() or str(len(ids) + 1))
        texts.append(text)
        labels.append(label)
        prompts.append(record.get("prompt") or "")
    if not texts:
        raise _fail(path, None, "holds a header but no rows")
    return LabelledCompletions(str(path), tuple(ids), tuple(texts), tuple(labels),
                               tuple(prompts) if "prompt" in columns else None)


@dataclass(frozen=True)
class Rate:
    """``k / n`` with its Wilson interval; ``estimate`` is nan when ``n == 0``."""

    k: int
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, k: int, n: int, level: float = 0.95) -> Rate:
        low, high = wilson_interval(k, n, level)
        return cls(k, n, low, high)

    @property
    def estimate(self) -> float:
        return self.k / self.n if self.n else math.nan

    def __str__(self) -> str:
        if not self.n:
            return "n/a (n=0)"
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.k}/{self.n})"


@dataclass(frozen=True)
class Agreement:
    """A judge's verdicts against human labels; refusal is the positive class.

    accuracy = (tp + tn) / n, precision = tp / (tp + fp), recall = tp / (tp + fn).
    ``called_refused`` maps each raw label to the rate at which the judge said "refused".
    """

    judge: str
    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: Rate
    precision: Rate
    recall: Rate
    called_refused: dict[str, Rate] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def agreement(predicted: Sequence[bool], actual: Sequence[bool], judge: str = "",
              labels: Sequence[str] | None = None, level: float = 0.95) -> Agreement:
    """Confusion counts and Wilson-interval rates of ``predicted`` against ``actual``.

    Args:
        predicted: The judge's verdicts, True = refused.
        actual: Human verdicts, same order and length.
        judge: Name to carry into the result.
        labels: Optional raw labels (same length) for the per-label ``called_refused`` rates.
        level: Interval coverage.
    """
    if len(predicted) != len(actual) or (labels is not None and len(labels) != len(actual)):
        raise ValueError(f"need one verdict per labelled reply: got {len(predicted)} verdicts, "
                         f"{len(actual)} labels" + ("" if labels is None else
                                                    f", {len(labels)} raw labels"))
    pairs = list(zip((bool(p) for p in predicted), (bool(a) for a in actual)))
    tp = sum(p and a for p, a in pairs)
    fp = sum(p and not a for p, a in pairs)
    fn = sum(a and not p for p, a in pairs)
    tn = len(pairs) - tp - fp - fn
    per_label: dict[str, Rate] = {}
    if labels is not None:
        for value in sorted(set(labels)):
            said = [bool(p) for p, lab in zip(predicted, labels) if lab == value]
            per_label[value] = Rate.of(sum(said), len(said), level)
    return Agreement(judge, tp, fp, fn, tn, accuracy=Rate.of(tp + tn, len(pairs), level),
                     precision=Rate.of(tp, tp + fp, level), recall=Rate.of(tp, tp + fn, level),
                     called_refused=per_label)


def evaluate_judge(judge: Judge, data: LabelledCompletions | str | Path) -> Agreement:
    """Run ``judge`` on every labelled completion and compare with the human labels."""
    if not isinstance(data, LabelledCompletions):
        data = read_labelled_completions(data)
    start = time.perf_counter()
    verdicts = judge_refused(judge, list(data.texts), data.prompts)
    seconds = time.perf_counter() - start
    if len(verdicts) != len(data):
        raise ValueError(f"judge {judge.name!r} returned {len(verdicts)} verdicts for "
                         f"{len(data)} replies")
    result = agreement(verdicts, data.refused, judge.name, data.labels)
    return dataclasses.replace(result, seconds=seconds)


def agreement_table(results: Sequence[Agreement], source: str = "") -> list[str]:
    """Summary lines (never printed here): one row per judge, then per-label rates."""
    width = max([len(r.judge) for r in results] + [5])
    header = ["accuracy", "precision", "recall", "tp/fp/fn/tn", "seconds"]
    cells = [[str(r.accuracy), str(r.precision), str(r.recall), f"{r.tp}/{r.fp}/{r.fn}/{r.tn}",
              f"{r.seconds:.1f}" if r.seconds is not None else "-"] for r in results]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def row(name: str, values: list[str]) -> str:
        padded = "  ".join(v.ljust(w) for v, w in zip(values, widths))
        return f"{name:<{width}}  {padded}".rstrip()

    lines = [f"agreement with human labels{f' ({source})' if source else ''}; "
             "refusal = full or partial refusal; 95% Wilson intervals", row("judge", header)]
    lines += [row(r.judge, values) for r, values in zip(results, cells)]
    labelled = [r for r in results if r.called_refused]
    if labelled:
        lines.append("share called refused, by human label:")
        lines += [f"  {r.judge:<{width}}  " + "  ".join(
            f"{label}: {rate}" for label, rate in sorted(r.called_refused.items()))
            for r in labelled]
    return lines


# final_label -> three-way class (refusal_checks.judges.base.CLASSES).
CLASS_OF_LABEL: dict[str, str] = {
    "1_full_compliance": "complied",
    "2_full_refusal": "refused",
    "3_partial_refusal": "partial",
}


@dataclass(frozen=True)
class ClassAgreement:
    """A three-way judge's classes against human three-way labels.

    ``confusion[human][judge]`` counts replies; ``accuracy`` is exact class agreement;
    ``binary_accuracy`` is agreement on refusal = refused or partial (XSTest's convention,
    the one :func:`agreement` uses); ``complied_called_refused`` is the share of fully
    compliant replies the judge puts in the refused class, ``complied_called_refusal`` the
    share it puts in refused or partial; ``broken`` replies count as not refused.
    """

    judge: str
    confusion: dict[str, dict[str, int]]
    accuracy: Rate
    binary_accuracy: Rate
    complied_called_refused: Rate
    complied_called_refusal: Rate
    seconds: float | None = None
    predicted: tuple[str, ...] = field(default=(), repr=False)

    @property
    def n(self) -> int:
        return sum(sum(row.values()) for row in self.confusion.values())


def class_agreement(predicted: Sequence[str], actual: Sequence[str], judge: str = "",
                    level: float = 0.95) -> ClassAgreement:
    """Confusion and Wilson-interval rates of three-way ``predicted`` against ``actual``.

    Args:
        predicted: Judge classes (complied, partial, refused, broken).
        actual: Human classes (complied, partial, refused), same order and length.
        judge: Name to carry into the result.
        level: Interval coverage.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"need one class per labelled reply: got {len(predicted)} classes, "
                         f"{len(actual)} labels")
    order = ("complied", "partial", "refused", "broken")
    confusion = {h: {p: 0 for p in order} for h in order[:3]}
    for p, h in zip(predicted, actual):
        confusion[h][p] += 1
    refusal = {"partial", "refused"}
    n = len(actual)
    exact = sum(p == h for p, h in zip(predicted, actual))
    binary = sum((p in refusal) == (h in refusal) for p, h in zip(predicted, actual))
    complied = confusion["complied"]
    n_complied = sum(complied.values())
    return ClassAgreement(
        judge, confusion, accuracy=Rate.of(exact, n, level),
        binary_accuracy=Rate.of(binary, n, level),
        complied_called_refused=Rate.of(complied["refused"], n_complied, level),
        complied_called_refusal=Rate.of(complied["refused"] + complied["partial"], n_complied,
                                        level))


def evaluate_classes(judge: Judge, data: LabelledCompletions | str | Path) -> ClassAgreement:
    """Classify every labelled completion with ``judge`` and compare three ways."""
    from refusal_checks.judges.base import classify

    if not isinstance(data, LabelledCompletions):
        data = read_labelled_completions(data)
    start = time.perf_counter()
    # The prompts go only to a judge that reads them: with them the broken rules also catch
    # a prompt restated, which would move the three-way figures README quotes.
    prompts = data.prompts if getattr(judge, "needs_prompts", False) else None
    classes = classify(judge, list(data.texts), prompts)
    seconds = time.perf_counter() - start
    result = class_agreement(classes, [CLASS_OF_LABEL[label] for label in data.labels],
                             judge.name)
    return dataclasses.replace(result, seconds=seconds, predicted=tuple(classes))


def class_table(results: Sequence[ClassAgreement], source: str = "") -> list[str]:
    """Summary lines for three-way agreement: rates, then each judge's confusion matrix."""
    lines = [f"three-way agreement with human labels{f' ({source})' if source else ''}; "
             "95% Wilson intervals"]
    for r in results:
        lines += [f"{r.judge}:",
                  f"  accuracy (3 classes)            {r.accuracy}",
                  f"  accuracy (refusal = refused or partial) {r.binary_accuracy}",
                  f"  full compliance called refused  {r.complied_called_refused}",
                  f"  full compliance called refused or partial {r.complied_called_refusal}",
                  "  human \\ judge   complied  partial  refused  broken"]
        lines += [f"  {human:<15} " + "  ".join(f"{count:>7}" for count in row.values())
                  for human, row in r.confusion.items()]
    return lines
