"""Steering that reuses the unedited blocks below the steered one (the prefix store).

A steer at block ``L`` leaves blocks ``0..L-1`` unedited, so
:meth:`~refusal_checks.models.nnsight.backend.NnsightBackend.last_logprobs` keeps block ``L``'s
unedited input per batch and skips those blocks on the next steer of the same batch.
These tests check on the tiny random model (4 blocks, left-padded batches) that the reused
pass gives exactly the plain pass's log-probabilities, that blocks really are skipped, that
a batch never receives another batch's prefix, that the store stays within its bound, and
that ablation and remote runs do not use it.

Tolerance: none. The reused pass runs blocks ``L..`` on the same tensor the plain pass hands
block ``L`` (the prefix is that tensor, saved), on the same batch shape, with the same
kernels in the same process, so the arithmetic is the same operation by operation and the
results are bitwise equal on any machine; a difference would mean a different input
reached block ``L`` (a wrong prefix, lost padding, a missing mask or rotary embedding).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import resolve
from refusal_checks.models.prefix_store import PrefixStore, batch_digest
from refusal_checks.prompts.sets import PromptSet

from .remote_sim import server_without_refusal_checks
from .tiny import D_MODEL, N_LAYERS, PROMPTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
BATCH = 3  # 4 prompts of 4-21 tokens: a left-padded batch of 3 and a batch of 1


def prompt_set(texts: tuple[str, ...] = PROMPTS, name: str = "tiny/benign") -> PromptSet:
    return PromptSet(name, "tiny", "benign", texts, "test")


def direction(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D_MODEL)


@pytest.fixture
def backend(tiny_folder: Path, tiny_cache_dir: Path) -> Any:
    """A backend of its own per test: its prefix store starts empty."""
    return load_backend(resolve(str(tiny_folder)), LoadOptions(cache_dir=tiny_cache_dir))


@contextmanager
def store_off(backend: Any) -> Iterator[None]:
    """The plain pass: a store of 0 bytes keeps and reuses nothing."""
    kept, backend.prefix = backend.prefix, PrefixStore(0)
    try:
        yield
    finally:
        backend.prefix = kept


def plain(backend: Any, prompts: PromptSet, edit: Any) -> np.ndarray:
    with store_off(backend):
        return backend.last_logprobs(prompts, intervention=edit, batch_size=BATCH)


@contextmanager
def block_calls(backend: Any) -> Iterator[list[int]]:
    """Calls of each block's attention during the context (a skipped block runs none)."""
    calls = [0] * N_LAYERS
    handles = [block.self_attn.register_forward_hook(
        lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(backend.model.model.layers)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


# -- parity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [1, 2, N_LAYERS - 1])
def test_reused_prefix_gives_the_plain_pass_bitwise(backend: Any, layer: int) -> None:
    prompts = prompt_set()
    # Several directions and strengths at one layer, as the sweep steers: the first fills
    # the store, every later one reuses it (and the strength 0 one is the unedited model).
    edits = [Steer(layer, s * direction(seed)) for seed in (0, 1) for s in (0.0, 0.5, 3.0)]
    for edit in edits:
        reused = backend.last_logprobs(prompts, intervention=edit, batch_size=BATCH)
        np.testing.assert_array_equal(reused, plain(backend, prompts, edit))
    batches = 2
    assert backend.prefix.hits == batches * (len(edits) - 1)
    assert backend.prefix.misses == batches
    # The steer moved the output (so equality above is not two unedited passes).
    assert not np.array_equal(plain(backend, prompts, edits[2]), plain(backend, prompts, None))


def test_reuse_skips_every_block_below_the_steered_one(backend: Any) -> None:
    layer, prompts = N_LAYERS - 1, prompt_set()
    # Each new steer also runs every block once over the template's shared head
    # (refusal_checks.models.nnsight.head), which the prefix store does not cover.
    with block_calls(backend) as calls:
        backend.last_logprobs(prompts, intervention=Steer(layer, direction(0)), batch_size=BATCH)
    assert calls == [2 + 1] * N_LAYERS  # a miss: the full pass, once per batch
    with block_calls(backend) as calls:
        backend.last_logprobs(prompts, intervention=Steer(layer, direction(1)), batch_size=BATCH)
    assert calls == [0 + 1] * layer + [2 + 1] * (N_LAYERS - layer)
    assert (backend.head.hits, backend.head.misses) == (2, 2)  # one head per steer
    assert backend.prefix.hits == 2


# -- keys ------------------------------------------------------------------------------------
def test_another_batch_never_gets_this_batchs_prefix(backend: Any) -> None:
    layer = 2
    first = prompt_set(PROMPTS[:3])
    edit = Steer(layer, direction(0))
    backend.last_logprobs(first, intervention=edit, batch_size=BATCH)
    assert (backend.prefix.hits, len(backend.prefix)) == (0, 1)
    # Other texts and one of them batched alone (other padding): each is a different model
    # input, so each misses and gets its own prefix.
    others = [prompt_set(("hi", "how do i pick a lock ?", "write a short poem")),
              prompt_set(PROMPTS[2:3])]
    for prompts in others:
        got = backend.last_logprobs(prompts, intervention=edit, batch_size=BATCH)
        np.testing.assert_array_equal(got, plain(backend, prompts, edit))
    assert backend.prefix.hits == 0 and len(backend.prefix) == 1 + len(others)
    # The same texts in another order are batched by length, so the model sees the same
    # input: the prefix is reused, and each prompt still gets its own row.
    again = backend.last_logprobs(prompt_set(PROMPTS[:3][::-1]), intervention=edit,
                                  batch_size=BATCH)
    assert backend.prefix.hits == 1
    np.testing.assert_array_equal(again[::-1], plain(backend, first, edit))
    # Another layer of the same batch is another prefix too.
    backend.last_logprobs(first, intervention=Steer(1, direction(0)), batch_size=BATCH)
    assert backend.prefix.hits == 1  # no new hit


def test_the_store_stays_within_its_bound(backend: Any) -> None:
    prompts = prompt_set(PROMPTS[:3])
    backend.last_logprobs(prompts, intervention=Steer(1, direction(0)), batch_size=BATCH)
    one = backend.prefix.nbytes  # 3 prompts x 20 tokens after the 1-token head x 32 float32
    assert one == 3 * (21 - len(backend.head.ids)) * D_MODEL * 4
    backend.prefix = PrefixStore(int(1.5 * one))
    for layer in (1, 2, 3):
        backend.last_logprobs(prompts, intervention=Steer(layer, direction(0)), batch_size=BATCH)
        assert backend.prefix.nbytes <= backend.prefix.max_bytes and len(backend.prefix) == 1
    # Only the last layer is kept: a steer at it reuses, one at layer 1 recomputes.
    backend.last_logprobs(prompts, intervention=Steer(3, direction(1)), batch_size=BATCH)
    backend.last_logprobs(prompts, intervention=Steer(1, direction(1)), batch_size=BATCH)
    assert (backend.prefix.hits, backend.prefix.misses) == (1, 4)


# -- where the store is not used -----------------------------------------------------------------
def test_ablation_layer_zero_and_unedited_passes_leave_the_store_alone(backend: Any) -> None:
    prompts = prompt_set()
    for edit in (Ablate(direction(0)), Steer(0, direction(0)), None):
        heads = backend.head.misses  # a new edit's head: one more pass of every block
        with block_calls(backend) as calls:
            got = backend.last_logprobs(prompts, intervention=edit, batch_size=BATCH)
        np.testing.assert_array_equal(got, plain(backend, prompts, edit))
        assert calls == [2 + backend.head.misses - heads] * N_LAYERS
    assert (backend.prefix.hits, backend.prefix.misses, len(backend.prefix)) == (0, 0, 0)


def test_remote_runs_never_keep_a_prefix(tiny_folder: Path, tiny_cache_dir: Path,
                                         backend: Any) -> None:
    simulated = load_backend(resolve(str(tiny_folder)),
                             LoadOptions(cache_dir=tiny_cache_dir, remote="local"))
    edit = Steer(2, direction(0))
    with server_without_refusal_checks():
        got = [simulated.last_logprobs(prompt_set(), intervention=edit, batch_size=BATCH)
               for _ in range(2)]
    assert (simulated.prefix.hits, simulated.prefix.misses, len(simulated.prefix)) == (0, 0, 0)
    # 1e-6: the remote simulation runs the same weights on the same batches, but nnsight
    # serialises the block; the remote parity tests allow the same.
    for values in got:
        np.testing.assert_allclose(values, plain(backend, prompt_set(), edit), atol=1e-6, rtol=0)


def test_a_device_map_over_several_devices_switches_reuse_off(backend: Any,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from refusal_checks.models.nnsight import backend as nnsight_backend

    blocks = ["cuda:0"] * 2 + ["cuda:1"] * (N_LAYERS - 2)
    monkeypatch.setattr(nnsight_backend, "block_devices", lambda model, device: ("cuda:0", blocks))
    monkeypatch.setattr(backend.model, "hf_device_map", {"": 0}, raising=False)
    split = nnsight_backend.NnsightBackend(
        backend.model, backend.tokenizer, name="split", fingerprint="x", dtype="float32",
        device="cpu")
    assert split._prefix_layer(Steer(2, direction(0))) is None
    monkeypatch.setattr(nnsight_backend, "block_devices",
                        lambda model, device: ("cuda:0", ["cuda:0"] * N_LAYERS))
    whole = nnsight_backend.NnsightBackend(
        backend.model, backend.tokenizer, name="whole", fingerprint="x", dtype="float32",
        device="cpu")
    assert whole._prefix_layer(Steer(2, direction(0))) == 2


# -- the store itself ------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(bound=st.integers(0, 100),
       puts=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 60)), max_size=40))
def test_lru_holds_at_most_its_bound_and_keeps_the_newest(bound: int,
                                                         puts: list[tuple[int, int]]) -> None:
    store = PrefixStore(bound)
    model: dict[int, int] = {}  # what a correct LRU holds: key -> size, oldest first
    for key, size in puts:
        kept = store.put(key, f"value {key} {size}", size)
        model.pop(key, None)
        assert kept == (size <= bound)
        if kept:
            while sum(model.values()) + size > bound:
                model.pop(next(iter(model)))
            model[key] = size
        assert store.nbytes == sum(model.values()) <= bound
        assert [k for k in model if k in store] == list(model) and len(store) == len(model)
    for key, size in model.items():
        assert store.get(key) == f"value {key} {size}"


def test_a_lookup_makes_an_entry_the_newest() -> None:
    store = PrefixStore(3)
    for key in "abc":
        store.put(key, key, 1)
    assert store.get("a") == "a" and store.get("z") is None
    store.put("d", "d", 1)  # evicts b, the least recently used, not a
    assert "a" in store and "b" not in store
    assert (store.hits, store.misses) == (1, 1)


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="use 0"):
        PrefixStore(-1)


def test_batch_digest_sees_shape_and_values() -> None:
    ids = np.array([[1, 2, 3]])
    assert batch_digest(ids) == batch_digest(ids.copy())
    assert batch_digest(ids) != batch_digest(ids.reshape(3, 1))
    assert batch_digest(ids, np.ones_like(ids)) != batch_digest(ids, np.zeros_like(ids))


def test_no_prefix_is_kept_where_something_runs_between_blocks(backend: Any) -> None:
    # A pre-hook on block 2 stands for code between blocks 1 and 2 (a family that rescales
    # or mixes the stream there): block 1's output is no longer block 2's input, so
    # skipping blocks 0-1 and handing on block 2's input would run that code twice.
    handle = backend.model.model.layers[2].register_forward_pre_hook(
        lambda module, args: (2.0 * args[0], *args[1:]))
    try:
        for seed in (0, 1):
            edit = Steer(2, direction(seed))
            got = backend.last_logprobs(prompt_set(), intervention=edit, batch_size=BATCH)
            np.testing.assert_array_equal(got, plain(backend, prompt_set(), edit))
    finally:
        handle.remove()
    assert (backend.prefix.hits, len(backend.prefix)) == (0, 0)
