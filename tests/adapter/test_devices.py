"""--refusal-device auto and the GPU dtype default, tested without a GPU.

No GPU exists where these tests run. What can be checked here is checked: the decision
(torch.cuda's answers monkeypatched), the memory check over several GPUs, what reaches
``from_pretrained`` (device_map, max_memory, dtype), and the device-map code path itself:
a tiny model loaded through ``--refusal-device auto`` with two pretended GPUs, then
dispatched by accelerate with a per-module device map whose devices are all the CPU, so
its blocks carry accelerate's hooks and every per-block device lookup runs through nnsight.
Whether activations cross real GPUs correctly is for tools/gpu_check.py --device auto on
a machine that has them (README, 'GPU').
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from refusal_checks.models import memory
from refusal_checks.models.nnsight import devices
from refusal_checks.errors import BackendError
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.models.nnsight.loading import load_folder
from refusal_checks.prompts.sets import PromptSet

from .tiny import D_MODEL, N_LAYERS, PROMPTS

GIB = memory.GIB


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def pretend_gpus(monkeypatch: pytest.MonkeyPatch, free: list[int]) -> None:
    """torch.cuda answers as on a machine with one GPU per entry of ``free`` (bytes free)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(free))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(free))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (free[i], 80 * GIB))


# -- the decision ----------------------------------------------------------------------------
@pytest.mark.parametrize(("gpus", "device", "dtype"), [
    (0, "cpu", "float32"), (1, "cuda", "bfloat16"), (2, "auto", "bfloat16"),
    (8, "auto", "bfloat16")])
def test_auto_is_a_device_map_over_several_gpus_cuda_on_one_cpu_on_none(
        monkeypatch: pytest.MonkeyPatch, gpus: int, device: str, dtype: str) -> None:
    pretend_gpus(monkeypatch, [40 * GIB] * gpus)
    assert devices.resolve_device("auto") == device
    assert devices.default_dtype("auto") == devices.default_dtype(device) == dtype


def test_one_named_gpu_is_one_device_and_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_gpus(monkeypatch, [40 * GIB] * 2)
    assert [devices.resolve_device(d) for d in ("cuda", "cuda:1", "cpu")] == [
        "cuda", "cuda:1", "cpu"]
    assert [devices.default_dtype(d) for d in ("cuda", "cuda:1", "cpu")] == [
        "bfloat16", "bfloat16", "float32"]
    assert devices.resolve_dtype("float32", "cuda") == "float32"  # given: kept
    assert devices.resolve_dtype(None, "cuda:1") == "bfloat16"


def test_a_gpu_that_is_not_there_names_the_ones_that_are(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_gpus(monkeypatch, [40 * GIB] * 2)
    with pytest.raises(BackendError, match=r"'cuda:2' names no CUDA device: torch sees 2 "
                       r"\(cuda:0 to cuda:1\).*--refusal-device auto"):
        devices.resolve_device("cuda:2")
    pretend_gpus(monkeypatch, [])
    with pytest.raises(BackendError, match="torch sees no CUDA device.*--refusal-device cpu"):
        devices.resolve_device("cuda:0")


# -- memory over several GPUs ----------------------------------------------------------------
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def test_auto_counts_the_free_memory_of_every_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # 15 GiB of bf16 weights need ~20 GiB: no single 12 GiB GPU holds them, two do.
    pretend_gpus(monkeypatch, [12 * GIB, 12 * GIB])
    free, what = memory.free_bytes("auto")
    assert free == 24 * GIB and what == "free GPU memory on cuda:0 to cuda:1 together (2 GPUs)"
    found = memory.check_fits("llama", None, LLAMA_8B, "bfloat16", "auto")
    assert found is not None
    with pytest.raises(BackendError) as raised:
        memory.check_fits("llama", None, LLAMA_8B, "bfloat16", "cuda:0")
    assert "--refusal-device auto on a machine with several GPUs" in str(raised.value)
    pretend_gpus(monkeypatch, [8 * GIB, 8 * GIB])
    with pytest.raises(BackendError, match="16.0 GiB of free GPU memory on cuda:0 to cuda:1 "
                       "together") as raised:
        memory.check_fits("llama", None, LLAMA_8B, "bfloat16", "auto")
    assert "--refusal-device" not in str(raised.value)  # it already uses every GPU


def test_max_memory_shares_out_the_working_memory_and_skips_full_gpus() -> None:
    found = memory.Estimate(10 * GIB, "test")
    working = found.need_bytes - found.weight_bytes  # 2 GiB + 2 GiB
    budgets = memory.max_memory(found, {0: 12 * GIB, 1: 12 * GIB, 2: GIB})
    assert budgets == {0: 12 * GIB - working // 3, 1: 12 * GIB - working // 3}
    # Over GPUs with room, what they may hold of the weights is what check_fits compared:
    # the free memory of them all less the working memory.
    budgets = memory.max_memory(found, {0: 12 * GIB, 1: 6 * GIB})
    assert sum(budgets.values()) == 18 * GIB - working


def test_load_kwargs_carry_the_device_map_the_budgets_and_the_dtype(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    pretend_gpus(monkeypatch, [12 * GIB, 20 * GIB])
    found = memory.Estimate(10 * GIB, "test")
    share = (found.need_bytes - found.weight_bytes) // 2
    assert devices.load_kwargs("bfloat16", "auto", found) == {
        "dtype": torch.bfloat16, "device_map": "auto",
        "max_memory": {0: 12 * GIB - share, 1: 20 * GIB - share}}
    # No estimate (REFUSAL_CHECKS_SKIP_MEMORY_CHECK, an odd config): accelerate decides.
    assert devices.load_kwargs("float16", "auto", None) == {"dtype": torch.float16,
                                                            "device_map": "auto"}
    # One device: loaded on the CPU and moved there with .to, as before.
    assert devices.load_kwargs("bfloat16", "cuda:1", found) == {"dtype": torch.bfloat16}


# -- per-block devices -----------------------------------------------------------------------
def test_block_devices_follow_accelerate_hooks_then_parameters(tiny_backend: Any) -> None:
    import torch

    model = tiny_backend.model
    cpu = torch.device("cpu")
    assert devices.block_devices(model, "cpu") == (cpu, [cpu] * N_LAYERS)
    blocks = model.model.layers
    try:  # hooks as dispatch_model leaves them: an execution device per block
        for i, block in enumerate(blocks):
            block.__dict__["_hf_hook"] = SimpleNamespace(execution_device=i // 2)
        model.get_input_embeddings().__dict__["_hf_hook"] = SimpleNamespace(
            hooks=[SimpleNamespace(execution_device="cuda:0")])  # a SequentialHook
        embed, found = devices.block_devices(model, "cpu")
        assert embed == torch.device("cuda:0")
        assert found == [torch.device("cuda", i // 2) for i in range(N_LAYERS)]
        assert devices.device_summary(embed, found) == (
            "embeddings cuda:0; blocks 0-1 cuda:0, 2-3 cuda:1")
    finally:
        for module in (*blocks, model.get_input_embeddings()):
            module.__dict__.pop("_hf_hook", None)


def test_ablation_vectors_go_where_each_block_reads_and_writes(tiny_folder: Path) -> None:
    """The meta device stands in for a second GPU: blocks 2 and 3 'live' there."""
    import torch

    backend = load_folder(tiny_folder, name="tiny", fingerprint="x", dtype=None,
                             device="cpu")
    for block in backend.model.model.layers[2:]:
        block.__dict__["_hf_hook"] = SimpleNamespace(execution_device="meta")
    ablation = Ablate(np.eye(D_MODEL)[0])
    backend._prepare(ablation)
    inputs, units, _ = backend._write_units[ablation.key()["direction"]]
    # Block L's input arrives from the module before it (block 3's from block 2).
    assert [r.device.type for r in inputs] == ["cpu", "cpu", "cpu", "meta"]
    assert [{u.device.type for u in row} for row in units] == [{"cpu"}, {"cpu"}, {"meta"},
                                                               {"meta"}]
    assert all(r.dtype == torch.float32 for r in inputs)


# -- auto end to end, through nnsight, on a CPU-only device map ------------------------------
def cpu_device_map(n_layers: int) -> dict[str, str]:
    """A per-module map as accelerate's device_map="auto" writes one, every entry the CPU."""
    return {"model.embed_tokens": "cpu", **{f"model.layers.{i}": "cpu" for i in range(n_layers)},
            "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}


@pytest.fixture
def auto_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Two pretended 40 GiB GPUs until ``from_pretrained``, which records its arguments and
    loads the real tiny model with a CPU-only per-module device map instead (hooks forced,
    since accelerate attaches none when the map names one device)."""
    import transformers
    from accelerate import dispatch_model

    real = transformers.AutoModelForCausalLM.from_pretrained
    calls: list[dict[str, Any]] = []
    gpus = pytest.MonkeyPatch()
    pretend_gpus(gpus, [40 * GIB, 40 * GIB])

    def recording(path: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        gpus.undo()  # the real torch.cuda from here on: nothing below may think there is one
        kwargs = {k: v for k, v in kwargs.items() if k not in ("device_map", "max_memory")}
        model = real(path, device_map={"": "cpu"}, **kwargs)
        placed = cpu_device_map(model.config.num_hidden_layers)
        dispatch_model(model, device_map=placed, force_hooks=True)
        model.hf_device_map = placed
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", recording)
    yield calls
    gpus.undo()


def load_auto(tiny_folder: Path, cache: Path, dtype: str | None) -> Any:
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    return load_backend(resolve(str(tiny_folder)),
                        LoadOptions(dtype=dtype, device="auto", cache_dir=cache))


def test_auto_loads_with_a_device_map_in_bfloat16_and_records_both(
        auto_loader: list[dict[str, Any]], tiny_folder: Path, tmp_path: Path) -> None:
    import torch

    backend = load_auto(tiny_folder, tmp_path, None)
    (kwargs,) = auto_loader
    assert kwargs["device_map"] == "auto" and kwargs["dtype"] == torch.bfloat16
    assert set(kwargs["max_memory"]) == {0, 1}
    assert all(0 < room < 40 * GIB for room in kwargs["max_memory"].values())
    assert backend.dtype == backend.info["dtype"] == "bfloat16"  # caches are keyed on it
    assert backend.info["device"] == "auto"
    assert backend.info["device_map"] == f"embeddings cpu; blocks 0-{N_LAYERS - 1} cpu"
    assert backend.model.dtype == torch.bfloat16


def test_auto_measures_steers_and_ablates_as_one_device_does(
        auto_loader: list[dict[str, Any]], tiny_folder: Path, tmp_path: Path,
        tiny_backend: Any) -> None:
    """Same numbers through the device-map path as through a plain CPU load (float32)."""
    backend = load_auto(tiny_folder, tmp_path, "float32")
    assert all("_hf_hook" in block.__dict__ for block in backend.model.model.layers)
    prompts = PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")
    layers = list(range(N_LAYERS))
    np.testing.assert_allclose(backend.residual_stream(prompts, layers, [-1, -2]),
                               tiny_backend.residual_stream(prompts, layers, [-1, -2]),
                               rtol=1e-5, atol=1e-5)
    vector = np.random.default_rng(0).standard_normal(D_MODEL)
    mean = tiny_backend.residual_stream(prompts, [2], [-1])[:, 0, 0].mean(axis=0)
    for intervention in (None, Steer(2, vector), Ablate(mean.astype(np.float64))):
        np.testing.assert_allclose(
            backend.last_logprobs(prompts, intervention=intervention),
            tiny_backend.last_logprobs(prompts, intervention=intervention),
            rtol=1e-4, atol=1e-4)
    assert (backend.generate(prompts, 3, intervention=Steer(2, vector))
            == tiny_backend.generate(prompts, 3, intervention=Steer(2, vector)))


@pytest.mark.parametrize(("dtype", "device", "gpus", "recorded"), [
    (None, "cpu", 0, "float32"), (None, "cuda:0", 1, "bfloat16"), (None, "auto", 2, "bfloat16"),
    (None, "auto", 0, "float32"), ("float16", "auto", 2, "float16")])
def test_the_json_report_records_the_dtype_the_run_used(
        monkeypatch: pytest.MonkeyPatch, dtype: str | None, device: str, gpus: int,
        recorded: str) -> None:
    from refusal_checks.plugin import hooks as plugin

    pretend_gpus(monkeypatch, [40 * GIB] * gpus)
    given = {plugin.DTYPE: dtype, plugin.DEVICE: device}
    assert plugin._run_dtype(SimpleNamespace(getoption=given.get)) == recorded
