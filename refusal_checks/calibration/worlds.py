"""Known-answer worlds: planted synthetic models sampled at the claims' real sample sizes.

A :class:`Design` is one :class:`~refusal_checks.models.synthetic.World` (planted directions,
genre offsets, noise) plus the prompt budget the claims read from it. :func:`evidence`
produces what the claim fixtures produce on a real model: the activations at the
paper's layer and position (:class:`~refusal_checks.measure.activations.LayerView`) and the
model's :class:`~refusal_checks.measure.behaviour.RefusalBehaviour`, through the same library
code (``collect``, ``observe_refusals``). :func:`designs` is a hypothesis strategy over
designs for property tests.

Geometry of these worlds (matters when reading calibration results): by default noise is
isotropic and prompts share nothing but their category's offsets. Real residual streams
have a large component shared by all prompts (it cancels in a difference of means) and
strongly anisotropic prompt-to-prompt variation (it does not cancel: sampling noise
concentrates in a few directions, so cosines fluctuate more at the same split-half
cosine). ``Design.common`` and ``Design.rogue_axes`` add both. In qwen-coder-0.5b at the
paper's layer the top 3 principal axes hold 39-56% of the within-category variance;
isotropic worlds have 3/d_model of it, ``known_answers.ANISOTROPIC`` about 54%.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from refusal_checks.measure.activations import LayerView, collect, paper_layer
from refusal_checks.models.backend import ProgressCallback
from refusal_checks.measure.behaviour import RefusalBehaviour, observe_refusals
from refusal_checks.models.interventions import Ablate, Intervention, Steer, check_for_model
from refusal_checks.prompts.load import CategoryPrompts, PromptCollection, PromptSet
from refusal_checks.models.synthetic import SyntheticBackend, World

# The claims' defaults (--refusal-position, --refusal-seed), from one place.
from refusal_checks.core.defaults import POSITION as DEFAULT_POSITION  # noqa: E402
from refusal_checks.core.defaults import SEED as DEFAULT_SEED  # noqa: E402


@dataclass(frozen=True)
class Design:
    """A planted world and the prompt budget read from it.

    Attributes:
        world: Planted directions (``cos``), refusal ``signal``, ``genre`` offsets, ``noise``.
            ``world.seed`` seeds both the planted directions and every prompt's noise.
        categories: Number of categories (the bundled collection has 11).
        n_refuse: Should-not-comply prompts per category (bundled: 64).
        n_matched: Genre-matched benign prompts per category (bundled: 64).
        n_benign: Prompts in the general benign pool (bundled: 128).
        unstable: How many categories (the first ones) carry extra prompt noise.
        extra_noise: Std of that extra noise per coordinate (added in quadrature).
        common: Norm of a mean vector shared by every prompt (real residual streams have a
            large one; it cancels in a difference of means).
        rogue_axes: Random axes with large prompt-to-prompt variance, shared by all prompts
            (real residual streams have a few "massive" dimensions).
        rogue_noise: Std of each prompt's coordinate along each rogue axis.
        names: Category names (default ``category_00`` ...); behaviour worlds use the
            bundled names so that the Arditi claims find their harmful categories.
        ablation_reach: Fraction of an ablated direction's projection that an Ablate removes
            from the refusal decision (1: all of it; 0.4: the model recomputes 60% of the
            feature downstream, so ablation bypasses less).
        steer_reach: Fraction of a Steer vector's projection that reaches the refusal
            readout (1: all; 0: steering does not move refusal).
        ablation_offset: Added to every prompt's decision score under any Ablate, whatever
            its direction (negative: a brittle model whose refusal breaks under any edit).
        steer_offset: Added to every decision score under any Steer (positive: any large
            perturbation makes the model refuse).
        benign_shift: Benign-pool prompts sit this far on the compliant side of the benign
            readout (the first category's direction), in activations and decisions alike;
            ablating that direction then moves their next-token distribution.
        knob_cos: When set, two planted refusal directions ("knobs") A and B with this
            cosine replace ``world.cos``: the categories in ``knob_b`` refuse along B, all
            others along A. With the harmful probe categories on A and the benign pool read
            along B (``benign_readout``), steering along A moves refusal faster than
            over-refusal and steering along B the reverse: different trade-off paths.
        knob_b: Categories on knob B (only with ``knob_cos``).
        benign_readout: Category whose planted direction decides refusal of benign-pool
            prompts (default: the first category, as in :class:`SyntheticBackend`).
        unablatable: The last ``unablatable`` categories do not read refusal off their own
            direction: under an Ablate their decision is redrawn from fresh prompt noise
            (same refusal rate, different prompts), so ablation lowers nothing there.
        unablatable_offset: Added to those categories' redrawn decisions: their refusal
            rate under ablation becomes ``Phi(signal - T + offset)`` against
            ``Phi(signal - T)`` unedited, a drop planted exactly per category (negative
            offsets lower refusal; ``behaviour.ablation_drop_offset`` solves for a drop).
        markers: ``(category, marker text)`` pairs that replace the style marker a steered
            refusal gets when the category's planted direction is nearest the steering
            vector (``World.style``); e.g. AI-identity categories given moral markers, a
            world where the paper's style families are false.
        unreachable: Categories whose planted direction is made orthogonal to the first
            category's and the benign readout's (Gram-Schmidt, unit norm): steering along
            them moves neither the first category's refusal nor the benign pool's, so no
            strength reaches a target refusal rate on a probe read out there.
        planted_site: ``(layer, position)``: every planted offset (refusal signal, genre,
            benign shift) exists at this site only, the refusal decision is read there, and
            only a Steer at or before its layer moves it. Elsewhere prompts are noise, so
            Arditi et al.'s candidate search has exactly one right answer. None: the signal
            ramps up to the middle layer at every position, decided at (middle, -1).
        template_tokens: Post-instruction positions of the imagined chat template.
        twin_offset: Norm of an offset that only a category's genre-matched twins carry,
            along an axis of the category's own (orthogonal to every planted direction and
            genre): twins that differ from their category in more than refusal (written to
            another template per category), the matched control's blind spot.
        first_core: When set, the first category's planted direction is
            ``first_core * common + sqrt(1 - first_core^2) * own_0`` (the others keep
            ``sqrt(cos)`` on the common axis): its loading on the shared core is
            ``first_core``, the others' ``sqrt(cos)``, exactly (a one-factor cosine matrix).
    """

    world: World = field(default_factory=World)
    categories: int = 11
    n_refuse: int = 64
    n_matched: int = 64
    n_benign: int = 128
    unstable: int = 0
    extra_noise: float = 0.0
    common: float = 0.0
    rogue_axes: int = 0
    rogue_noise: float = 0.0
    names: tuple[str, ...] = ()
    ablation_reach: float = 1.0
    steer_reach: float = 1.0
    ablation_offset: float = 0.0
    steer_offset: float = 0.0
    benign_shift: float = 0.0
    knob_cos: float | None = None
    knob_b: tuple[str, ...] = ()
    benign_readout: str | None = None
    unablatable: int = 0
    unablatable_offset: float = 0.0
    markers: tuple[tuple[str, str], ...] = ()
    unreachable: tuple[str, ...] = ()
    planted_site: tuple[int, int] | None = None
    template_tokens: int = 2
    twin_offset: float = 0.0
    first_core: float | None = None

    def with_seed(self, seed: int) -> Design:
        """The same design with a fresh draw of directions and noise."""
        return replace(self, world=replace(self.world, seed=seed))

    def category_names(self) -> list[str]:
        if self.names:
            return list(self.names[: self.categories])
        return [f"category_{i:02d}" for i in range(self.categories)]


class PlantedBackend(SyntheticBackend):
    """:class:`SyntheticBackend` with the extras of a :class:`Design`.

    * The first ``design.unstable`` categories are noisier: a heterogeneous category (prompts
      that differ a lot from each other) is the realistic way for one direction to be
      unstable; its refused and matched prompts get ``extra_noise`` more noise.
    * Every prompt gets ``common`` along one fixed axis and ``rogue_noise`` times a standard
      normal along each of ``rogue_axes`` fixed random axes: a large shared component and
      anisotropic noise, as in real residual streams.

    * Behaviour extras (``ablation_reach`` ... ``unablatable``) change how interventions act
      on the refusal decision (:meth:`decision_scores`, hence replies and next-token
      log-probabilities); at their defaults decisions are :class:`SyntheticBackend`'s.

    All extras are deterministic per prompt text and world seed, and apply at every layer.
    """

    def __init__(self, design: Design, name: str = "synthetic") -> None:
        world = replace(design.world, categories=max(design.world.categories, design.categories))
        super().__init__(world, name=name)
        names = design.category_names()
        self.design = design
        self.template_tokens = design.template_tokens
        self._unstable = set(design.category_names()[: design.unstable])
        if design.knob_cos is not None:
            # The same planted basis as SyntheticBackend: its common axis and first own axis.
            basis, _ = np.linalg.qr(np.random.default_rng(world.seed).standard_normal(
                (world.d, 2 * world.categories + 2)))
            a = basis[:, 0]
            b = design.knob_cos * a + np.sqrt(1.0 - design.knob_cos ** 2) * basis[:, 1]
            on_b = set(design.knob_b)
            self.directions = np.array([b if i < len(names) and names[i] in on_b else a
                                        for i in range(world.categories)])
        if design.first_core is not None:
            if not 0.0 <= design.first_core <= 1.0:
                raise ValueError(f"first_core must lie in [0, 1], got {design.first_core!r}")
            basis, _ = np.linalg.qr(np.random.default_rng(world.seed).standard_normal(
                (world.d, 2 * world.categories + 2)))  # SyntheticBackend's planted basis
            self.directions = np.array(self.directions)
            self.directions[0] = (design.first_core * basis[:, 0]
                                  + np.sqrt(1.0 - design.first_core ** 2) * basis[:, 1])
        if design.unreachable:
            unknown = [n for n in design.unreachable if n not in names]
            if unknown:
                raise ValueError(f"unreachable categories {unknown} are not among the "
                                 f"design's categories: {', '.join(names)}.")
            readout = names.index(design.benign_readout) if design.benign_readout else 0
            self.directions = np.array(self.directions)
            kept, _ = np.linalg.qr(self.directions[[0, readout]].T)
            for name in design.unreachable:
                v = self.directions[names.index(name)]
                v = v - kept @ (kept.T @ v)
                self.directions[names.index(name)] = v / np.linalg.norm(v)
        rng = np.random.default_rng([world.seed, 1])
        axes = rng.standard_normal((1 + design.rogue_axes, world.d))
        # The shared mean stays off the planted refusal directions, so that generate()
        # (which thresholds the projection on them) still reflects refusal only.
        span, _ = np.linalg.qr(self.directions.T)
        axes[0] -= span @ (span.T @ axes[0])
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        self.common_axis, self.rogue = axes[0], axes[1:]  # (d,), (rogue_axes, d)
        # Per-category twin axes off the planted basis (their own stream: nothing else moves).
        twins = np.random.default_rng([world.seed, 2]).standard_normal((len(names), world.d))
        planted, _ = np.linalg.qr(np.vstack([self.directions, self.genres]).T)
        twins -= (twins @ planted) @ planted.T
        self.twin_axes = dict(zip(names, twins / np.linalg.norm(twins, axis=1, keepdims=True)))
        for name in names:  # slots in collection order, as the claim fixtures assign them
            self.slot(name)
        self._unablatable = set(names[len(names) - design.unablatable:]) \
            if design.unablatable else set()
        if design.benign_readout is not None and design.benign_readout not in names:
            raise ValueError(f"benign_readout {design.benign_readout!r} is not one of the "
                             f"design's categories: {', '.join(names)}.")
        self.benign_readout = self.directions[
            names.index(design.benign_readout) if design.benign_readout else 0]

    def _marker(self, slot: int) -> str:
        name = next(name for name, s in self._slots.items() if s == slot)
        return dict(self.design.markers).get(name) or super()._marker(slot)

    def _ramp(self, layers: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        site = self.design.planted_site
        if site is None:
            return super()._ramp(layers, positions)
        return np.array([[float(layer == site[0] and position == site[1])
                          for position in positions] for layer in layers])

    def decision_site(self) -> tuple[int, int]:
        site = self.design.planted_site
        return super().decision_site() if site is None else (int(site[0]), int(site[1]))

    def _extra(self, text: str, shape: tuple[int, ...], noisy: bool) -> np.ndarray:
        key = f"extra|{self.world.seed}|{text}".encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        d = self.design
        out = np.broadcast_to(d.common * self.common_axis, shape).copy()
        if d.rogue_axes:
            out += d.rogue_noise * rng.standard_normal(shape[:-1] + (d.rogue_axes,)) @ self.rogue
        if noisy:
            out += d.extra_noise * rng.standard_normal(shape)
        return out

    def residual_stream(self, prompts: PromptSet, layers: Sequence[int],
                        positions: Sequence[int], *, batch_size: int = 16,
                        progress: ProgressCallback | None = None) -> np.ndarray:
        out = super().residual_stream(prompts, layers, positions, batch_size=batch_size,
                                      progress=progress)
        d = self.design
        noisy = prompts.side != "benign" and prompts.category in self._unstable
        if prompts.side == "benign" and d.benign_shift:
            ramp = self._ramp(layers, positions)[:, :, None]
            out -= (d.benign_shift * ramp * self.benign_readout).astype(out.dtype)
        if prompts.side == "matched" and d.twin_offset:
            ramp = self._ramp(layers, positions)[:, :, None]
            out += (d.twin_offset * ramp * self.twin_axes[prompts.category]).astype(out.dtype)
        if not (noisy or d.common or d.rogue_axes):
            return out
        for i, text in enumerate(prompts.texts):
            out[i] += self._extra(text, out.shape[1:], noisy)
        return out

    def decision_scores(self, prompts: PromptSet,
                        intervention: Intervention | None = None) -> np.ndarray:
        """:meth:`SyntheticBackend.decision_scores` with the design's behaviour extras."""
        check_for_model(intervention, self.d_model, self.n_layers)
        d = self.design
        mid, position = self.decision_site()
        readout = self.benign_readout if prompts.side == "benign" else self.readout(prompts)
        acts = self.residual_stream(prompts, [mid], [position])[:, 0, 0, :].astype(np.float64)
        score = acts @ readout
        if isinstance(intervention, Steer) and intervention.layer <= mid:
            score = score + d.steer_reach * float(intervention.vector @ readout) + d.steer_offset
        elif isinstance(intervention, Ablate):
            if prompts.side != "benign" and prompts.category in self._unablatable:
                fresh = replace(prompts, texts=tuple(f"{t}|redrawn" for t in prompts.texts))
                acts = self.residual_stream(fresh, [mid], [position])[:, 0, 0, :].astype(
                    np.float64)
                score = acts @ readout + d.unablatable_offset
            else:
                u = intervention.direction
                score = score - d.ablation_reach * (acts @ u) * float(u @ readout)
            score = score + d.ablation_offset
        return score


def collection(design: Design) -> PromptCollection:
    """Placeholder prompts in the shape of the bundled collection (texts only seed noise)."""

    def prompts(category: str, side: str, n: int) -> PromptSet:
        texts = tuple(f"{category} {side} prompt {i}" for i in range(n))
        return PromptSet(f"{category}/{side}", category, side, texts, "planted world")

    categories = {
        name: CategoryPrompts(name, prompts(name, "refuse", design.n_refuse),
                              prompts(name, "matched", design.n_matched) if design.n_matched
                              else None)
        for name in design.category_names()
    }
    return PromptCollection(categories, prompts("benign", "benign", design.n_benign),
                            "planted world")


def evidence(design: Design, *, seed: int = DEFAULT_SEED,
             position: int = DEFAULT_POSITION) -> tuple[LayerView, RefusalBehaviour]:
    """What the claim fixtures would hold for this world's model.

    Activations of every prompt set at the paper's layer (``layer_activations``) and the
    refusal counts of :func:`observe_refusals` (``refusal_behaviour``), without a cache.
    """
    backend = PlantedBackend(design)
    prompts = collection(design)
    acts = collect(backend, prompts, position=position, cache=None).at_layer(
        paper_layer(backend.n_layers))
    return acts, observe_refusals(backend, prompts, seed=seed, cache=None)


def refusals(design: Design, side: str = "refuse") -> dict[str, np.ndarray]:
    """The judge's verdict on this world's model's reply to every should-refuse prompt
    (``side="matched"``: to every genre-matched benign prompt).

    What the ``behaviour_directions`` and ``oracle_inputs`` fixtures ask through
    ``measure``: unsteered greedy replies of ``behaviour_control.REPLY_TOKENS`` tokens,
    judged by the substring judge, through the same
    :func:`~refusal_checks.measure.effects.judged` (without a cache).
    """
    from refusal_checks.measure.behaviour_control import REPLY_TOKENS
    from refusal_checks.measure.effects import judged
    from refusal_checks.judges.base import SubstringJudge

    backend, judge = PlantedBackend(design), SubstringJudge()
    sets = {name: category.refuse if side == "refuse" else category.matched
            for name, category in collection(design).categories.items()}
    return {name: judged(backend, prompts, judge, None, None, max_new_tokens=REPLY_TOKENS)[0]
            for name, prompts in sets.items() if prompts is not None}


def designs(*, categories: tuple[int, int] = (3, 11), n_prompts: tuple[int, int] = (16, 64),
            cos: Any = None, signal: Any = None, genre: Any = None,
            noise: Any = None, d: tuple[int, int] = (24, 96)) -> Any:
    """Hypothesis strategy over :class:`Design` (hypothesis is imported only when called).

    ``categories`` and ``n_prompts`` are inclusive ranges (one ``n`` for refused and matched
    prompts, twice that for the benign pool). ``cos``, ``signal``, ``genre`` and ``noise``
    take a strategy or a fixed number; by default cos in [0, 1], signal in [2, 6],
    genre in [0, 6], noise in [0.5, 2]. ``d`` is raised to the ``2 k + 2`` the planted
    basis needs.
    """
    from hypothesis import strategies as st

    def strategy(value: Any, lo: float, hi: float) -> Any:
        if value is None:
            return st.floats(lo, hi, allow_nan=False)
        return value if hasattr(value, "example") else st.just(float(value))

    @st.composite
    def build(draw: Any) -> Design:
        k = draw(st.integers(*categories))
        n = draw(st.integers(*n_prompts))
        width = draw(st.integers(max(d[0], 2 * k + 2), max(d[1], 2 * k + 2)))
        world = World(cos=draw(strategy(cos, 0.0, 1.0)), signal=draw(strategy(signal, 2.0, 6.0)),
                      genre=draw(strategy(genre, 0.0, 6.0)),
                      noise=draw(strategy(noise, 0.5, 2.0)), d=width, categories=k,
                      seed=draw(st.integers(0, 2**31 - 1)))
        return Design(world, categories=k, n_refuse=n, n_matched=n, n_benign=2 * n)

    return build()


