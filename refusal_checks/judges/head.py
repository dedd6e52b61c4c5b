"""The embedding judge's head: multinomial logistic regression over three reply classes.

``P(class | e) = softmax(W e + b)`` over :data:`HEAD_CLASSES` (complied, partial, refused),
fitted by Newton's method with an L2 penalty, so training is deterministic (no learning rate,
no random restarts). The first class is the reference (its row of ``W`` and ``b`` is held at
0), which makes the problem identifiable: softmax is unchanged when every row moves together.

Also here: the training file's reader (our own replies, each with the prompt it answers, so
a test can check none of those prompts is an XSTest prompt) and the head file's reader.
numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from refusal_checks.judges.base import JudgeUnavailableError

HEAD_CLASSES: tuple[str, ...] = ("complied", "partial", "refused")
HEAD_SCHEMA = "refusal_checks/judge_head/2"
TRAIN_SCRIPT = "tools/train_judge_head.py"


class JudgeDataError(JudgeUnavailableError, ValueError):
    """A training file or head file that cannot be used; the message names the file and fix."""


@dataclass(frozen=True)
class SoftmaxHead:
    """Class probabilities ``softmax(e @ weights.T + bias)``; the class is the argmax."""

    classes: tuple[str, ...]
    weights: NDArray[np.float64]  # (class, feature)
    bias: NDArray[np.float64]  # (class,)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def probabilities(self, features: NDArray[np.floating]) -> NDArray[np.float64]:
        """``(text, feature)`` -> ``(text, class)``, rows summing to 1."""
        logits = np.asarray(features, dtype=np.float64) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)  # exp never overflows
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def predict(self, features: NDArray[np.floating]) -> list[str]:
        """The most probable class per text."""
        return [self.classes[i] for i in self.probabilities(features).argmax(axis=1)]

    def to_record(self) -> dict[str, Any]:
        return {"schema": HEAD_SCHEMA, **self.meta, "classes": list(self.classes),
                "bias": [float(b) for b in self.bias],
                # 6 significant digits keep the file small; the predictions do not move.
                "weights": [[float(f"{w:.6g}") for w in row] for row in self.weights]}


def fit_softmax(x: NDArray[np.floating], y: Sequence[str], classes: Sequence[str] = HEAD_CLASSES,
                l2: float = 1e-2, max_iter: int = 50, tol: float = 1e-9) -> SoftmaxHead:
    """L2-regularised multinomial logistic regression by Newton's method.

    Minimises ``mean_i -log p_{i, y_i} + l2/2 |W|^2`` (biases not penalised), with the first
    class's parameters fixed at 0.

    Args:
        x: ``(example, d)`` features.
        y: ``(example,)`` class names, each in ``classes``.
        classes: Class order of the head; every class needs at least one example.
        l2: Penalty strength; > 0 keeps the problem well posed for separable data.
        max_iter: Newton steps at most (about 10 on our data).
        tol: Stop when the largest step component is below this.
    """
    x = np.asarray(x, dtype=np.float64)
    classes = tuple(classes)
    if x.ndim != 2 or len(y) != x.shape[0]:
        raise ValueError(f"need x of shape (n, d) and one label per row, got {x.shape} and "
                         f"{len(y)} labels")
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2!r}")
    unknown = sorted(set(y) - set(classes))
    missing = [c for c in classes if c not in set(y)]
    if unknown or missing or len(classes) < 2:
        raise ValueError(f"need examples of every class {classes} and no others; missing "
                         f"{missing}, unknown {unknown}")
    n, d = x.shape
    k = len(classes) - 1  # free classes
    design = np.hstack([x, np.ones((n, 1))])
    onehot = np.zeros((n, len(classes)))
    onehot[np.arange(n), [classes.index(label) for label in y]] = 1.0
    penalty = np.tile(np.r_[np.full(d, l2), 0.0], k)
    theta = np.zeros((k, d + 1))
    for _ in range(max_iter):
        logits = np.hstack([np.zeros((n, 1)), design @ theta.T])
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        gradient = ((p[:, 1:] - onehot[:, 1:]).T @ design / n).ravel() + penalty * theta.ravel()
        hessian = np.empty((k * (d + 1), k * (d + 1)))
        for a in range(k):
            for b in range(k):
                w = p[:, a + 1] * ((a == b) - p[:, b + 1])
                block = (design.T * w) @ design / n
                hessian[a * (d + 1):(a + 1) * (d + 1), b * (d + 1):(b + 1) * (d + 1)] = block
        hessian[np.diag_indices_from(hessian)] += penalty + 1e-12
        step = np.linalg.solve(hessian, gradient).reshape(k, d + 1)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    full = np.vstack([np.zeros((1, d + 1)), theta])
    return SoftmaxHead(classes, weights=full[:, :-1], bias=full[:, -1])


@dataclass(frozen=True)
class TrainingExample:
    """One of our hand-written replies, the prompt it answers, and its class."""

    prompt: str
    text: str
    label: str


def read_training_file(path: Path) -> list[TrainingExample]:
    """JSONL lines ``{"prompt": "...", "text": "...", "label": "complied|partial|refused"}``."""
    fix = ('Each line must be one object such as {"prompt": "Help me hack it.", "text": '
           '"No, sorry.", "label": "refused"}')
    rows: list[TrainingExample] = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise JudgeDataError(f"{path}, line {number}: invalid JSON ({exc.msg}). "
                                 f"{fix}.") from None
        ok = isinstance(row, dict) and all(isinstance(row.get(key), str) and row[key].strip()
                                           for key in ("prompt", "text", "label"))
        if not ok or row["label"] not in HEAD_CLASSES:
            raise JudgeDataError(f"{path}, line {number}: need non-empty strings 'prompt' and "
                                 f"'text' and a 'label' in {', '.join(HEAD_CLASSES)}, found "
                                 f"{raw[:80]!r}. {fix}.")
        rows.append(TrainingExample(row["prompt"], row["text"], row["label"]))
    found = {row.label for row in rows}
    if found != set(HEAD_CLASSES):
        raise JudgeDataError(f"{path}: needs examples of every class {', '.join(HEAD_CLASSES)}; "
                             f"found only {sorted(found)}. {fix}.")
    return rows


def read_head(path: Path, features: int) -> SoftmaxHead:
    """Load a head written by :data:`TRAIN_SCRIPT`, checking schema, classes and shapes."""
    retrain = f"Retrain it: .venv/bin/python {TRAIN_SCRIPT}"
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JudgeDataError(f"The embedding judge's head {path} is missing. "
                             f"{retrain}.") from None
    except json.JSONDecodeError as exc:
        raise JudgeDataError(f"{path} is not valid JSON ({exc.msg}). {retrain}.") from None
    if not isinstance(record, dict) or record.get("schema") != HEAD_SCHEMA:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise JudgeDataError(f"{path} has schema {found!r}, expected {HEAD_SCHEMA!r}. {retrain}.")
    if tuple(record.get("classes", ())) != HEAD_CLASSES:
        raise JudgeDataError(f"{path} has classes {record.get('classes')!r}, expected "
                             f"{list(HEAD_CLASSES)}. {retrain}.")
    try:
        weights = np.asarray(record.get("weights", []), dtype=np.float64)
        bias = np.asarray(record.get("bias", []), dtype=np.float64)
    except (TypeError, ValueError):
        weights = bias = np.zeros(0)
    shape = (len(HEAD_CLASSES), features)
    if weights.shape != shape or bias.shape != (len(HEAD_CLASSES),) or not (
            np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
        raise JudgeDataError(f"{path} holds weights of shape {weights.shape} and bias of shape "
                             f"{bias.shape}, expected {shape} and ({len(HEAD_CLASSES)},), all "
                             f"finite. {retrain}.")
    meta = {k: v for k, v in record.items()
            if k not in ("schema", "weights", "bias", "classes")}
    return SoftmaxHead(HEAD_CLASSES, weights, bias, meta)


