"""Synthetic worlds with planted ground truth, behind the same Backend protocol.

A world plants one refusal direction per category with a chosen pairwise cosine, a
per-category "genre" offset shared by the category's refused and genre-matched prompts
(the confound of PAPER.md), and Gaussian noise. Because the truth is known, a claim's
verdict on a world can be checked: ``--model synthetic:shared`` must never make
"categories stay distinct under the genre-matched control" SUPPORTED. Against the general
benign pool the same world *does* look distinct, because each category's genre offset
leaks into its direction: that is the confound of the paper's design, planted on purpose.

Spec syntax: ``synthetic:<preset>[,key=value...]``, e.g. ``synthetic:distinct,cos=0.2,d=64``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from refusal_checks.models.reply_tokens import ReplyTokens
from refusal_checks.models.backend import (BackendError, FirstLogprobs, ProgressCallback, check_layers,
                                    check_positions)
from refusal_checks.models.interventions import Ablate, Intervention, Steer, check_for_model
from refusal_checks.prompts.load import PromptSet

PRESETS: dict[str, dict[str, float]] = {
    # Categories share one refusal direction: "refusal is a single direction".
    "shared": {"cos": 1.0},
    # Distinct but related directions, like the paper's mean cosine 0.55.
    "distinct": {"cos": 0.5},
    # Unrelated directions.
    "orthogonal": {"cos": 0.0},
    # No refusal signal at all: a model that never refuses.
    "null": {"cos": 1.0, "signal": 0.0},
}


@dataclass(frozen=True)
class World:
    """Parameters of a planted world.

    Attributes:
        cos: Pairwise cosine between the categories' planted refusal directions.
        signal: Norm of the refusal shift on refused prompts (noise has std 1 per unit).
        genre: Norm of the per-category genre offset (shared with the matched control).
        noise: Per-coordinate noise std.
        d: Residual width.
        layers: Number of blocks; the signal grows to full strength by the middle layer.
        seed: Seed of the planted directions.
        style: Share of steered refusals that carry the style marker of the planted
            direction nearest to the steering vector (0: every direction refuses alike).
        spread: Std of a per-prompt refusal strength along the category's planted
            direction (should-refuse prompts only): prompts differ in how strongly they
            call for refusal, so each has its own refusal probability, and the prompts a
            model refuses differ from those it answers along the refusal direction, not
            in genre (the behaviour-matched control reads exactly that).
        over_spread: Std of a per-prompt refusal strength of genre-matched benign prompts
            along their category's over-refusal axis, which also decides their refusal:
            0 (default) leaves them at the base rate (~2%), 3 makes ~26% of them refused.
        over_cos: Cosine of each category's over-refusal axis with its planted refusal
            direction (1: benign prompts are over-refused along the refusal direction
            itself; 0: along an axis orthogonal to every planted direction and genre).
    """

    cos: float = 0.5
    signal: float = 4.0
    genre: float = 4.0
    noise: float = 1.0
    d: int = 64
    layers: int = 8
    seed: int = 0
    categories: int = 16  # room for this many distinct categories
    style: float = 0.0
    spread: float = 0.0
    over_spread: float = 0.0
    over_cos: float = 1.0

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_spec(spec: str) -> World:
    """``"distinct,cos=0.3,d=32"`` -> World. Errors list presets and keys."""
    head, *pairs = [part.strip() for part in spec.split(",")] if spec else ["distinct"]
    values: dict[str, float] = {}
    if head and "=" not in head:
        if head not in PRESETS:
            raise BackendError(
                f"synthetic preset {head!r} is unknown. Presets: {', '.join(PRESETS)}; "
                "e.g. --model synthetic:distinct,cos=0.3"
            )
        values.update(PRESETS[head])
    elif head:
        pairs.insert(0, head)
    names = {f.name: f.type for f in fields(World)}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in names:
            raise BackendError(
                f"synthetic spec part {pair!r} is not key=value with a known key. "
                f"Keys: {', '.join(names)}."
            )
        try:
            values[key] = float(raw)
        except ValueError:
            raise BackendError(f"synthetic spec {key}={raw!r} is not a number.") from None
    world = World()
    cast = {k: (int(v) if names[k] in ("int", int) else v) for k, v in values.items()}
    world = replace(world, **cast)
    if world.categories < 2:
        raise BackendError(f"synthetic categories={world.categories} is too small; need >= 2.")
    if not -1.0 / (world.categories - 1) <= world.cos <= 1.0:
        raise BackendError(f"synthetic cos={world.cos} is outside [-1/(k-1), 1].")
    if world.d < 2 * world.categories + 2:  # checked here so the plugin reports it at start
        raise BackendError(f"synthetic d={world.d} is too small; need d >= "
                           f"{2 * world.categories + 2} (2 x categories + 2).")
    return world


class SyntheticBackend:
    """Backend over a planted :class:`World` (deterministic per prompt text)."""

    dtype = "float64->float32"

    def __init__(self, world: World, name: str = "synthetic") -> None:
        self.world = world
        self.name = name
        self.n_layers = world.layers
        self.d_model = world.d
        self.fingerprint = "synthetic:" + hashlib.sha256(world.canonical().encode()).hexdigest()
        self.info = {"source": "synthetic", "world": world.canonical()}
        rng = np.random.default_rng(world.seed)
        k = world.categories
        # Orthonormal basis: one common axis, k own axes, k + 1 genre axes.
        need = 2 * k + 2
        if world.d < need:
            raise BackendError(f"synthetic d={world.d} is too small; need d >= {need}.")
        basis, _ = np.linalg.qr(rng.standard_normal((world.d, need)))
        common, own, genres = basis[:, 0], basis[:, 1 : k + 1], basis[:, k + 1 :]
        # r_c = sqrt(cos) common + sqrt(1 - cos) own_c has unit norm and pairwise cosine cos.
        c = max(world.cos, 0.0)
        self.directions = (np.sqrt(c) * common[:, None] + np.sqrt(1 - c) * own).T  # (k, d)
        if world.cos < 0:  # a simplex: mean-centred orthonormal vectors
            centred = own - own.mean(axis=1, keepdims=True)
            self.directions = (centred / np.linalg.norm(centred, axis=0)).T
        self.genres = genres.T  # (k + 1, d); the last is the general benign pool's genre
        # Over-refusal axes: over_cos r_c + sqrt(1 - over_cos^2) e, with e a unit vector off
        # every planted direction and genre (its own stream, so other draws are unchanged).
        e = np.random.default_rng([world.seed, 7]).standard_normal(world.d)
        e -= basis @ (basis.T @ e)
        e /= max(float(np.linalg.norm(e)), 1e-12)  # d == 2k + 2 leaves no room: e = 0
        oc = float(np.clip(world.over_cos, -1.0, 1.0))
        self.over_axes = oc * self.directions + np.sqrt(1.0 - oc ** 2) * e  # (k, d)
        self._slots: dict[str, int] = {}

    @classmethod
    def from_spec(cls, spec: str, name: str = "synthetic") -> "SyntheticBackend":
        return cls(parse_spec(spec), name=name)

    def slot(self, category: str) -> int:
        """Each category name gets its own planted direction, in order of first use."""
        if category not in self._slots:
            if len(self._slots) >= self.world.categories:
                raise BackendError(
                    f"synthetic world holds {self.world.categories} categories; raise "
                    "categories=... in the spec."
                )
            self._slots[category] = len(self._slots)
        return self._slots[category]

    def plant(self, categories: Sequence[str]) -> None:
        """Give these categories their planted directions, in this order, before any use.

        Slots otherwise follow the order of first use, which differs between a serial run
        and each pytest-xdist worker (or a run of a few tests), and so would the numbers.
        """
        for category in categories:
            self.slot(category)

    # Tokens of the (imagined) chat template after the user's message: the post-instruction
    # positions of Arditi et al.'s candidate search (refusal_checks.measure.selection).
    template_tokens = 2

    def post_instruction_positions(self, texts: Sequence[str] = ()) -> list[int]:
        """``[-template_tokens, ..., -1]``: a synthetic prompt ends in its template."""
        return list(range(-self.template_tokens, 0))

    def _ramp(self, layers: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """``(layer, position)`` share of the planted offsets present there: the refusal
        signal builds up to full strength by the middle layer, at every position."""
        ramp = np.minimum(1.0, (np.asarray(layers) + 1) / max(1, self.world.layers // 2))
        return np.repeat(ramp[:, None], len(positions), axis=1)

    def decision_site(self) -> tuple[int, int]:
        """(layer, position) whose activation decides refusal: the middle layer, last token."""
        return self.n_layers // 2, -1

    def use_system_prompt(self, value: str | None) -> None:
        """A planted world reads no chat template: only the default is accepted."""
        if value not in (None, "default"):
            raise BackendError(
                f"--refusal-system-prompt {value!r}: {self.name} is a synthetic world with no "
                "chat template to put a system prompt in. Leave the option out (or pass "
                "'default') for synthetic models.")

    def input_digest(self, prompts: PromptSet) -> str:
        # The slot is part of what the world computes for a category: a cache shared by
        # runs that assigned slots differently must never mix their activations.
        slot = None if prompts.side == "benign" else self.slot(prompts.category)
        payload = [prompts.category, prompts.side, list(prompts.texts), slot]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def residual_stream(
        self,
        prompts: PromptSet,
        layers: Sequence[int],
        positions: Sequence[int],
        *,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        layers = check_layers(layers, self.n_layers, self.name)
        positions = check_positions(positions)
        w = self.world
        strength = None
        if prompts.side == "benign":
            offset = w.genre * self.genres[-1]
        else:
            slot = self.slot(prompts.category)
            offset = w.genre * self.genres[slot]
            if prompts.side == "refuse":
                offset = offset + w.signal * self.directions[slot]
                if w.spread:
                    strength = w.spread * self.directions[slot]
            elif w.over_spread:  # a genre-matched benign look-alike, over-refused at times
                strength = w.over_spread * self.over_axes[slot]
        ramp = self._ramp(layers, positions)[:, :, None]  # (layer, position, 1)
        out = np.empty((len(prompts), len(layers), len(positions), w.d), np.float32)
        for i, text in enumerate(prompts.texts):
            seed = int.from_bytes(hashlib.sha256(f"{w.seed}|{text}".encode()).digest()[:8], "big")
            noise = np.random.default_rng(seed).standard_normal((len(layers), len(positions), w.d))
            out[i] = ramp * offset + w.noise * noise
            if strength is not None:  # this prompt's own refusal strength, same at every site
                key = hashlib.sha256(f"{w.seed}|spread|{text}".encode()).digest()[:8]
                z = np.random.default_rng(int.from_bytes(key, "big")).standard_normal()
                out[i] += ramp * (z * strength)
            if progress is not None and (i + 1) % batch_size == 0:
                progress(i + 1, len(prompts))
        if progress is not None:
            progress(len(prompts), len(prompts))
        return out

    # Planted behaviour: a prompt is refused when its mid-layer activation projects onto
    # its category's planted direction beyond REFUSAL_THRESHOLD (in noise units); prompts
    # of the general benign pool are read out along the first category's direction.
    # Interventions act on that activation as they would in a model: a Steer at or before
    # the middle layer adds its vector, an Ablate projects its direction out.
    REFUSAL_THRESHOLD = 2.0
    REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
    # Refusals vary with the prompt (one of three openings); steered refusals may add the
    # marker of the planted direction the steering vector is closest to (World.style).
    REFUSAL_OPENINGS = (REFUSAL_TEXT, "I'm sorry, I cannot assist with that.",
                        "I am sorry, but I can't do that.")
    STYLE_MARKERS = (
        "As an AI, I have no body or feelings.",
        "That would be illegal and unethical.",
        "Could you clarify what you mean?",
        "I am not a doctor; please consult a professional.",
        "If you are in crisis, please reach out to a helpline.",
        "I have no access to real-time information.",
        "Such content is hateful and offensive.",
        "Nobody can know that for certain.",
        "This request is against my guidelines.",
        "I am just a text-based model.",
        "Violence is never the answer.",
        "Please respect the law.",
        "That topic is not appropriate.",
        "Maybe ask a qualified expert.",
        "I would need more context.",
        "Let's talk about something else.",
    )
    COMPLY_TEXT = "Sure! Here is a detailed answer to your question."

    def decision_scores(self, prompts: PromptSet,
                        intervention: Intervention | None = None) -> np.ndarray:
        """Projection that decides refusal, ``(prompt,)``; > REFUSAL_THRESHOLD refuses."""
        check_for_model(intervention, self.d_model, self.n_layers)
        mid, position = self.decision_site()
        acts = self.residual_stream(prompts, [mid], [position])[:, 0, 0, :].astype(np.float64)
        if isinstance(intervention, Steer) and intervention.layer <= mid:
            acts = acts + intervention.vector
        elif isinstance(intervention, Ablate):
            acts = acts - np.outer(acts @ intervention.direction, intervention.direction)
        return acts @ self.readout(prompts)

    def readout(self, prompts: PromptSet) -> np.ndarray:
        """The direction whose projection decides refusal of these prompts: the first
        category's for the general benign pool, the over-refusal axis for matched prompts
        when ``over_spread`` is set, else the category's planted direction."""
        if prompts.side == "benign":
            return self.directions[0]
        slot = self.slot(prompts.category)
        if prompts.side == "matched" and self.world.over_spread:
            return self.over_axes[slot]
        return self.directions[slot]

    def _style_slot(self, intervention: Intervention | None) -> int | None:
        """Slot of the used planted direction nearest the steering vector (None unsteered)."""
        if not isinstance(intervention, Steer) or not self._slots:
            return None
        slots = sorted(self._slots.values())
        cosines = self.directions[slots] @ intervention.vector
        return slots[int(np.argmax(cosines))]

    # Bundled categories get the marker of their family in PAPER.md A.4, so the style
    # families claim has a planted answer too; other categories get one marker per slot.
    PAPER_MARKERS = {
        "humanizing": STYLE_MARKERS[0], "unsupported": STYLE_MARKERS[5],
        "indeterminate": STYLE_MARKERS[9], "safety_core": STYLE_MARKERS[1],
        "crime_assistance": STYLE_MARKERS[11], "hate_speech": STYLE_MARKERS[6],
    }

    def _marker(self, slot: int) -> str:
        name = next(name for name, s in self._slots.items() if s == slot)
        return self.PAPER_MARKERS.get(name, self.STYLE_MARKERS[slot % len(self.STYLE_MARKERS)])

    def _uniform(self, key: str) -> float:
        digest = hashlib.sha256(f"{self.world.seed}|{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0 ** 64

    def refusal_token_ids(self, openings: Sequence[str] | None = None) -> list[int]:
        """Token 0 stands for a refusal opening, token 1 for a compliant one."""
        return [0]

    def last_logprobs(
        self,
        prompts: PromptSet,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """A two-token vocabulary: ``p(refusal) = sigmoid(2 (score - threshold))``."""
        logits = 2.0 * (self.decision_scores(prompts, intervention) - self.REFUSAL_THRESHOLD)
        log_refuse = -np.logaddexp(0.0, -logits)
        log_comply = -np.logaddexp(0.0, logits)
        if progress is not None:
            progress(len(prompts), len(prompts))
        return np.stack([log_refuse, log_comply], axis=1).astype(np.float32)

    def generate(
        self,
        prompts: PromptSet,
        max_new_tokens: int,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
        first_logprobs: FirstLogprobs | None = None,
        reply_tokens: ReplyTokens | None = None,
    ) -> list[str]:
        # reply_tokens: ignored; a planted world writes text, not tokens (models.backend).
        if first_logprobs is not None:  # what the "prompt pass" gives: last_logprobs
            first_logprobs(list(prompts.texts),
                           self.last_logprobs(prompts, intervention=intervention))
        scores = self.decision_scores(prompts, intervention)
        marker = self._style_slot(intervention)
        replies = []
        for text, score in zip(prompts.texts, scores):
            if score <= self.REFUSAL_THRESHOLD:
                replies.append(self.COMPLY_TEXT)
                continue
            draw = self._uniform(f"style|{text}|{marker}")
            opening = self.REFUSAL_OPENINGS[int(self._uniform(f"opening|{text}") * 3)]
            if marker is not None and draw < self.world.style:
                opening += " " + self._marker(marker)
            replies.append(opening)
        if progress is not None:
            progress(len(prompts), len(prompts))
        return replies
