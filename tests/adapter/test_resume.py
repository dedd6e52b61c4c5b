"""Interrupted runs resume from every finished batch; concurrent runs never corrupt the cache.

A planted world (refusal_checks.models.synthetic) stands in for the model: its values per prompt
do not depend on the batch, as a real backend's do not, and it costs nothing. A wrapper
counts the prompts each run sends to the model, and can die after a given number of
batches: by raising (Ctrl-C, a dropped NDIF connection) or, in a subprocess, by SIGKILL
(the OOM killer), the harshest way a run can end.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refusal_checks.measure.activations import collect, replies
from refusal_checks.cache.store import ArrayCache, CacheWarning
from refusal_checks.models.interventions import Ablate
from refusal_checks.prompts.sets import CategoryPrompts, PromptCollection, PromptSet
from refusal_checks.models.synthetic import SyntheticBackend

BATCH = 4
REPO = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """The run ends here, like a KeyboardInterrupt: not an Exception, so nothing catches it."""


class Counting:
    """A backend that counts the prompts it computes and dies after ``die_after`` batches."""

    def __init__(self, inner: Any, die_after: int | None = None, delay: float = 0.0) -> None:
        self.inner = inner
        self.die_after = die_after
        self.delay = delay
        self.batches = 0
        self.prompts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _tick(self, prompts: PromptSet) -> None:
        if self.die_after is not None and self.batches >= self.die_after:
            raise Killed(f"killed after {self.batches} batches")
        time.sleep(self.delay)
        self.batches += 1
        self.prompts += len(prompts)

    def residual_stream(self, prompts: PromptSet, layers: Any, positions: Any, **kw: Any) -> Any:
        self._tick(prompts)
        return self.inner.residual_stream(prompts, layers, positions, **kw)

    def generate(self, prompts: PromptSet, max_new_tokens: int, **kw: Any) -> list[str]:
        self._tick(prompts)
        return self.inner.generate(prompts, max_new_tokens, **kw)


def world() -> SyntheticBackend:
    """A planted world with its categories' slots fixed up front: the world hands out
    slots in order of first use, and a resumed run meets the categories in another order."""
    backend = SyntheticBackend.from_spec("distinct", name="synthetic:distinct")
    for category in CATEGORIES:
        backend.slot(category)
    return backend


CATEGORIES = ("alpha", "beta")


def collection(per_set: int = 10) -> PromptCollection:
    """Two categories with matched controls and a benign pool: 5 sets of ``per_set``."""
    def make(name: str, category: str, side: str) -> PromptSet:
        return PromptSet(name, category, side,
                         tuple(f"{name} prompt {i}" for i in range(per_set)), "test")

    cats = {c: CategoryPrompts(c, make(f"{c}/refuse", c, "refuse"),
                               make(f"{c}/matched", c, "matched")) for c in CATEGORIES}
    return PromptCollection(cats, make("benign", "benign", "benign"), "test")


def batches_of(coll: PromptCollection) -> int:
    sets = [s for c in coll.categories.values() for s in (c.refuse, c.matched)] + [coll.benign]
    return sum(-(-len(s) // BATCH) for s in sets)


def total_prompts(coll: PromptCollection) -> int:
    return sum(len(c.refuse) + len(c.matched) for c in coll.categories.values()) + len(coll.benign)


# -- activations -------------------------------------------------------------------------------
@pytest.mark.parametrize("die_after", [1, 4, 7, 14])
def test_interrupted_collect_recomputes_nothing_finished(tmp_path: Path, die_after: int) -> None:
    coll = collection()  # 5 sets of 10 prompts: 3 batches each (4, 4, 2), 15 in all
    assert batches_of(coll) == 15
    cache = ArrayCache(tmp_path, "activations")
    first = Counting(world(), die_after=die_after)
    with pytest.raises(Killed):
        collect(first, coll, position=-1, cache=cache, batch_size=BATCH)
    assert first.batches == die_after
    second = Counting(world())
    resumed = collect(second, coll, position=-1, cache=cache, batch_size=BATCH)
    # Every batch the first run finished is used; the rerun computes only the rest.
    assert first.batches + second.batches == batches_of(coll)
    assert first.prompts + second.prompts == total_prompts(coll)
    assert resumed.prompts_computed == second.prompts
    reference = collect(world(), coll, position=-1, cache=None, batch_size=BATCH)
    for name in coll.categories:
        np.testing.assert_array_equal(resumed.refuse[name], reference.refuse[name])
        np.testing.assert_array_equal(resumed.matched[name], reference.matched[name])
    np.testing.assert_array_equal(resumed.benign, reference.benign)
    # A third run is all hits, and the batch entries are gone: one entry per set.
    third = Counting(world())
    again = collect(third, coll, position=-1, cache=cache, batch_size=BATCH)
    assert third.batches == 0 and again.hits == 5 and len(cache.entries()) == 5


# -- replies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", [None, Ablate(np.ones(64, np.float32))])
def test_interrupted_replies_resume_per_batch(tmp_path: Path, edit: Any) -> None:
    prompts = PromptSet("alpha/refuse", "alpha", "refuse",
                        tuple(f"question {i}" for i in range(11)), "test")
    cache = ArrayCache(tmp_path, "replies")
    first = Counting(world(), die_after=2)
    with pytest.raises(Killed):
        replies(first, prompts, max_new_tokens=8, cache=cache, batch_size=BATCH,
                intervention=edit)
    second = Counting(world())
    texts = replies(second, prompts, max_new_tokens=8, cache=cache, batch_size=BATCH,
                    intervention=edit)
    assert (first.prompts, second.prompts) == (8, 3)  # batches 4+4 kept, 3 left
    assert texts == world().generate(prompts, 8, intervention=edit)
    third = Counting(world())
    assert replies(third, prompts, max_new_tokens=8, cache=cache, batch_size=BATCH,
                   intervention=edit) == texts
    assert third.prompts == 0


# -- a real kill, and two runs at once ---------------------------------------------------------
RUN = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.adapter.test_resume import Counting, collection, world, BATCH
from refusal_checks.measure.activations import collect
from refusal_checks.cache.store import ArrayCache
backend = Counting(world(), delay={delay})
acts = collect(backend, collection({per_set}), position=-1,
               cache=ArrayCache({cache!r}, "activations"), batch_size=BATCH)
print("computed", backend.prompts, "batches", backend.batches, "cached", acts.batches_cached)
"""


def _script(cache: Path, delay: float, per_set: int = 10) -> list[str]:
    return [sys.executable, "-c", RUN.format(repo=str(REPO), delay=delay, per_set=per_set,
                                             cache=str(cache))]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    """SIGKILL after some batches are on disk; the rerun computes only what is missing."""
    cache = ArrayCache(tmp_path, "activations")
    process = subprocess.Popen(_script(tmp_path, delay=0.3), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(cache.entries()) < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    left = len(cache.entries())  # batch entries and finished sets
    assert left >= 4
    rerun = subprocess.run(_script(tmp_path, delay=0.0), env=_env(), capture_output=True,
                           text=True, timeout=120, check=True)
    computed = int(rerun.stdout.split()[1])
    # Each entry on disk (a batch of up to 4 prompts, or a whole set of 10 after its
    # batches were merged) spared the rerun at least 2 prompts.
    assert computed <= 50 - 2 * left, rerun.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # no torn entry anywhere
        again = collect(Counting(world()), collection(), position=-1, cache=cache,
                        batch_size=BATCH)
    assert again.hits == 5


def test_two_concurrent_runs_agree_and_leave_no_corrupt_entry(tmp_path: Path) -> None:
    runs = [subprocess.Popen(_script(tmp_path, delay=0.01, per_set=24), env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    cache = ArrayCache(tmp_path, "activations")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        counter = Counting(world())
        shared = collect(counter, collection(24), position=-1, cache=cache, batch_size=BATCH)
    assert counter.prompts == 0 and shared.hits == 5
    reference = collect(world(), collection(24), position=-1, cache=None, batch_size=BATCH)
    np.testing.assert_array_equal(shared.benign, reference.benign)
    for name in reference.refuse:
        np.testing.assert_array_equal(shared.refuse[name], reference.refuse[name])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    # Between them the two runs did at most twice the work, and usually shared some of it.
    done = [int(out.split()[1]) for out, _ in outputs]
    assert sum(done) <= 2 * 5 * 24, done
