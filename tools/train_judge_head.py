"""Train the embedding judge's logistic head on our own replies and ship it.

Reads ``refusal_checks/data/judge_train.jsonl`` (hand-written refusals and compliances; never
the XSTest labels, which are the held-out ground truth of ``benchmarks/judge_agreement.py``),
embeds each reply with all-MiniLM-L6-v2, picks the L2 penalty by stratified k-fold
cross-validation on that same file, fits the head on all of it, and writes
``refusal_checks/data/embedding_judge_head.jsonl`` atomically. Deterministic: rerunning on the
same file and encoder gives the same head up to float rounding in the encoder.

    .venv/bin/python tools/train_judge_head.py            # 2-4 min on a shared 2-core CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from refusal_checks.embedding_judge import (
    DISTRIBUTION, HEAD_FILE, REPLY_TOKENS, SENTENCE_TOKENS, TRAIN_FILE, VERSION, MiniLMEncoder,
    file_sha256, fit_logistic, model_folder, read_training_file, reply_features, verify_weights,
)

L2_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def stratified_folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per example, each class spread evenly over the k folds."""
    folds = np.empty(len(labels), dtype=int)
    for value in (False, True):
        members = rng.permutation(np.flatnonzero(labels == value))
        folds[members] = np.arange(len(members)) % k
    return folds


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, l2: float, folds: np.ndarray) -> float:
    correct = 0
    for fold in np.unique(folds):
        test = folds == fold
        head = fit_logistic(x[~test], y[~test], l2=l2)
        correct += int(((head.probability(x[test]) >= 0.5) == y[test]).sum())
    return correct / len(y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=TRAIN_FILE, help="labelled JSONL to train on")
    parser.add_argument("--out", type=Path, default=HEAD_FILE, help="head file to write")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    args = parser.parse_args(argv)

    texts, labels = read_training_file(args.train)
    y = np.asarray(labels)
    folder = model_folder()
    sha = verify_weights(folder)
    start = time.perf_counter()
    encoder = MiniLMEncoder(folder)
    x = reply_features(encoder, texts, SENTENCE_TOKENS, REPLY_TOKENS).astype(np.float64)
    embed_seconds = time.perf_counter() - start
    print(f"embedded {len(texts)} replies ({int(y.sum())} refused) in {embed_seconds:.1f} s")

    folds = stratified_folds(y, args.folds, np.random.default_rng(args.seed))
    scores = {l2: cross_validated_accuracy(x, y, l2, folds) for l2 in L2_GRID}
    for l2, score in scores.items():
        print(f"  l2={l2:g}: {args.folds}-fold accuracy {score:.3f}")
    # One-standard-error rule (Hastie et al., ESL 7.10): the strongest penalty whose CV accuracy
    # is within one binomial SE of the best. Our replies are short and hand-written; a simpler
    # head transfers better to other models' longer replies than the CV optimum does.
    top = max(scores.values())
    se = (top * (1 - top) / len(y)) ** 0.5
    best = max(l2 for l2 in L2_GRID if scores[l2] >= top - se)
    start = time.perf_counter()
    head = fit_logistic(x, y, l2=best)
    fit_seconds = time.perf_counter() - start
    train_accuracy = float(((head.probability(x) >= 0.5) == y).mean())
    print(f"chose l2={best:g} (best CV {top:.3f}, one SE {se:.3f}); fit in {fit_seconds:.2f} s; "
          f"training accuracy {train_accuracy:.3f}")

    meta = {
        "encoder": {"package": DISTRIBUTION, "version": VERSION, "weights_sha256": sha,
                    "pooling": "mean over tokens, L2-normalised",
                    "features": "[first sentence, first reply_tokens tokens]",
                    "sentence_tokens": SENTENCE_TOKENS, "reply_tokens": REPLY_TOKENS},
        "training": {"file": args.train.name, "sha256": file_sha256(args.train),
                     "n": len(y), "n_refused": int(y.sum()), "l2": best,
                     "l2_selection": "one-SE rule over stratified k-fold CV", "folds": args.folds,
                     "seed": args.seed, "cv_accuracy": round(scores[best], 4),
                     "train_accuracy": round(train_accuracy, 4)},
    }
    record = dataclasses.replace(head, meta=meta).to_record()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp",
                                     encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile makes it 0600; this file ships
    os.replace(handle.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
