"""Published values a replication is held against, each with its source and how it differs.

One entry per (model, claim): the number a paper reports for the quantity our claim
estimates, where it reports one, and what differs between their measurement and ours
(judge, prompt set, n, conditioning), so the replication table compares like with like or
says that it does not. Models are matched by the source a run records (``hub:<id>``; the
hub aliases of :data:`refusal_checks.models.registry.HUB_ALIASES` resolve to these), never
by an alias name a user may give to anything.

Arditi et al. (2024) values are from their released pipeline's runs (JailbreakBench,
n=100 harmful; Alpaca, n=100 harmless; refusal judged by substring matching; KL is the
selection filter's next-token KL on harmless validation prompts). Of Joad et al. (2026),
only the mean between-split cosine is one number of one model that one of our statistics
estimates (Gemma-2-9B-it, layer 20 of 42); their steering and ablation rates are per split
and per alpha, their stability range names no model, and they select no direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ARDITI = "Arditi et al. 2024, released pipeline runs (JailbreakBench n=100, Alpaca n=100)"
SUBSTRING = "substring matching on 12 refusal phrases"

# What differs between their measurement and ours, per claim (ours: claims/, docs/claims.md).
BYPASS_DIFFERS = (f"theirs: refusal rate (1 - attack success, {SUBSTRING}) under ablation over "
                  "all 100 JailbreakBench prompts; ours: judged replies, of the held-out "
                  "bundled harmful prompts the model refused unedited")
INDUCE_DIFFERS = (f"theirs: share of 100 Alpaca prompts refused ({SUBSTRING}) with the "
                  "direction added; ours: judged replies, of the held-out bundled benign "
                  "prompts the model answered unedited")
KL_DIFFERS = ("theirs: the selection filter's next-token KL on harmless validation prompts; "
              "ours: mean first-reply-token KL on every held-out bundled benign prompt")


@dataclass(frozen=True)
class Published:
    """One published value.

    Attributes:
        claim: our claim id whose statistic it is set beside.
        value: the published number, on our statistic's scale.
        source: paper, table or run, and what was measured.
        differs: how their measurement differs from ours ("" when it does not).
    """

    claim: str
    value: float
    source: str
    differs: str = ""


@dataclass(frozen=True)
class PublishedModel:
    """A model's published values and Arditi's selected site (layer index of n, position)."""

    model: str  # hub id
    values: tuple[Published, ...]
    site: tuple[int, int, int] | None = None  # (layer, n_layers, position)
    site_source: str = ""


def _arditi(model: str, refused_ablated: float, induced: float, kl: float,
            site: tuple[int, int, int], asr: str) -> PublishedModel:
    return PublishedModel(model, (
        Published("ablation-bypasses-refusal", refused_ablated,
                  f"{ARDITI}: attack success {asr} under ablation", BYPASS_DIFFERS),
        Published("addition-induces-refusal", induced,
                  f"{ARDITI}: harmless prompts refused with the direction added", INDUCE_DIFFERS),
        Published("ablation-keeps-harmless-behaviour", kl,
                  f"{ARDITI}: KL of the selected direction", KL_DIFFERS),
    ), site, f"{ARDITI}: selected direction")


JOAD = "Joad et al. 2026, claim 1 (PAPER.md)"
DISTINCT_DIFFERS = ("theirs: mean raw cosine of the 11 splits' directions (55 pairs), 32/32 "
                    "prompts per split from WildGuardMix, XSTest, CoCoNot and SORRY-Bench; "
                    "ours: mean noise-corrected cosine of the bundled categories' directions")

PUBLISHED: dict[str, PublishedModel] = {
    "hub:google/gemma-2-9b-it": PublishedModel("google/gemma-2-9b-it", (
        Published("distinct-directions-paper-design", 0.55,
                  f"{JOAD}: mean pairwise cosine, Gemma-2-9B-it layer 20, position -2",
                  DISTINCT_DIFFERS),)),
    "hub:Qwen/Qwen-1_8B-chat": _arditi("Qwen/Qwen-1_8B-chat", 0.01, 0.98, 0.066,
                                       (15, 24, -2), "0.30 -> 0.99"),
    "hub:google/gemma-2b-it": _arditi("google/gemma-2b-it", 0.00, 1.00, 0.066,
                                      (10, 18, -2), "0.09 -> 1.00"),
    "hub:meta-llama/Meta-Llama-3-8B-Instruct": _arditi(
        "meta-llama/Meta-Llama-3-8B-Instruct", 0.00, 1.00, 0.059, (12, 32, -5),
        "0.05 -> 1.00"),
}


def identity(info: dict[str, Any]) -> str:
    """The key a model's published values are stored under: the source its run recorded
    (``hub:<id>``), and for a planted world its world too (every one's source is
    ``synthetic``)."""
    source = str(info.get("source", ""))
    return f"{source}:{info['world']}" if source == "synthetic" and "world" in info else source


def published_for(info: dict[str, Any]) -> PublishedModel | None:
    """The published values of the model a run recorded (:func:`identity`), or None."""
    return PUBLISHED.get(identity(info))


def inside(value: float, interval: Any) -> bool | None:
    """Whether ``value`` lies in the closed interval; None when the interval is unknown."""
    try:
        lo, hi = (float(x) for x in interval)
    except (TypeError, ValueError):
        return None
    if lo != lo or hi != hi:  # NaN
        return None
    return lo <= value <= hi
