"""Surface-cue audit: can one grammatical cue tell a category's two sides apart?

A refusal direction is the mean difference between the activations of prompts that should be
refused and of their genre-matched benign twins. If every refuse prompt says "you" and no twin
does, that difference partly encodes the pronoun, not the refusal. This module counts, for each
side of each category, how often five cheap surface cues occur, and reports the gap between
the sides. Stdlib only, so it runs on any prompt file before a model is loaded.

The cues (all heuristics; each is a per-prompt yes/no, so each rate is a share in [0, 1]):

- ``second_person``: the prompt contains a second-person word (you, your, yours, yourself,
  yourselves, you're, you've, you'll, you'd, ya, u), matched as a whole word, any case.
- ``question``: the prompt ends with "?" (after trailing quotes, brackets and spaces).
- ``imperative``: the first word, after politeness openers ("please", "kindly", "hey",
  "ok", "now", "just", "so"), is a base-form verb from IMPERATIVE_VERBS, a list of the verbs
  that open requests to an assistant (write, tell, give, explain, make, list, describe ...).
  Words such as "list" or "plan" are nouns too, but at the start of a prompt they are almost
  always commands; modal openings ("Can you ...") are questions, not imperatives.
- ``certainty``: a word or phrase that asks for certainty or one settled answer (exactly,
  definitely, once and for all, for sure, precisely, guaranteed, certain, no debate, full
  stop, final verdict ...), see CERTAINTY_PATTERN.
- ``long``: the prompt has more words than the median word count of the pool it is compared
  in (both sides of the category together), so length is a share comparable to the others.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from refusal_checks.prompts.sets import PromptCollection
from refusal_checks.prompts.load import load_prompts

CUES: tuple[str, ...] = ("second_person", "question", "imperative", "certainty", "long")
MAX_GAP = 0.20  # largest tolerated |refuse rate - matched rate| for any cue (issue #11)

_SECOND_PERSON = re.compile(
    r"\b(?:you|your|yours|yourself|yourselves|you['\u2019](?:re|ve|ll|d)|ya|u)\b", re.IGNORECASE)
CERTAINTY_PATTERN = re.compile(
    r"\b(?:exact|exactly|precise|precisely|definite|definitely|definitive|definitively|"
    r"once and for all|for sure|for certain|(?<!\ba )certain|certainly|certainty|"
    r"guarantee|guaranteed|guarantees|absolutely|undeniabl[ey]|without (?:a|any) doubt|"
    r"beyond (?:any )?doubt|conclusive|conclusively|objectively|indisputabl[ey]|"
    r"undisputed|unquestionabl[ey]|100 ?%|100 percent|"
    # insistence on one settled answer: "settle it for good", "no debate", "full stop"
    r"for good|full stop|no debate|no arguments?|final verdict|final answer|one true|"
    r"settle (?:it|this)|officially|period(?=[.!?]*$))(?!\w)", re.IGNORECASE)
IMPERATIVE_VERBS: frozenset[str] = frozenset("""
    act add admit analyse analyze answer apologise apologize arrange ask assess be become
    bake book break brainstorm browse build buy calculate call change check choose clarify
    classify come compare compile complete compose compute confirm continue convert cook
    correct count craft create critique decide define delete describe design detect diagnose
    display do download draft draw drive edit email estimate evaluate execute explain fill
    find finish fix forget generate get give go grade guess help hold hug identify imagine
    install interpret invent join keep kiss let list listen locate look make map measure meet
    monitor name narrate open order outline paint pay pick plan play plot post predict
    prepare prescribe pretend print produce promise prove provide put rank rate read recite
    recommend record register remember remind render rephrase reply respond review rewrite
    roleplay run say scan schedule search send set share show sign sing sketch smell solve
    sort speak spell start stay stop submit suggest summarise summarize swear take talk taste
    teach tell text touch track transfer translate try turn update upload use visit walk
    watch weigh write
""".split())
_OPENERS = frozenset({"please", "kindly", "hey", "hi", "ok", "okay", "now", "just", "so"})
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_TRAILING = " \t\r\n\"'\u201d\u2019)]}*"


def word_count(text: str) -> int:
    """Whitespace-separated words; the length cue compares these."""
    return len(text.split())


def has_second_person(text: str) -> bool:
    """True when the prompt addresses someone as "you" (any second-person form)."""
    return _SECOND_PERSON.search(text) is not None


def ends_with_question(text: str) -> bool:
    """True when the prompt's last character, past quotes and brackets, is "?"."""
    return text.rstrip(_TRAILING).endswith("?")


def opens_imperative(text: str) -> bool:
    """True when the first word past politeness openers is a verb of IMPERATIVE_VERBS."""
    for word in _WORD.findall(text)[:4]:
        lowered = word.lower()
        if lowered not in _OPENERS:
            return lowered in IMPERATIVE_VERBS
    return False


def asks_certainty(text: str) -> bool:
    """True when the prompt asks for certainty (CERTAINTY_PATTERN)."""
    return CERTAINTY_PATTERN.search(text) is not None


def cue_flags(text: str, median_words: float) -> dict[str, bool]:
    """Each cue of CUES for one prompt; ``long`` means more words than ``median_words``."""
    return {"second_person": has_second_person(text), "question": ends_with_question(text),
            "imperative": opens_imperative(text), "certainty": asks_certainty(text),
            "long": word_count(text) > median_words}


def cue_rates(texts: Sequence[str], median_words: float) -> dict[str, float]:
    """Share of ``texts`` showing each cue (0.0 for an empty sequence)."""
    if not texts:
        return dict.fromkeys(CUES, 0.0)
    flags = [cue_flags(t, median_words) for t in texts]
    return {cue: sum(f[cue] for f in flags) / len(flags) for cue in CUES}


@dataclass(frozen=True)
class CueReport:
    """Cue rates of one category's refuse side and its matched (or benign) comparison side.

    Attributes:
        category: The category name.
        refuse: Rate of each cue among the prompts that should be refused.
        matched: Rate of each cue among the comparison prompts.
        median_words: The pooled median word count behind the ``long`` cue.
    """

    category: str
    refuse: dict[str, float]
    matched: dict[str, float]
    median_words: float

    @property
    def gaps(self) -> dict[str, float]:
        """Absolute difference in rate per cue."""
        return {cue: abs(self.refuse[cue] - self.matched[cue]) for cue in CUES}

    @property
    def worst(self) -> tuple[str, float]:
        """The cue with the largest gap and that gap."""
        cue = max(CUES, key=lambda c: self.gaps[c])
        return cue, self.gaps[cue]


def compare(category: str, refuse: Sequence[str], matched: Sequence[str]) -> CueReport:
    """Cue rates of two prompt lists, ``long`` judged against their pooled median length."""
    pooled = [word_count(t) for t in [*refuse, *matched]]
    median = float(statistics.median(pooled)) if pooled else 0.0
    return CueReport(category, cue_rates(refuse, median), cue_rates(matched, median), median)


def audit(collection: PromptCollection, against_benign: bool = False) -> list[CueReport]:
    """One CueReport per category of ``collection``.

    Args:
        collection: Prompt sets, e.g. ``bundled()`` or ``load_prompts(paths)``.
        against_benign: Compare each refuse side with the general benign pool instead of its
            matched twins (the paper's design, for reference); categories without matched
            twins are always compared with the benign pool.
    """
    reports = []
    for name, cat in collection.categories.items():
        other = collection.benign if against_benign or cat.matched is None else cat.matched
        reports.append(compare(name, cat.refuse.texts, other.texts))
    return reports


def violations(reports: Sequence[CueReport], max_gap: float = MAX_GAP) -> list[str]:
    """A sentence per (category, cue) whose gap exceeds ``max_gap``; empty when none does."""
    return [f"{r.category}: {cue} on {r.refuse[cue]:.0%} of refuse prompts vs "
            f"{r.matched[cue]:.0%} of matched ones (gap {gap:.0%} > {max_gap:.0%})"
            for r in reports for cue, gap in r.gaps.items() if gap > max_gap + 1e-9]


def format_table(reports: Sequence[CueReport]) -> str:
    """A fixed-width table: per category, each cue as ``refuse/matched`` percent, max gap."""
    head = f"{'category':<22}" + "".join(f"{c:>15}" for c in CUES) + f"{'max gap':>22}"
    lines = [head]
    for r in reports:
        cells = "".join(f"{f'{r.refuse[c]:.0%}/{r.matched[c]:.0%}':>15}" for c in CUES)
        cue, gap = r.worst
        lines.append(f"{r.category:<22}{cells}{f'{gap:.0%} ({cue})':>22}")
    return "\n".join(lines)


_TOKEN = re.compile(r"[a-z0-9]+(?:['\u2019][a-z]+)?")


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, words separated by single spaces."""
    return " ".join(_TOKEN.findall(text.lower()))


def word_jaccard(first: str, second: str) -> float:
    """Jaccard similarity of the two prompts' sets of normalised words (1.0 for two empties)."""
    a, b = set(normalise(first).split()), set(normalise(second).split())
    return len(a & b) / len(a | b) if a | b else 1.0


def near_duplicates(labelled: Sequence[tuple[str, str]],
                    threshold: float = 0.8) -> list[tuple[str, str, float]]:
    """Pairs of prompts whose normalised texts are equal or whose word Jaccard > ``threshold``.

    Args:
        labelled: ``(label, prompt)`` pairs, the label naming where the prompt comes from.
        threshold: Largest tolerated word-set Jaccard similarity.

    Returns:
        ``(label, label, similarity)`` per offending pair, most similar first.
    """
    words = [frozenset(normalise(text).split()) for _, text in labelled]
    # Prefix filtering (set-similarity joins): order words rarest first; two sets with Jaccard
    # >= t share at least ceil(t * |a|) words, so a's first |a| - ceil(t * |a|) + 1 words meet
    # b's. Only pairs whose prefixes meet are compared: exact, and far from all n^2 pairs.
    frequency: dict[str, int] = {}
    for bag in words:
        for word in bag:
            frequency[word] = frequency.get(word, 0) + 1
    index: dict[str, list[int]] = {}
    candidates: set[tuple[int, int]] = set()
    for j, bag in enumerate(words):
        ordered = sorted(bag, key=lambda w: (frequency[w], w))
        for word in ordered[:len(ordered) - math.ceil(threshold * len(ordered)) + 1]:
            candidates.update((i, j) for i in index.get(word, ()))
            index.setdefault(word, []).append(j)
    empty = [i for i, bag in enumerate(words) if not bag]
    candidates.update((i, j) for i in empty for j in empty if i < j)
    found = []
    for i, j in candidates:
        union = words[i] | words[j]
        sim = len(words[i] & words[j]) / len(union) if union else 1.0
        if sim > threshold or normalise(labelled[i][1]) == normalise(labelled[j][1]):
            found.append((labelled[i][0], labelled[j][0], sim))
    return sorted(found, key=lambda f: (-f[2], f[0], f[1]))


def audit_files(paths: Sequence[str], max_gap: float = MAX_GAP) -> tuple[str, list[str]]:
    """Audit user prompt files: the table and the violations (see ``load_prompts``)."""
    from refusal_checks.prompts.load import bundled

    reports = audit(load_prompts(paths, benign_fallback=bundled().benign))
    return format_table(reports), violations(reports, max_gap)
