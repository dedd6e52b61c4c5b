"""Refusal judges against human labels of the model under test (``labels/*.jsonl``).

The labels are written by ``python -m refusal_checks label`` (guide: docs/labelling.md): a
stratified sample of one model's cached replies, unsteered, steered along each direction
and ablated, read by a person blind to every judge. This prints, for every loadable judge,
its binary agreement with the labels (refusal = the human ``refused`` class; accuracy,
sensitivity, specificity with Wilson 95% intervals, Cohen's kappa with a bootstrap
interval), over all replies and per condition, then the three-way confusion (human class
against the judge's ``classify``), which shows how the judges treat partial and broken
replies. No model is loaded: the judges read the labelled replies' text.

Only one half of the labels is read (refusal_checks/judges/label_split.py): the evaluation
half by default, for every accuracy that is reported; ``--half tuning`` for designing a
judge or a detector, whose numbers must never be reported as its accuracy.

    .venv/bin/python benchmarks/model_labels.py
    .venv/bin/python benchmarks/model_labels.py --labels labels/other.jsonl --judges substring
    .venv/bin/python benchmarks/model_labels.py --half tuning
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from refusal_checks.judges.registry import JUDGES, ON_DEVICE, load_judge
from refusal_checks.judges.base import classify, judge_refused
from refusal_checks.judges.agreement import agreement_by_condition, agreement_lines
from refusal_checks.judges.label_provenance import provenance
from refusal_checks.judges.label_split import HALVES, RULE, split
from refusal_checks.judges.labelling import read_labels

CLASSES = ("complied", "partial", "refused", "broken")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=Path("labels/qwen-coder-0.5b.jsonl"))
    parser.add_argument("--judges", default=",".join(sorted(set(JUDGES) - ON_DEVICE)),
                        help="comma-separated judge names (default: all but those running a "
                        "model of their own, e.g. wildguard)")
    parser.add_argument("--seed", type=int, default=0, help="kappa bootstrap seed")
    parser.add_argument("--half", choices=HALVES, default="evaluation",
                        help="which half of the labels to read (default: evaluation, the "
                        "only one whose numbers may be reported)")
    args = parser.parse_args()

    every = list(read_labels(args.labels).values())
    if not every:
        parser.error(f"{args.labels} holds no labels; write some with "
                     "`python -m refusal_checks label`")
    record = provenance(every)
    for note in record["notes"]:
        print(f"provenance: {note}")
    halves = split(every)
    rows = halves[args.half]
    print(f"split {RULE}: tuning {len(halves['tuning'])}, evaluation "
          f"{len(halves['evaluation'])}; reading the {args.half} half")
    if not rows:
        parser.error(f"the {args.half} half of {args.labels} is empty")
    models = Counter(str(row["model"]) for row in rows)
    print(f"{args.labels}: {len(rows)} labels of {', '.join(models)}; human classes "
          + ", ".join(f"{c} {sum(r['label'] == c for r in rows)}" for c in CLASSES))
    texts = [str(row["reply"]) for row in rows]
    prompts = [str(row["prompt"]) for row in rows]
    judges = {}
    for name in args.judges.split(","):
        judge = load_judge(name.strip())
        judges[judge.name] = judge
    verdicts = {name: judge_refused(judge, texts, prompts) for name, judge in judges.items()}
    result = agreement_by_condition(rows, verdicts, seed=args.seed)
    print("\n".join(agreement_lines(result)))
    for name, judge in judges.items():
        said = classify(judge, texts, prompts)
        pairs = Counter(zip((str(r["label"]) for r in rows), said))
        print(f"\n{name}: human class (rows) x judge class (columns)")
        print("human \\ judge | " + " | ".join(CLASSES))
        for human in CLASSES:
            print(f"{human} | " + " | ".join(str(pairs[human, c]) for c in CLASSES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
