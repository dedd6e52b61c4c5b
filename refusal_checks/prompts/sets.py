"""Prompt sets as data: :class:`PromptSet`, one category's sets, and a whole collection.

A PromptSet is plain data with a content digest, so caches and reports can name exactly
which prompts a number rests on. A prompt budget (``head``) is a stratified take over
sub-genres, not the file's first rows, because prompt files are written in topic blocks;
``split`` gives deterministic train/test halves. Reading them from files is
:mod:`refusal_checks.prompts.load`. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from refusal_checks.prompts.strata import stratified_order

SIDES: tuple[str, ...] = ("refuse", "matched", "benign")
PARTS: tuple[str, ...] = ("train", "test")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class PromptSet:
    """An ordered, immutable set of prompts with a content digest.

    Attributes:
        name: ``"{category}/{side}"`` (e.g. ``"humanizing/refuse"``) or ``"benign"``.
        category: The category, ``"benign"`` for the general benign pool.
        side: One of SIDES.
        texts: The prompts, in file order.
        source: ``"bundled"`` or the file path(s) the prompts came from.
        subgenres: Per prompt, its sub-genre ("" when unknown); empty when none is known.
        topics: Per prompt, its topic, shared by a refuse prompt and its matched twin ("" when
            unknown); empty when none is known. Neither label is part of the digest.
    """

    name: str
    category: str
    side: str
    texts: tuple[str, ...]
    source: str
    subgenres: tuple[str, ...] = field(default=(), repr=False)
    topics: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"PromptSet side {self.side!r} is not one of {', '.join(SIDES)}.")
        object.__setattr__(self, "texts", tuple(self.texts))
        for label in ("subgenres", "topics"):
            values = tuple(getattr(self, label))
            if values and len(values) != len(self.texts):
                raise ValueError(f"PromptSet {label} has {len(values)} entries for "
                                 f"{len(self.texts)} texts; give one per text or none.")
            object.__setattr__(self, label, values)

    @property
    def digest(self) -> str:
        """sha256 hex of canonical JSON ``[name, side, texts]``; the source is left out."""
        return _sha256(_canonical([self.name, self.side, list(self.texts)]))

    def __len__(self) -> int:
        return len(self.texts)

    def _with(self, keep: Sequence[int], name: str | None = None) -> PromptSet:
        """The prompts at indices ``keep`` (in file order), with their labels."""
        keep = sorted(keep)
        def pick(values: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(values[i] for i in keep) if values else ()
        return PromptSet(name or self.name, self.category, self.side, pick(self.texts),
                         self.source, pick(self.subgenres), pick(self.topics))

    def head(self, n: int | None) -> PromptSet:
        """A budget of ``n`` prompts covering every sub-genre; ``None`` or ``n >= len`` is self.

        The take is ``stratified_order``'s first ``n``: round-robin over sub-genres, each
        ordered by sha256 of its topic (or text), so a refuse set and its matched twins with
        the same topics keep the same topics. Deterministic; the result keeps file order.
        """
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"Prompt budget must be at least 1 or None (all), got {n}.")
        return self._with(stratified_order(self.texts, self.subgenres, self.topics)[:n])

    def without(self, other: PromptSet) -> PromptSet:
        """The prompts of this set that are not in ``other``, with their labels, in order."""
        drop = set(other.texts)
        return self._with([i for i, t in enumerate(self.texts) if t not in drop])

    def split(self, part: str) -> PromptSet:
        """Deterministic half for ``part`` in PARTS, named ``"{name}/{part}"``.

        Prompts are ranked by sha256(text) (ties by position); even ranks go to train, odd
        to test; each half keeps the original order. Depends on the texts only.
        """
        if part not in PARTS:
            raise ValueError(f"split part {part!r} is not one of {', '.join(PARTS)}.")
        order = sorted(range(len(self)), key=lambda i: (_sha256(self.texts[i]), i))
        keep = [i for rank, i in enumerate(order) if rank % 2 == PARTS.index(part)]
        return self._with(keep, f"{self.name}/{part}")

    def sample(self, n: int, rng_seed: int) -> PromptSet:
        """``n`` prompts drawn without replacement with ``random.Random(rng_seed)``, in order."""
        if not 1 <= n <= len(self):
            raise ValueError(f"Cannot sample {n} prompts from {self.name!r}, which has {len(self)}; "
                             f"ask for between 1 and {len(self)}.")
        return self._with(random.Random(rng_seed).sample(range(len(self)), n))


@dataclass(frozen=True)
class CategoryPrompts:
    """One category's prompts that should be refused and, if any, its benign control."""

    category: str
    refuse: PromptSet
    matched: PromptSet | None  # genre-matched benign look-alikes; None when a source has none


@dataclass(frozen=True)
class PromptCollection:
    """Categories (in insertion order) plus the general benign pool."""

    categories: dict[str, CategoryPrompts]
    benign: PromptSet
    source: str

    def head(self, n: int | None) -> PromptCollection:
        """Apply the prompt budget ``n`` to every set."""
        cats = {name: CategoryPrompts(name, c.refuse.head(n), c.matched and c.matched.head(n))
                for name, c in self.categories.items()}
        return PromptCollection(cats, self.benign.head(n), self.source)

    def only(self, names: Sequence[str]) -> PromptCollection:
        """The named categories, in the order given; unknown names raise ValueError."""
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in self.categories]
        if unknown or not names:
            raise ValueError(f"Unknown categories {unknown!r} in {list(names)!r}. Known: "
                             f"{', '.join(self.categories)}. Choose from these names.")
        return PromptCollection({n: self.categories[n] for n in names}, self.benign, self.source)

    @property
    def digest(self) -> str:
        """sha256 hex over the digests of all sets (categories in order, then benign)."""
        parts = [[name, c.refuse.digest, c.matched.digest if c.matched else None]
                 for name, c in self.categories.items()]
        return _sha256(_canonical([parts, self.benign.digest]))
