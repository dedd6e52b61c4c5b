"""Steering with a reused prefix on embedded Qwen2.5-Coder-0.5B: the plain pass's scores.

:meth:`~refusal_checks.models.nnsight.backend.NnsightBackend.last_logprobs` keeps the unedited input
of the steered block per batch and skips the blocks below it on the next steer of that
batch (:mod:`refusal_checks.models.prefix_store`). The same check on the tiny random model is
tests/adapter/test_prefix.py; this one runs a real chat template, left-padded real prompts
and the sweep's layer (0.48 x 24 = 11), and compares the refusal score the sweep reads.

No tolerance: both passes run the same batch shape through the same kernels in one
process, and block 11 receives the same tensor either way (the saved prefix is the plain
pass's own), so the values are bitwise equal on any machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refusal_checks.measure.activations import paper_layer
from refusal_checks.models.interventions import steer
from refusal_checks.models.prefix_store import PrefixStore
from refusal_checks.prompts.load import bundled
from refusal_checks.models.scoring import refusal_score
from tests.real.embedded import load_embedded, one_torch_thread

pytestmark = pytest.mark.real

ALIAS = "qwen-coder-0.5b"
BATCH = 3  # 6 prompts: two left-padded batches


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def backend() -> Any:
    return load_embedded(ALIAS)


def test_reused_prefix_scores_equal_the_plain_pass_on_qwen(backend: Any) -> None:
    prompts = bundled().benign.head(6)
    assert len({len(ids) for ids in backend.encode(prompts.texts)}) > 1  # needs padding
    layer = paper_layer(backend.n_layers)
    token_ids = backend.refusal_token_ids()
    rng = np.random.default_rng(0)
    # The typical residual norm at the layer, so strengths mean what the sweep's mean.
    norm = float(np.linalg.norm(backend.residual_stream(prompts, [layer], [-1])[:, 0, 0],
                                axis=-1).mean())
    edits = [steer(rng.standard_normal(backend.d_model), s, layer, norm) for s in (0.5, 1.0, 2.0)]
    backend.prefix = PrefixStore()
    reused = [backend.last_logprobs(prompts, intervention=e, batch_size=BATCH) for e in edits]
    assert (backend.prefix.hits, backend.prefix.misses) == (4, 2)  # first steer fills
    backend.prefix = PrefixStore(0)  # the plain pass: nothing kept, nothing reused
    plain = [backend.last_logprobs(prompts, intervention=e, batch_size=BATCH) for e in edits]
    for got, want in zip(reused, plain):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(refusal_score(got, token_ids),
                                      refusal_score(want, token_ids))
    assert not np.array_equal(plain[0], plain[2])  # the strengths steer differently
