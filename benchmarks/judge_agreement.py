"""Refusal judges against human labels: the XSTest v2 Mistral-Instruct completions.

Prints accuracy, precision and recall (refusal = positive; the judge's binary view, the
refused class, against XSTest's full or partial refusal) with Wilson 95% intervals for each
judge, the share of each human label each judge calls refused, three-way agreement
(complied / partial / refused: accuracy, agreement on refusal = refused or partial, the share
of fully compliant replies called refusals, the confusion matrix) and load / judging times.
The embedding judge's head never saw this file or its prompts (tools/train_judge_head.py
trains on refusal_checks/data/judge_train.jsonl only). Design choices (features, which kinds
of reply to add to the training file, the head's L2 penalty) were made by reading the errors
on one half of the file, the rows whose id's sha256 starts with an even byte; the other half
was never inspected, so its numbers (``--half untouched``) are the cleanest estimate.

    .venv/bin/python benchmarks/judge_agreement.py
    .venv/bin/python benchmarks/judge_agreement.py --csv path/to/labelled.csv --judges substring
    .venv/bin/python benchmarks/judge_agreement.py --first-words 18

``--first-words`` cuts each completion to its opening words, as the claims see replies:
refusal_checks.measure.behaviour generates 24 new tokens (about 18 words).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import time
from pathlib import Path

from refusal_checks.judges.evaluation import (
    LABELS, LabelledCompletions, agreement, agreement_table, class_table, evaluate_classes,
    read_labelled_completions,
)
from refusal_checks.judges.registry import JUDGES, load_judge

XSTEST = Path("datasets/xstest_labelled/xstest_v2_completions_mistralinstruct.csv")


def shared_dir() -> Path:
    """$REFUSAL_CHECKS_SHARED, else the ``shared`` folder next to the repository."""
    env = os.environ.get("REFUSAL_CHECKS_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def judge_names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in JUDGES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{value!r} names unknown judges {unknown}; known: {', '.join(sorted(JUDGES))}")
    return names


def inspected(row_id: str) -> bool:
    """Whether a row is in the half whose errors were read while designing the judge."""
    return hashlib.sha256(row_id.encode("utf-8")).digest()[0] % 2 == 0


def select_half(data: LabelledCompletions, half: str) -> LabelledCompletions:
    """``all`` rows, the ``inspected`` half, or the ``untouched`` half, in file order."""
    if half == "all":
        return data
    keep = [i for i, row_id in enumerate(data.ids) if inspected(row_id) == (half == "inspected")]
    prompts = None if data.prompts is None else tuple(data.prompts[i] for i in keep)
    return LabelledCompletions(data.source, *(tuple(column[i] for i in keep)
                                              for column in (data.ids, data.texts, data.labels)),
                               prompts)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of words >= 1")
    return number


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=shared_dir() / XSTEST,
                        help="labelled completions CSV (default: %(default)s)")
    parser.add_argument("--judges", type=judge_names, default=["substring", "embedding"],
                        help="comma-separated judge names (default: substring,embedding)")
    parser.add_argument("--first-words", type=positive_int, default=None, metavar="N",
                        help="judge only the first N words of each completion")
    parser.add_argument("--half", choices=("all", "inspected", "untouched"), default="all",
                        help="judge all rows, or only the half whose errors were (not) read "
                             "while designing the embedding judge (default: all)")
    args = parser.parse_args(argv)

    data = select_half(read_labelled_completions(args.csv), args.half)
    source = f"{args.csv.name}{'' if args.half == 'all' else f' ({args.half} half)'}, n={len(data)}"
    if args.first_words:
        cut = tuple(" ".join(text.split()[: args.first_words]) for text in data.texts)
        data = dataclasses.replace(data, texts=cut)
        source += f", first {args.first_words} words of each completion"
    results, three_way = [], []
    for name in args.judges:
        start = time.perf_counter()
        judge = load_judge(name)
        loaded = time.perf_counter() - start
        classes = evaluate_classes(judge, data)  # one pass; the binary view derives from it
        print(f"{name}: loaded in {loaded:.1f} s, judged {len(data)} replies in "
              f"{classes.seconds:.1f} s")
        said = [cls == "refused" for cls in classes.predicted]
        results.append(dataclasses.replace(
            agreement(said, [LABELS[label] for label in data.labels], judge.name, data.labels),
            seconds=classes.seconds))
        three_way.append(classes)
    print()
    print("\n".join(agreement_table(results, source=source)))
    print()
    print("\n".join(class_table(three_way, source=source)))



if __name__ == "__main__":
    main()
