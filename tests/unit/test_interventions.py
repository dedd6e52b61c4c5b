"""interventions.py: interventions as plain data, their checks, and weight orthogonalisation.

numpy only: nothing here may need torch (see the last test).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refusal_checks.errors import RefusalChecksError
from refusal_checks.models.interventions import (
    Ablate,
    InterventionError,
    Steer,
    check_for_model,
    orthogonalise,
    steer,
)

FAST = settings(max_examples=40, deadline=None, database=None)
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)


def vectors(width: int) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, width, elements=finite)


@st.composite
def directions(draw: st.DrawFn, width: int | None = None) -> np.ndarray:
    """A ``(d_model,)`` vector that is not (numerically) zero."""
    direction = draw(vectors(width if width is not None else draw(st.integers(1, 12))))
    assume(np.linalg.norm(direction) > 1e-3)
    return direction


@st.composite
def weights_and_direction(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(W, r, writes_rows)``: W is ``(d_model, d_in)`` or, as embeddings, ``(vocab, d_model)``."""
    d_model, other = draw(st.integers(1, 10)), draw(st.integers(1, 8))
    writes_rows = draw(st.booleans())
    shape = (other, d_model) if writes_rows else (d_model, other)
    weight = draw(hnp.arrays(np.float64, shape, elements=finite))
    return weight, draw(directions(d_model)), writes_rows


def along(weight: np.ndarray, direction: np.ndarray, writes_rows: bool) -> np.ndarray:
    """What ``weight`` writes along ``r_hat``: one number per written vector."""
    r_hat = direction / np.linalg.norm(direction)
    return weight @ r_hat if writes_rows else r_hat @ weight


# -- steer() ---------------------------------------------------------------------------------
@FAST
@given(directions(), st.floats(-5, 5, allow_nan=False).filter(lambda s: abs(s) > 1e-3),
       st.floats(1e-2, 1e3), st.integers(0, 40))
def test_steer_vector_has_norm_strength_times_reference_and_points_along_the_direction(
    direction: np.ndarray, strength: float, reference_norm: float, layer: int
) -> None:
    s = steer(direction, strength, layer, reference_norm, label="refusal")
    norm = np.linalg.norm(s.vector)
    np.testing.assert_allclose(norm, abs(strength) * reference_norm, rtol=1e-9)
    cosine = s.vector @ direction / (norm * np.linalg.norm(direction))
    np.testing.assert_allclose(cosine, np.sign(strength), atol=1e-9)
    assert (s.layer, s.strength, s.label) == (layer, strength, "refusal")
    np.testing.assert_allclose(s.alpha, strength * reference_norm, rtol=1e-12)


def test_steer_only_uses_the_direction_of_its_input() -> None:
    direction = np.array([3.0, 4.0, 0.0])
    a, b = steer(direction, 0.5, 1, 10.0), steer(7 * direction, 0.5, 1, 10.0)
    np.testing.assert_allclose(a.vector, [3.0, 4.0, 0.0])  # 0.5 * 10 * (0.6, 0.8, 0)
    np.testing.assert_allclose(b.vector, a.vector, rtol=1e-12)


def test_zero_strength_is_a_zero_vector_not_an_error() -> None:
    """The control arm of a steering sweep: strength 0 must run, and change nothing."""
    s = steer(np.ones(4), 0.0, 0, 3.0)
    assert not s.vector.any() and s.alpha == 0.0


@pytest.mark.parametrize(
    "bad", [np.array([1.0, np.nan, 0.0]), np.array([np.inf, 1.0, 0.0]),
            np.array([1.0, -np.inf, 0.0])], ids=["nan", "inf", "-inf"])
def test_steer_refuses_a_direction_with_nan_or_inf(bad: np.ndarray) -> None:
    with pytest.raises(InterventionError, match="steering direction contains NaN or inf"):
        steer(bad, 0.5, 0, 1.0)


@pytest.mark.parametrize(("strength", "reference_norm", "shown"),
                         [(float("nan"), 1.0, "nan"), (float("inf"), 1.0, "inf"),
                          (0.5, float("nan"), "nan"), (0.5, float("-inf"), "-inf")])
def test_steer_refuses_a_strength_or_reference_norm_that_is_not_finite(
    strength: float, reference_norm: float, shown: str
) -> None:
    with pytest.raises(InterventionError) as error:
        steer(np.ones(3), strength, 0, reference_norm)
    message = str(error.value)
    assert "not finite" in message and shown in message, message


def test_steer_refuses_a_product_that_overflows() -> None:
    """Each factor is finite, their product is not: the vector check still catches it."""
    with pytest.raises(InterventionError, match="NaN or inf"):
        steer(np.ones(3), 1e200, 0, 1e200)


def test_steer_refuses_the_zero_vector() -> None:
    with pytest.raises(InterventionError, match="steering direction is the zero vector"):
        steer(np.zeros(5), 0.5, 0, 1.0)


def test_steer_refuses_a_matrix() -> None:
    with pytest.raises(InterventionError, match=r"one vector of shape \(d_model,\).*\(2, 3\)"):
        steer(np.ones((2, 3)), 0.5, 0, 1.0)


def test_steer_dataclass_refuses_nan_in_a_raw_vector() -> None:
    with pytest.raises(InterventionError, match="steering vector contains NaN or inf"):
        Steer(0, np.array([0.0, np.nan]))


def test_intervention_errors_are_value_errors_of_the_library() -> None:
    assert issubclass(InterventionError, ValueError)
    assert issubclass(InterventionError, RefusalChecksError)


# -- Ablate ----------------------------------------------------------------------------------
@FAST
@given(directions())
def test_ablate_stores_the_unit_direction(direction: np.ndarray) -> None:
    a = Ablate(direction)
    np.testing.assert_allclose(np.linalg.norm(a.direction), 1.0, rtol=1e-12)
    np.testing.assert_allclose(a.direction * np.linalg.norm(direction), direction,
                               atol=1e-9 * np.abs(direction).max())


@pytest.mark.parametrize("bad", [np.array([np.nan, 1.0]), np.array([1.0, np.inf])],
                         ids=["nan", "inf"])
def test_ablate_refuses_nan_or_inf(bad: np.ndarray) -> None:
    with pytest.raises(InterventionError, match="ablation direction contains NaN or inf"):
        Ablate(bad)


def test_ablate_refuses_the_zero_vector() -> None:
    with pytest.raises(InterventionError, match="ablation direction is the zero vector"):
        Ablate(np.zeros(4))


def test_interventions_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Ablate(np.ones(2)).direction = np.ones(2)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Steer(0, np.ones(2)).layer = 1  # type: ignore[misc]


# -- key() -----------------------------------------------------------------------------------
@FAST
@given(st.data())
def test_key_differs_for_different_vectors_and_matches_for_equal_ones(data: st.DataObject) -> None:
    width = data.draw(st.integers(1, 8))
    a, b = data.draw(directions(width)), data.draw(directions(width))
    assume(not np.allclose(a / np.linalg.norm(a), b / np.linalg.norm(b)))
    assert Steer(1, a).key() != Steer(1, b).key()
    assert Ablate(a).key() != Ablate(b).key()
    assert Steer(1, a).key() == Steer(1, a.copy()).key()
    assert Ablate(a).key() == Ablate(a.copy()).key()


def test_key_names_the_kind_and_the_steering_layer() -> None:
    v = np.array([1.0, 2.0, 3.0])
    assert Steer(1, v).key()["kind"] == "steer" and Ablate(v).key()["kind"] == "ablate"
    assert Steer(1, v).key() != Steer(2, v).key()
    assert Steer(1, v).key() == Steer(1, v, strength=0.3, label="other").key()
    assert Steer(1, v).key() != Steer(1, -v).key()


def test_ablate_key_does_not_depend_on_the_scale_of_the_direction() -> None:
    """Ablate normalises first, so r and 2r (exact in floating point) are the same edit."""
    v = np.array([0.3, -1.7, 2.2])
    assert Ablate(v).key() == Ablate(2 * v).key() == Ablate(0.25 * v).key()
    assert Ablate(v).key() != Ablate(-v).key()  # same projection, but a different vector


def test_key_is_small_json_friendly_text() -> None:
    key = Steer(0, np.arange(1000.0)).key()
    assert all(isinstance(value, (str, int)) for value in key.values())
    assert len(str(key)) < 200


# -- check_for_model -------------------------------------------------------------------------
@pytest.mark.parametrize("intervention", [Steer(0, np.ones(5)), Ablate(np.ones(5))],
                         ids=["steer", "ablate"])
def test_wrong_width_names_both_widths_and_the_fix(intervention: Steer | Ablate) -> None:
    with pytest.raises(InterventionError) as error:
        check_for_model(intervention, d_model=8, n_layers=4)
    message = str(error.value)
    assert "width 5" in message and "width 8" in message, message
    assert "Build the direction from this model" in message


@pytest.mark.parametrize("layer", [4, 17, -1])
def test_steering_layer_out_of_range_names_the_range(layer: int) -> None:
    with pytest.raises(InterventionError) as error:
        check_for_model(Steer(layer, np.ones(8)), d_model=8, n_layers=4)
    message = str(error.value)
    assert f"steering layer {layer} is out of range" in message
    assert "4 blocks (0..3)" in message


@pytest.mark.parametrize("layer", [0, 3])
def test_valid_interventions_pass_the_model_checks(layer: int) -> None:
    check_for_model(Steer(layer, np.ones(8)), d_model=8, n_layers=4)
    check_for_model(Ablate(np.ones(8)), d_model=8, n_layers=4)
    check_for_model(None, d_model=8, n_layers=4)


# -- orthogonalise ---------------------------------------------------------------------------
@FAST
@given(weights_and_direction())
def test_orthogonalised_weight_writes_nothing_along_the_direction(
    case: tuple[np.ndarray, np.ndarray, bool],
) -> None:
    weight, direction, writes_rows = case
    out = orthogonalise(weight, direction, writes_rows)
    assert out.shape == weight.shape
    scale = max(1.0, float(np.abs(weight).max()))
    np.testing.assert_allclose(along(out, direction, writes_rows), 0.0, atol=1e-9 * scale)


@FAST
@given(weights_and_direction())
def test_orthogonalise_is_idempotent(case: tuple[np.ndarray, np.ndarray, bool]) -> None:
    weight, direction, writes_rows = case
    once = orthogonalise(weight, direction, writes_rows)
    twice = orthogonalise(once, direction, writes_rows)
    np.testing.assert_allclose(twice, once, atol=1e-9 * max(1.0, float(np.abs(weight).max())))


@FAST
@given(weights_and_direction(), st.floats(0.01, 100), st.booleans())
def test_orthogonalise_ignores_the_scale_and_sign_of_the_direction(
    case: tuple[np.ndarray, np.ndarray, bool], scale: float, flip: bool
) -> None:
    weight, direction, writes_rows = case
    other = direction * scale * (-1 if flip else 1)
    np.testing.assert_allclose(orthogonalise(weight, other, writes_rows),
                               orthogonalise(weight, direction, writes_rows),
                               atol=1e-9 * max(1.0, float(np.abs(weight).max())))


@FAST
@given(weights_and_direction())
def test_orthogonalise_equals_ablating_what_the_matrix_writes(
    case: tuple[np.ndarray, np.ndarray, bool],
) -> None:
    """``W' x = project_out(W x)``: the weight edit is directional ablation of its output."""
    weight, direction, writes_rows = case
    r_hat = direction / np.linalg.norm(direction)
    written = weight if writes_rows else weight.T  # one residual-stream vector per row
    want = written - np.outer(written @ r_hat, r_hat)
    got = orthogonalise(weight, direction, writes_rows)
    got = got if writes_rows else got.T
    np.testing.assert_allclose(got, want, atol=1e-9 * max(1.0, float(np.abs(weight).max())))


def test_orthogonalise_layouts_on_a_worked_example() -> None:
    r = np.array([1.0, 0.0])
    w = np.array([[1.0, 2.0, 3.0],
                  [4.0, 5.0, 6.0]])  # (d_model=2, d_in=3): row 0 is what lands along r
    np.testing.assert_array_equal(orthogonalise(w, r, writes_rows=False),
                                  [[0.0, 0.0, 0.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(orthogonalise(w.T, r, writes_rows=True),
                                  [[0.0, 4.0], [0.0, 5.0], [0.0, 6.0]])


def test_orthogonalise_does_not_modify_its_input() -> None:
    w = np.arange(6.0).reshape(2, 3)
    orthogonalise(w, np.array([1.0, 1.0]), writes_rows=False)
    np.testing.assert_array_equal(w, np.arange(6.0).reshape(2, 3))


def test_orthogonalise_refuses_the_zero_vector_instead_of_returning_nan() -> None:
    with pytest.raises(InterventionError, match="zero vector"):
        orthogonalise(np.ones((2, 3)), np.zeros(2), writes_rows=False)


def test_orthogonalise_refuses_a_direction_of_the_wrong_width() -> None:
    with pytest.raises(InterventionError) as error:
        orthogonalise(np.ones((4, 3)), np.ones(3), writes_rows=False)
    message = str(error.value)
    assert "width 3" in message and "width 4" in message, message


# -- boundary --------------------------------------------------------------------------------
def test_interventions_module_does_not_import_torch() -> None:
    code = ("import sys, refusal_checks.models.interventions; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
