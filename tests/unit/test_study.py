"""DirectionStudy on planted worlds: the claims' statistics recover what was planted."""

from __future__ import annotations

import numpy as np
import pytest

from refusal_checks.prompts.sets import PromptSet
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.study import study_directions
from refusal_checks.verdicts.geometry import stable_within_category
from refusal_checks.models.synthetic import SyntheticBackend, parse_spec

CATEGORIES = ["a", "b", "c", "d", "e"]


def _acts(world: str, n: int = 48):
    backend = SyntheticBackend.from_spec(world)
    mid = backend.n_layers // 2

    def read(category: str, side: str) -> np.ndarray:
        texts = tuple(f"{category} {side} prompt {i}" for i in range(n))
        prompts = PromptSet(f"{category}/{side}", category, side, texts, "test")
        return backend.residual_stream(prompts, [mid], [-1])[:, 0, 0, :]

    refuse = {c: read(c, "refuse") for c in CATEGORIES}
    matched = {c: read(c, "matched") for c in CATEGORIES}
    benign = read("benign", "benign")
    return refuse, matched, benign


@pytest.mark.parametrize("world, planted", [("shared", 1.0), ("distinct", 0.5),
                                            ("orthogonal", 0.0)])
def test_matched_control_recovers_the_planted_cosine(world, planted):
    refuse, matched, _ = _acts(world)
    study = study_directions(refuse, matched, control="matched", layer=4, seed=1, n_boot=200)
    estimate, (lo, hi) = study.mean_between()
    assert abs(estimate - planted) < 0.1
    assert lo - 0.05 < planted < hi + 0.05


def test_general_pool_confound_makes_a_shared_direction_look_distinct():
    """The paper's weakness, planted: genre offsets differ, refusal direction is shared."""
    refuse, matched, benign = _acts("shared")
    general = study_directions(refuse, benign, control="general", layer=4, seed=1, n_boot=200)
    controlled = study_directions(refuse, matched, control="matched", layer=4, seed=1,
                                  n_boot=200)
    assert general.mean_between()[0] < 0.8
    assert controlled.mean_between()[0] > 0.9
    assert controlled.effective_dimensions()[1][1] < 1.5
    assert general.effective_dimensions()[0] > 1.5


def test_stable_within_category_names_the_noisiest_category_with_its_own_intervals():
    refuse, matched, _ = _acts("distinct")
    rng = np.random.default_rng(0)
    refuse["c"] = refuse["c"] + 6.0 * rng.standard_normal(refuse["c"].shape)
    study = study_directions(refuse, matched, control="matched", layer=4, seed=1, n_boot=50)
    verdict = stable_within_category(study, RefusalBehaviour("substring", 90, 100, 2, 100))
    assert verdict.details["least stable"] == "c"
    assert verdict.estimate == pytest.approx(min(study.reliability().values()))
    lo, hi = verdict.interval
    assert lo <= verdict.estimate <= hi
    iut = verdict.details["iut"]
    # The printed interval is read off the categories' own intervals: the smallest lower
    # end at 95%, the smallest upper end at the Bonferroni level over the 5 categories.
    assert iut["family"] == 5 and iut["bonferroni_level"] == pytest.approx(0.99)
    cells = iut["per_category"]
    assert lo == pytest.approx(min(c["interval"][0] for c in cells.values()), abs=1e-4)
    assert hi == pytest.approx(min(c["bonferroni_interval"][1] for c in cells.values()),
                               abs=1e-4)
    assert cells["c"]["estimate"] == pytest.approx(study.reliability()["c"], abs=1e-4)


def test_synthetic_worlds_are_deterministic_and_validated():
    world = parse_spec("distinct,cos=0.3,d=48,seed=2")
    assert world.cos == 0.3 and world.d == 48 and isinstance(world.d, int)
    a = SyntheticBackend(world)
    b = SyntheticBackend(world)
    prompts = PromptSet("x/refuse", "x", "refuse", ("p1", "p2"), "test")
    assert np.array_equal(a.residual_stream(prompts, [0, 3], [-1]),
                          b.residual_stream(prompts, [0, 3], [-1]))
    planted = a.directions[:3] @ a.directions[:3].T
    assert np.allclose(planted[np.triu_indices(3, 1)], 0.3)


@pytest.mark.parametrize("spec, fragment", [("distinkt", "Presets"), ("cos=abc", "not a number"),
                                            ("shared,width=3", "Keys"), ("d=8", "too small")])
def test_bad_synthetic_specs_say_what_is_allowed(spec, fragment):
    from refusal_checks.errors import BackendError

    with pytest.raises(BackendError, match=fragment):
        SyntheticBackend.from_spec(spec)


def test_null_world_never_refuses_and_shared_world_does():
    refuse = PromptSet("x/refuse", "x", "refuse", tuple(f"p{i}" for i in range(40)), "test")
    null = SyntheticBackend.from_spec("null").generate(refuse, 8)
    shared = SyntheticBackend.from_spec("shared").generate(refuse, 8)
    assert sum("sorry" in r for r in null) <= 4
    assert sum("sorry" in r for r in shared) >= 36
