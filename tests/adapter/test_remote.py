"""Remote execution (NDIF) on the tiny random model, offline.

Parity: a backend with ``remote="local"`` (nnsight serialises each block as for NDIF,
deserialises it with refusal_checks unimportable, and runs it here) must give what the
plain local backend gives: activations, first-token log-probs and greedy replies, with
and without a steering or ablation edit. Both run the same weights on the same batches
in one process, so the numbers are the same computation; the 1e-6 tolerance only allows
for a CPU kernel that picks a different reduction order between two calls.

The NDIF side cannot be reached from here, so its failure modes are tested at the
boundary: nnsight's RemoteBackend (which would open the websocket) and the ``/status``
request are replaced by fakes that fail the way the real ones do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refusal_checks.models import remote
from refusal_checks.errors import BackendError
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import resolve
from refusal_checks.prompts.sets import PromptSet

from .remote_sim import server_without_refusal_checks
from .tiny import D_MODEL, N_LAYERS, PROMPTS

# The simulated remote path runs every prompt's full input; the local one reuses the chat
# template's shared head (computed in a batch of one), so the two differ by float32 rounding
# of differently shaped matmuls (~1e-7 relative per operation over 4 blocks of order-1
# activations: measured up to 1.2e-6 in the log-probs). 1e-5 is 8x that and 100x below what
# every edit moves (checked below), so it cannot hide a wrong edit.
TOLERANCE = 1e-5
EDITS = {
    "none": None,
    "steer": Steer(1, np.linspace(-1.0, 1.0, D_MODEL, dtype=np.float32)),
    "ablate": Ablate(np.cos(np.arange(D_MODEL, dtype=np.float32))),
}


def prompts() -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")


@pytest.fixture(scope="module")
def simulated(tiny_folder: Path, tiny_cache_dir: Path) -> Any:
    """The tiny folder loaded with --refusal-remote-local."""
    return load_backend(resolve(str(tiny_folder)),
                        LoadOptions(cache_dir=tiny_cache_dir, remote="local"))


# -- parity ------------------------------------------------------------------------------------
def test_remote_local_activations_match_local(tiny_backend: Any, simulated: Any) -> None:
    assert simulated.remote == "local" and tiny_backend.remote is False
    layers, positions = list(range(N_LAYERS)), [-1, -2]
    with server_without_refusal_checks() as server:
        got = simulated.residual_stream(prompts(), layers, positions, batch_size=3)
    want = tiny_backend.residual_stream(prompts(), layers, positions, batch_size=3)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    assert not server.blocked  # the payload needed nothing it did not carry


@pytest.mark.parametrize("edit", list(EDITS))
def test_remote_local_logprobs_match_local(tiny_backend: Any, simulated: Any, edit: str) -> None:
    with server_without_refusal_checks():
        got = simulated.last_logprobs(prompts(), intervention=EDITS[edit], batch_size=3)
    want = tiny_backend.last_logprobs(prompts(), intervention=EDITS[edit], batch_size=3)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    if edit != "none":  # the edit did something, so parity under it means something
        plain = tiny_backend.last_logprobs(prompts(), batch_size=3)
        assert np.abs(plain - want).max() > 100 * TOLERANCE


@pytest.mark.parametrize("edit", list(EDITS))
def test_remote_local_replies_match_local(tiny_backend: Any, simulated: Any, edit: str) -> None:
    with server_without_refusal_checks():
        got = simulated.generate(prompts(), 6, intervention=EDITS[edit], batch_size=3)
    assert got == tiny_backend.generate(prompts(), 6, intervention=EDITS[edit], batch_size=3)


def test_refusal_checks_by_value_is_needed_and_undone(tiny_backend: Any, simulated: Any) -> None:
    """Without the by-value registration the simulated server fails as NDIF would, and the
    registration does not outlive the request."""
    from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES

    import torch

    batch = simulated._batch(list(PROMPTS))
    with server_without_refusal_checks(), pytest.raises(ModuleNotFoundError):
        with torch.inference_mode(), simulated.lm.trace(batch, remote="local"):
            simulated._edit(EDITS["steer"], torch)  # `simulated` pickles its class
            simulated.lm.lm_head.output.save()
    simulated.last_logprobs(prompts(), intervention=EDITS["steer"], batch_size=4)
    assert "refusal_checks" not in _PICKLE_BY_VALUE_MODULES


# -- the NDIF path, offline --------------------------------------------------------------------
@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(remote.nnsight_config().API, "APIKEY", None)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    monkeypatch.setenv("NDIF_HOST", "https://ndif.example")


def test_no_key_says_how_to_get_one(no_key: None) -> None:
    with pytest.raises(remote.RemoteExecutionError, match="nnsight login.*NDIF_API_KEY"):
        remote.require_key()


def test_key_and_host_come_from_the_environment(key: None) -> None:
    assert remote.api_key() == "test-key"
    assert remote.host() == "https://ndif.example"


def test_a_local_model_cannot_run_on_ndif(tiny_folder: Path, key: None) -> None:
    with pytest.raises(BackendError, match="hub id"):
        load_backend(resolve(str(tiny_folder)), LoadOptions(remote="ndif"))


STATUS = {"deployments": {
    "a": {"repo_id": "meta-llama/Llama-3.1-8B-Instruct", "deployment_level": "HOT",
          "application_state": "RUNNING"},
    "b": {"repo_id": "google/gemma-2-9b-it", "deployment_level": "WARM",
          "application_state": "DEPLOYING"},
    "c": {"repo_id": "openai-community/gpt2", "deployment_level": "COLD",
          "application_state": "RUNNING"},
}}


@pytest.mark.parametrize(("repo", "problem"), [
    ("meta-llama/Llama-3.1-8B-Instruct", None),
    ("google/gemma-2-9b-it", "deployed but not running"),
    ("openai-community/gpt2", "does not serve.*running there now: meta-llama"),
    ("Qwen/Qwen2.5-7B-Instruct", "does not serve"),
])
def test_model_not_served_lists_what_is(monkeypatch: pytest.MonkeyPatch, key: None, repo: str,
                                        problem: str | None) -> None:
    seen = []
    monkeypatch.setattr(remote, "fetch_status",
                        lambda url, k: seen.append((url, k)) or STATUS)
    if problem is None:
        remote.check_served(repo)
    else:
        with pytest.raises(remote.RemoteExecutionError, match=problem):
            remote.check_served(repo)
    assert seen == [("https://ndif.example", "test-key")]


def test_unreachable_ndif_is_a_network_error(monkeypatch: pytest.MonkeyPatch, key: None) -> None:
    import httpx

    def refuse(url: str, k: str) -> dict:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(remote, "fetch_status", refuse)
    with pytest.raises(remote.RemoteExecutionError, match="lost the connection.*NDIF_HOST"):
        remote.check_served("meta-llama/Llama-3.1-8B-Instruct")


@pytest.mark.parametrize(("raised", "says"), [
    ("Failed to send request: 429 Too Many Requests", "rate-limiting.*rerun the same command"),
    ("Failed to send request: Invalid API key", "refused the API key.*nnsight whoami"),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", "smaller --refusal-batch-size"),
    ("Model meta-llama/x is not deployed", "does not serve"),
])
def test_server_errors_are_explained(raised: str, says: str) -> None:
    from nnsight.intervention.backends.remote import RemoteError

    assert isinstance(remote.explain(RemoteError(raised), "llama"), BackendError)
    with pytest.raises(remote.RemoteExecutionError, match=says):
        raise remote.explain(RemoteError(raised), "llama")


@pytest.fixture
def on_ndif(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, key: None) -> Any:
    """The tiny folder as NDIF would see it: a meta skeleton with remote=True.

    nnsight canonicalises the repo id through the hub (a network call) when it mints the
    model key; the answer is pre-filled, as a cached lookup would be.
    """
    from nnsight.modeling import huggingface

    from refusal_checks.models.nnsight.remote import load_remote

    monkeypatch.setitem(huggingface._ID_CACHE, str(tiny_folder), "org/tiny-chat")
    return load_remote(str(tiny_folder), None, name="tiny")


def test_remote_backend_loads_no_weights(on_ndif: Any) -> None:
    assert {p.device.type for p in on_ndif.model.parameters()} == {"meta"}
    assert on_ndif.device == "cpu"  # inputs are built here; NDIF moves them
    assert on_ndif.dtype == "float32"  # the tiny checkpoint's own dtype, as NDIF would hold it
    assert on_ndif.info["execution"] == "ndif:https://ndif.example"
    assert on_ndif.lm.to_model_key().endswith('{"repo_id": "org/tiny-chat", "revision": null, '
                                              '"task": "text-generation"}')


@pytest.mark.parametrize("edit", ["none", "steer"])
def test_a_dropped_connection_is_explained(on_ndif: Any, monkeypatch: pytest.MonkeyPatch,
                                           edit: str) -> None:
    """The request is serialised for real (refusal_checks by value, the model by its key,
    not its weights); then the connection drops, as a websocket to NDIF can."""
    from nnsight.intervention.backends.remote import RemoteBackend

    sent: list[tuple[str, int]] = []

    def request(self: Any, request: Any, tracer: Any) -> Any:
        sent.append((self.model_key, len(self._serialize(tracer))))
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(RemoteBackend, "request", request)
    with pytest.raises(remote.RemoteExecutionError, match="lost the connection.*resume"):
        on_ndif.generate(prompts(), 4, intervention=EDITS[edit], batch_size=2)
    with pytest.raises(remote.RemoteExecutionError, match="lost the connection"):
        on_ndif.residual_stream(prompts(), [1], [-1], batch_size=2)
    assert len(sent) == 2 and all("org/tiny-chat" in key for key, _ in sent)
    # A few tens of kB: the block and refusal_checks' source, never the weights.
    assert all(0 < size < 500_000 for _, size in sent), sent


@pytest.mark.parametrize("edit", list(EDITS))
def test_remote_true_against_a_fake_ndif_server_matches_local(on_ndif: Any, tiny_backend: Any,
                                                              edit: str) -> None:
    """The whole client path of remote=True (meta skeleton, model key, serialisation,
    result push) against a server stand-in running the same tiny weights."""
    from .remote_sim import fake_ndif

    with fake_ndif(tiny_backend.lm) as sizes:
        acts = on_ndif.residual_stream(prompts(), [0, 2], [-1, -2], batch_size=4)
        logprobs = on_ndif.last_logprobs(prompts(), intervention=EDITS[edit], batch_size=4)
        replies = on_ndif.generate(prompts(), 5, intervention=EDITS[edit], batch_size=4)
    np.testing.assert_allclose(acts, tiny_backend.residual_stream(prompts(), [0, 2], [-1, -2],
                                                                  batch_size=4),
                               atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(logprobs, tiny_backend.last_logprobs(
        prompts(), intervention=EDITS[edit], batch_size=4), atol=TOLERANCE, rtol=0)
    assert replies == tiny_backend.generate(prompts(), 5, intervention=EDITS[edit],
                                            batch_size=4)
    assert len(sizes) == 3 and max(sizes) < 500_000  # one request per batch, no weights


def test_a_run_that_loses_ndif_half_way_resumes_without_repeating_work(
        on_ndif: Any, tiny_backend: Any, tmp_path: Path) -> None:
    """Activations of three prompt sets in batches of 2 (6 requests); the connection drops
    after 3. The rerun sends only the 3 missing requests, and the result equals a local run."""
    from refusal_checks.measure.activations import collect
    from refusal_checks.cache.store import ArrayCache
    from refusal_checks.prompts.sets import CategoryPrompts, PromptCollection

    from .remote_sim import fake_ndif

    def make(name: str, side: str) -> PromptSet:
        return PromptSet(name, "tiny" if side != "benign" else "benign", side, PROMPTS, "test")

    coll = PromptCollection({"tiny": CategoryPrompts("tiny", make("tiny/refuse", "refuse"),
                                                     make("tiny/matched", "matched"))},
                            make("benign", "benign"), "test")
    cache = ArrayCache(tmp_path, "activations")
    with fake_ndif(tiny_backend.lm, drop_after=3) as first:
        with pytest.raises(remote.RemoteExecutionError, match="lost the connection.*resume"):
            collect(on_ndif, coll, position=-1, cache=cache, batch_size=2)
    with fake_ndif(tiny_backend.lm) as second:
        resumed = collect(on_ndif, coll, position=-1, cache=cache, batch_size=2)
    assert (len(first), len(second)) == (3, 3)
    assert (resumed.batches_cached, resumed.prompts_computed) == (1, 6)
    local = collect(tiny_backend, coll, position=-1, cache=None, batch_size=2)
    np.testing.assert_allclose(resumed.refuse["tiny"], local.refuse["tiny"], atol=TOLERANCE)
    np.testing.assert_allclose(resumed.benign, local.benign, atol=TOLERANCE)
