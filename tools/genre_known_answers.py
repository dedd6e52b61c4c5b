"""Write two known-answer prompt files from public datasets, for the three genre designs.

Both files hold ONE concept (requests a model should not comply with) in two categories,
so a refusal-direction claim that calls the two categories "distinct" is wrong there:

* ``sources.jsonl``: CoCoNot "Requests with safety concerns" (category ``ccn_safety``,
  CoCoNot contrast rows of that category as its matched twins) and XSTest unsafe prompts
  (``xst_unsafe``, XSTest safe prompts as twins): one concept from two sources, which
  differ in style. The general pool design sees the sources' style.
* ``split.jsonl``: XSTest unsafe prompts shuffled into two disjoint random halves
  (``half_a``, ``half_b``, XSTest safe prompts likewise as twins): no difference at all.

No benign rows: the run falls back to the bundled general benign pool, as a user's run
does. Then, on the embedded model (README, "A real-data check of the genre designs"):

    .venv/bin/python tools/genre_known_answers.py /work/shared/datasets OUT
    .venv/bin/pytest claims/test_geometry.py -k distinct --refusal-prompts OUT/sources.jsonl \\
        --refusal-max-prompts 64 --refusal-json OUT/sources.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

SEED = 0
PER_SET = 64


def _sample(rows: list[str], n: int, rng: random.Random) -> list[str]:
    rows = sorted(set(rows))
    rng.shuffle(rows)
    return rows[:n]


def _rows(category: str, refuse: list[str], matched: list[str]) -> list[dict[str, str]]:
    return ([{"category": category, "side": "refuse", "prompt": p} for p in refuse]
            + [{"category": category, "side": "matched", "prompt": p} for p in matched])


def build(datasets: Path, out: Path, per_set: int = PER_SET) -> dict[str, Path]:
    """Write ``sources.jsonl`` and ``split.jsonl`` under ``out``; return their paths."""
    rng = random.Random(SEED)
    coconot = [json.loads(line) for line in
               (datasets / "coconot" / "coconot_eval.jsonl").read_text().splitlines() if line]
    contrast = [json.loads(line) for line in (datasets / "coconot" /
                "coconot_contrast_eval.jsonl").read_text().splitlines() if line]
    with open(datasets / "xstest" / "xstest_prompts.csv", newline="") as handle:
        xstest = list(csv.DictReader(handle))
    safety = "Requests with safety concerns"
    ccn = _sample([r["prompt"] for r in coconot if r["category"] == safety], per_set, rng)
    ccn_twins = _sample([r["prompt"] for r in contrast if r["category"] == safety], per_set, rng)
    unsafe = _sample([r["prompt"] for r in xstest if r["label"] == "unsafe"], 2 * per_set, rng)
    safe = _sample([r["prompt"] for r in xstest if r["label"] == "safe"], 2 * per_set, rng)
    files = {
        "sources": _rows("ccn_safety", ccn, ccn_twins) + _rows("xst_unsafe", unsafe[:per_set],
                                                               safe[:per_set]),
        "split": _rows("half_a", unsafe[:per_set], safe[:per_set])
        + _rows("half_b", unsafe[per_set:], safe[per_set:]),
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in files.items():
        paths[name] = out / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", type=Path, help="folder with coconot/ and xstest/")
    parser.add_argument("out", type=Path, help="where to write sources.jsonl and split.jsonl")
    args = parser.parse_args()
    for name, path in build(args.datasets, args.out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
