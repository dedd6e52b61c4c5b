"""The nnsight backend: the only module that imports torch, transformers and nnsight.

It owns chat templates, devices, dtypes, GGUF conversion and nnsight's quirks, and hands
the rest of the library plain numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from refusal_checks import memory
from refusal_checks.backend import BackendError, ProgressCallback, check_layers, check_positions
from refusal_checks.interventions import Ablate, Intervention, Steer, check_for_model
from refusal_checks.prompts import PromptSet
from refusal_checks.remote import remote_scope

DTYPES = ("float32", "bfloat16", "float16")
_DENSE_MARKER = "refusal_checks_dense.json"


def _torch():
    import torch

    return torch


def cuda_count() -> int:
    """CUDA devices torch can use here (0 without a CUDA build or a driver)."""
    torch = _torch()
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def resolve_device(device: str) -> str:
    """Where a model loads: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` for several GPUs.

    ``auto`` stays ``auto`` when torch sees several CUDA devices (the model is then spread
    over all of them with accelerate's device map, :func:`load_kwargs`), becomes ``cuda``
    with one and ``cpu`` with none. ``cuda`` and ``cuda:N`` are one GPU, checked here.
    """
    torch = _torch()
    if device == "auto":
        count = cuda_count()
        return "auto" if count > 1 else "cuda" if count == 1 else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(
            f"--refusal-device {device!r} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}). Install a CUDA build of torch (see README, 'GPU') "
            "or use --refusal-device cpu."
        )
    if device.startswith("cuda:"):
        count = cuda_count()
        index = device.partition(":")[2]
        if not index.isdigit() or int(index) >= count:
            raise BackendError(
                f"--refusal-device {device!r} names no CUDA device: torch sees {count} "
                f"(cuda:0 to cuda:{count - 1}). Pick one of them, or --refusal-device auto "
                "to spread the model over all of them.")
    return device


def default_dtype(device: str) -> str:
    """The dtype when ``--refusal-dtype`` is not given: bfloat16 on CUDA (``cuda``,
    ``cuda:N``, ``auto`` with a GPU), float32 elsewhere (the README's CPU reference)."""
    if device == "auto":
        return "bfloat16" if cuda_count() else "float32"
    return "bfloat16" if device.startswith("cuda") else "float32"


def resolve_dtype(dtype: str | None, device: str) -> str:
    """``dtype`` as given, else :func:`default_dtype` for ``device``."""
    return dtype if dtype is not None else default_dtype(device)


def load_kwargs(dtype: str, device: str, found: memory.Estimate | None) -> dict[str, Any]:
    """``from_pretrained``'s placement arguments for a resolved device and dtype.

    ``auto`` (several GPUs) loads with ``device_map="auto"``: accelerate puts whole blocks
    on each GPU and moves activations between them. ``max_memory`` caps each GPU at its
    free memory less its share of a run's working memory (:func:`memory.max_memory`), and
    names no CPU, so a model that does not fit is refused instead of running slowly with
    blocks offloaded to the CPU. Other devices load on the CPU and are moved with ``.to``.
    """
    kwargs: dict[str, Any] = {"dtype": _dtype(dtype)}
    if device == "auto":
        kwargs["device_map"] = "auto"
        budgets = memory.max_memory(found) if found is not None else None
        if budgets:
            kwargs["max_memory"] = budgets
    return kwargs


def execution_device(module: Any, fallback: Any) -> Any:
    """The torch device ``module`` computes on: accelerate's hook's execution device when
    the model was dispatched with a device map, else its first parameter's device (meta
    parameters, as in a skeleton for NDIF, do not count), else ``fallback``."""
    torch = _torch()
    hook = module.__dict__.get("_hf_hook")
    for each in getattr(hook, "hooks", (hook,)):  # accelerate's SequentialHook holds several
        where = getattr(each, "execution_device", None)
        if where is not None:  # accelerate writes GPU i as the bare integer i
            return torch.device("cuda", where) if isinstance(where, int) else torch.device(where)
    for parameter in module.parameters():
        if parameter.device.type != "meta":
            return parameter.device
    return torch.device(fallback)


def block_devices(model: Any, fallback: Any) -> tuple[Any, list[Any]]:
    """(device of the embeddings, device of each block) of a transformers causal LM.

    On one device every entry is that device. Under a device map a block's input arrives
    on the device of the module before it (the embeddings for block 0), since nnsight
    hands over ``.input`` before accelerate moves it to the block's own device.
    """
    embed = execution_device(model.get_input_embeddings(), fallback)
    return embed, [execution_device(block, fallback) for block in model.model.layers]


def _device_summary(embed: Any, blocks: list[Any]) -> str:
    """``embeddings cuda:0; blocks 0-13 cuda:0, 14-27 cuda:1``: where a device map put things."""
    runs: list[list[Any]] = []
    for i, where in enumerate(blocks):
        if runs and runs[-1][2] == where:
            runs[-1][1] = i
        else:
            runs.append([i, i, where])
    parts = [f"{a}-{b} {w}" if a != b else f"{a} {w}" for a, b, w in runs]
    return f"embeddings {embed}; blocks {', '.join(parts)}"


def _quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(folder: Path) -> dict[str, Any]:
    try:
        marker = json.loads((folder / _DENSE_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def dense_ok(folder: Path, digest: str) -> bool:
    """Whether ``folder`` is a finished dense copy of the GGUF with this sha256.

    Cheap (no file is read): the marker names the GGUF's sha256 and, since markers record
    them, every file of the copy with its size, so a truncated or missing file is caught.
    """
    marker = _marker(folder)
    if marker.get("sha256") != digest:
        return False
    sizes = marker.get("files")
    if sizes is None:  # a marker written before sizes were recorded
        return True
    try:
        return isinstance(sizes, dict) and all(
            (folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, TypeError):
        return False


def dense_intact(folder: Path) -> bool | None:
    """Whether every file of a dense copy still has the sha256 taken at conversion.

    Reads every file (~2 GB for qwen-coder-0.5b in float32), so it runs only after a load
    failed. None when the marker holds no sums (an older copy) or cannot be read.
    """
    sums = _marker(folder).get("file_sha256")
    if not isinstance(sums, dict) or not sums:
        return None
    try:
        return all(_file_sha256(folder / name) == value for name, value in sums.items())
    except OSError:
        return False


def discard_dense(folder: Path) -> None:
    """Mark a dense copy as unusable, so the next :func:`dense_copy` replaces it."""
    (folder / _DENSE_MARKER).unlink(missing_ok=True)


def _write_marker(folder: Path, digest: str, gguf_path: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.relative_to(folder).as_posix() for p in files]
    marker = {"sha256": digest, "gguf": str(gguf_path),
              "files": {n: p.stat().st_size for n, p in zip(names, files)},
              "file_sha256": {n: _file_sha256(p) for n, p in zip(names, files)}}
    (folder / _DENSE_MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True))


def dense_copy(gguf_path: Path, digest: str, models_dir: Path) -> Path:
    """Convert a GGUF file once into a dense safetensors folder; later loads take ~1 s.

    The folder is named by the GGUF's sha256, written under a temporary name and
    renamed into place, so a half-written conversion is never used. Its marker records
    each file's size and sha256 (:func:`dense_ok`, :func:`dense_intact`).
    """
    from refusal_checks.files import remove_stale
    from refusal_checks.models import STALE_AFTER_S

    target = models_dir / f"dense-{digest[:24]}"
    if dense_ok(target, digest):
        return target
    torch = _torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    models_dir.mkdir(parents=True, exist_ok=True)
    for pattern in (".dense-*", ".stale-*"):  # left by killed conversions
        remove_stale(models_dir, pattern, STALE_AFTER_S)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantised model until the quantizer is cleared
    # (../shared/MODELS.md); the weights are already dequantised to float32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=".dense-", dir=models_dir))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_marker(tmp, digest, gguf_path)
        try:
            os.replace(tmp, target)
        except OSError:
            # Either another process finished first (use theirs), or a folder without a
            # valid marker is in the way (a deleted marker, an interrupted rm -r): move
            # that aside, never load it.
            if not dense_ok(target, digest):
                aside = Path(tempfile.mkdtemp(prefix=".stale-", dir=models_dir))
                try:
                    os.replace(target, aside / "old")
                    os.replace(tmp, target)
                except OSError:  # a concurrent writer got there first
                    pass
                shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class NnsightBackend:
    """A Hugging Face causal LM wrapped by nnsight (see :class:`refusal_checks.backend.Backend`)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        fingerprint: str,
        dtype: str,
        device: str,
        info: dict[str, str] | None = None,
        remote: bool | str = False,
        lm: Any = None,
    ) -> None:
        from nnsight.modeling.transformers import TransformersModel

        if not getattr(tokenizer, "chat_template", None):
            raise BackendError(
                f"{name}'s tokenizer has no chat template, so there is no assistant turn to "
                "measure. refusal_checks checks chat models: use the instruct/chat variant, or "
                "add a 'chat_template' to the model folder's tokenizer_config.json."
            )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model.eval()
        self.tokenizer = tokenizer
        # lm: a wrapper nnsight built itself (a meta skeleton named by hub id, for NDIF).
        self.lm = lm if lm is not None else TransformersModel(model, tokenizer=tokenizer)
        # Passed to every trace and generation: False (here), True (NDIF) or "local"
        # (nnsight's serialise/deserialise simulation of NDIF; refusal_checks.remote).
        self.remote = remote
        tokenizer.padding_side = "left"  # nnsight does this too; positions count from the end
        self.name = name
        self.fingerprint = fingerprint
        self.dtype = dtype
        self.device = device
        config = model.config
        self.n_layers = int(config.num_hidden_layers)
        self.d_model = int(config.hidden_size)
        template_digest = hashlib.sha256(tokenizer.chat_template.encode()).hexdigest()[:16]
        self.info = {"dtype": dtype, "device": device, "chat_template": template_digest,
                     **(info or {})}
        if getattr(model, "hf_device_map", None):  # loaded with a device map (auto)
            self.info["device_map"] = _device_summary(*block_devices(model, device))
        # direction digest -> (r per block input, per-block write units, write sites), the
        # last ablation prepared; each vector on the device its block reads or writes on
        self._write_units: dict[str, tuple[Any, list[list[Any]], list[tuple[str, bool]]]] = {}

    # -- inputs -------------------------------------------------------------------------
    def render(self, texts: Sequence[str]) -> list[str]:
        """Each user message inside the model's chat template, ready for the reply."""
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            for text in texts
        ]

    def post_instruction_positions(self, texts: Sequence[str] = ()) -> list[int]:
        """Template tokens after the user's message (:mod:`refusal_checks.template`)."""
        from refusal_checks.template import post_instruction_positions

        return post_instruction_positions(self.tokenizer, self.render, texts)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of the rendered prompts (the template already holds special tokens)."""
        rendered = self.render(texts)
        return [self.tokenizer(r, add_special_tokens=False)["input_ids"] for r in rendered]

    def input_digest(self, prompts: PromptSet) -> str:
        ids = self.encode(prompts.texts)
        return hashlib.sha256(json.dumps(ids).encode()).hexdigest()

    def _batch(self, texts: Sequence[str]) -> dict[str, Any]:
        torch = _torch()
        encoded = self.tokenizer(
            self.render(texts), return_tensors="pt", padding=True, add_special_tokens=False
        )
        mask = encoded["attention_mask"]
        # Positions from the mask, so a prompt's activations do not depend on how much
        # left padding its batch needed (and so the cache key need not name batch size).
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        # The embeddings' device: under a device map (auto), the GPU that holds them.
        where = execution_device(self.model.get_input_embeddings(), self.device)
        return {
            "input_ids": encoded["input_ids"].to(where),
            "attention_mask": mask.to(where),
            "position_ids": position_ids.to(torch.long).to(where),
        }

    # -- measurements -------------------------------------------------------------------
    def residual_stream(
        self,
        prompts: PromptSet,
        layers: Sequence[int],
        positions: Sequence[int],
        *,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        torch = _torch()
        import nnsight

        layers = check_layers(layers, self.n_layers, self.name)
        positions = check_positions(positions)
        order = sorted(set(layers))  # nnsight needs modules requested in forward order
        index = torch.tensor(positions)
        texts = list(prompts.texts)
        # Left padding would silently hand back pad-token states for a position that lies
        # before the start of a short prompt; refuse it instead.
        shortest = min((len(ids) for ids in self.encode(texts)), default=0)
        if texts and -min(positions, default=-1) > shortest:
            raise BackendError(
                f"position {min(positions)} lies before the start of the shortest prompt of "
                f"{prompts.name!r}, which has {shortest} tokens after the chat template. "
                f"Use positions in -{shortest}..-1."
            )
        out = np.empty((len(texts), len(layers), len(positions), self.d_model), np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            with remote_scope(self.remote, self.name), torch.inference_mode(), self.lm.trace(
                    self._batch(chunk), logits_to_keep=1, remote=self.remote):
                # Built and saved inside the block: a remote run sends back only variables
                # bound there and marked saved (a dict filled from outside stays empty).
                saved = {}
                for layer in order:
                    # .input of block L is resid_pre; transformers 5 blocks take the hidden
                    # state as their first argument ([batch, seq, d_model]).
                    saved[layer] = self.lm.model.layers[layer].input[:, index, :]
                nnsight.save(saved)
            for j, layer in enumerate(layers):
                values = saved[layer].float().cpu().numpy()
                out[start : start + len(chunk), j] = values
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        if not np.isfinite(out).all():
            raise BackendError(
                f"{self.name} produced non-finite activations in dtype {self.dtype}. "
                "Try --refusal-dtype float32."
            )
        return out

    def refusal_token_ids(self, openings: Sequence[str] | None = None) -> list[int]:
        """First token of each refusal opening, as the model would emit it in a reply."""
        from refusal_checks.scoring import REFUSAL_OPENINGS

        ids = set()
        for opening in openings or REFUSAL_OPENINGS:
            tokens = self.tokenizer(opening, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(int(tokens[0]))
        return sorted(ids)

    def _prepare(self, intervention: Intervention | None) -> None:
        """Work out, before a trace, what ``_edit`` projects for an ablation.

        The unit vector to remove at each write depends on the family's layout and, behind
        a post-norm, on the norm's gains (:mod:`refusal_checks.architectures`). It is
        computed here, outside nnsight's trace (calling a module inside one would count as
        one of its calls), and an unknown family is refused before anything runs.
        """
        if not isinstance(intervention, Ablate):
            return
        key = intervention.key()["direction"]
        if key not in self._write_units:
            # Imported here, not at module level: NnsightBackend travels by value to NDIF,
            # and a module object among its methods' globals would drag the module's loader
            # (pytest's assertion-rewriting hook, with its config and capture files) along.
            from refusal_checks import architectures

            torch = _torch()
            r = torch.tensor(intervention.direction, dtype=torch.float32)
            units = architectures.write_directions(self.model, r)
            # Under a device map each block has its own GPU: its writes' units go there,
            # and r for its input to the device of the module before it (block_devices).
            embed, blocks = block_devices(self.model, self.device)
            dtype = self.model.dtype
            inputs = [r.to(dtype).to(where) for where in [embed, *blocks[:-1]]]
            as_model = [[u.to(dtype).to(where) for u in row] for row, where in zip(units, blocks)]
            # (source attribute, returns a tuple) per write: plain data for the trace body
            writes = architectures.layout_for(self.model).writes
            sites = [(w.source, w.tuple_output) for w in writes]
            self._write_units = {key: (inputs, as_model, sites)}

    def _edit(self, intervention: Intervention, torch: Any) -> None:
        """Apply one intervention inside the current nnsight forward pass.

        Must be called inside a trace (or once per step of a generation's ``iter`` loop),
        after :meth:`_prepare` outside it; modules are touched in forward order, as nnsight
        requires. Ablation projects ``r`` out of every block input and, at every write the
        family's layout lists, the vector that keeps the write orthogonal to ``r`` after any
        post-norm (``r`` itself where there is none).

        Each vector meets its activation on the activation's own device, read inside the
        trace: where :meth:`_prepare` placed it that costs nothing, and it stays right
        where the model sits elsewhere (NDIF's GPUs) or a device map moved a block.
        """
        if isinstance(intervention, Steer):
            block = self.lm.model.layers[intervention.layer]
            x = block.input
            block.input = x + torch.tensor(intervention.vector, dtype=self.model.dtype,
                                           device=x.device)
            return
        inputs, units, sites = self._write_units[intervention.key()["direction"]]

        def project_out(x: Any, u: Any) -> Any:
            u = u.to(x.device)
            return x - (x @ u)[..., None] * u

        for block, r, row in zip(self.lm.model.layers, inputs, units):
            block.input = project_out(block.input, r)
            for (name, tuple_output), u in zip(sites, row):
                source = getattr(block, name)
                if tuple_output:  # attention: (output, weights) in transformers 5
                    out = source.output
                    source.output = (project_out(out[0], u),) + tuple(out[1:])
                else:
                    source.output = project_out(source.output, u)

    def last_logprobs(
        self,
        prompts: PromptSet,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Log-probabilities of the first reply token: ``(prompt, vocab)`` float32."""
        torch = _torch()
        check_for_model(intervention, self.d_model, self.n_layers)
        self._prepare(intervention)
        texts = list(prompts.texts)
        out = np.empty((len(texts), self.model.config.vocab_size), np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            with remote_scope(self.remote, self.name), torch.inference_mode(), self.lm.trace(
                    self._batch(chunk), logits_to_keep=1, remote=self.remote):
                if intervention is not None:
                    self._edit(intervention, torch)
                # The model's logits, not lm_head's: Gemma-2 soft-caps them after the head.
                logits = self.lm.output.logits[:, -1, :].save()
            values = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            out[start : start + len(chunk), :] = values[:, : out.shape[1]]
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        return out

    def generate(
        self,
        prompts: PromptSet,
        max_new_tokens: int,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Greedy replies, new tokens only; with an intervention applied at every step.

        Without an intervention this is plain ``model.generate``. With one, nnsight edits
        the prompt pass and every generated token: the ``iter`` loop is required, without it
        only the prompt pass would be edited, silently (../shared/MODELS.md). A fixed number
        of steps runs (end token switched off, so the end token is neither banned nor a
        reason to stop early), and each reply is cut at its first end token, so the text
        equals what an early-stopping generate would give.
        """
        torch = _torch()
        check_for_model(intervention, self.d_model, self.n_layers)
        self._prepare(intervention)
        texts = list(prompts.texts)
        replies: list[str] = []
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        # Not the pad token: plain generate does not stop at it (a model may emit it), and
        # the pad it writes after a finished row always follows an end token.
        stop = {t for t in (*eos, self.tokenizer.eos_token_id) if t is not None}
        for start in range(0, len(texts), batch_size):
            batch = self._batch(texts[start : start + batch_size])
            batch.pop("position_ids")  # generate derives them from the mask itself
            options = dict(max_new_tokens=max_new_tokens, do_sample=False,
                           pad_token_id=self.tokenizer.pad_token_id)
            if intervention is None and not self.remote:
                with torch.inference_mode():
                    tokens = self.model.generate(**batch, **options)
            elif intervention is None:  # the weights are elsewhere: generate through nnsight
                with remote_scope(self.remote, self.name), torch.inference_mode(), \
                        self.lm.generate(batch, remote=self.remote, **options) as tracer:
                    tokens = tracer.result.save()
            else:
                # eos_token_id=None: the iter loop needs every step, and min_new_tokens alone
                # would get them by banning the end token, changing the greedy replies.
                with remote_scope(self.remote, self.name), torch.inference_mode(), \
                        self.lm.generate(batch, min_new_tokens=max_new_tokens,
                                         eos_token_id=None, remote=self.remote,
                                         **options) as tracer:
                    for _ in tracer.iter[:max_new_tokens]:
                        self._edit(intervention, torch)
                    tokens = tracer.result.save()
            new = tokens[:, batch["input_ids"].shape[1] :].tolist()
            cut = [row[: next((i for i, t in enumerate(row) if t in stop), len(row))]
                   for row in new]
            replies += self.tokenizer.batch_decode(cut, skip_special_tokens=True)
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        return replies

    def orthogonalised(self, direction: np.ndarray) -> Any:
        """A copy of the model whose weights never write ``direction`` into the residual stream.

        ``W <- W - r_hat r_hat^T W`` on the embeddings and on every write the family's
        layout lists (Arditi et al.; behind a post-norm against the gain-weighted direction,
        :mod:`refusal_checks.architectures`): the same edit as hook ablation, with no hooks,
        so the edited model can be saved with ``save_pretrained`` and shipped.

        Raises:
            BackendError: The model's family is not in the ablation table.
        """
        import copy

        torch = _torch()
        ablate = Ablate(direction)  # refuses NaN/inf and the zero vector, and normalises
        check_for_model(ablate, self.d_model, self.n_layers)  # the width, with the fix
        from refusal_checks import architectures  # not a module global: see _prepare

        architectures.layout_for(self.model)  # an unknown family fails before the copy
        model = copy.deepcopy(self.model)
        if model.config.tie_word_embeddings or (
                model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()):
            # Untie first: the read-out must keep the original embeddings.
            model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            model.config.tie_word_embeddings = False
        architectures.orthogonalise_writes(model, torch.tensor(ablate.direction,
                                                               dtype=torch.float32))
        return model

def _dtype(name: str) -> Any:
    torch = _torch()
    if name not in DTYPES:
        raise BackendError(f"dtype {name!r} is not supported. Use one of: {', '.join(DTYPES)}.")
    return getattr(torch, name)


def load_folder(
    folder: Path,
    *,
    name: str,
    fingerprint: str,
    dtype: str | None,
    device: str,
    info: dict[str, str] | None = None,
) -> NnsightBackend:
    """Load a model saved with ``save_pretrained`` (a local folder or a dense GGUF copy).

    ``dtype`` None is :func:`default_dtype` for the device; the backend records the dtype
    it resolved to, so caches and reports name the one the numbers were computed in.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    found = _check_fits_folder(name, folder, dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder),
                                                     **load_kwargs(dtype, device, found))
    except (OSError, ValueError, KeyError) as error:
        raise BackendError(
            f"could not load the model in {folder} for {name}: {error}. The folder needs "
            "config.json, the weights and the tokenizer files (as written by save_pretrained)."
        ) from None
    _place(model, device)
    return NnsightBackend(model, tokenizer, name=name, fingerprint=fingerprint, dtype=dtype,
                          device=device, info=info)


def _place(model: Any, device: str) -> None:
    """Move a model loaded on the CPU to its one device; a device map placed it already."""
    if device != "auto":
        model.to(device)


def _check_fits_folder(name: str, folder: Path, dtype: str,
                       device: str) -> memory.Estimate | None:
    """Refuse, before loading, a model whose weights would not fit (refusal_checks.memory);
    the estimate, when one could be made."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None  # from_pretrained reports a missing or broken config with its own message
    return memory.check_fits(name, folder, config, dtype, device)


def _env_true(name: str) -> bool:
    """huggingface_hub's reading of a boolean environment variable."""
    return os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}


def _hub_unreachable(repo_id: str, revision: str | None) -> str | None:
    """Why the hub cannot be reached (one request, no retries), or None if it answered.

    Any HTTP answer (404, 401 for a gated model, ...) counts as reachable: the real
    download then raises its own, specific error.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return None
    except Exception as error:  # DNS, refused connection, timeout, TLS, offline mode
        return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    return None


def load_hub(
    repo_id: str,
    revision: str | None,
    *,
    name: str,
    dtype: str | None,
    device: str,
) -> NnsightBackend:
    """Load from the Hugging Face hub (or its local cache when the hub is out of reach)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    attempts: list[str] = []
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    loaded = None
    for local_only in (True,) if offline else (True, False):
        if not local_only:
            # huggingface_hub retries a failed HEAD for ~23 s per file (1+2+4+8+8 s of
            # backoff), and from_pretrained asks for several files: ~50 s before an
            # offline machine gets its error. One request without retries tells first.
            unreachable = _hub_unreachable(repo_id, revision)
            if unreachable:
                attempts.append(f"hub: unreachable ({unreachable})")
                break
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                repo_id, revision=revision, local_files_only=local_only
            )
            found = memory.check_hub(name, repo_id, revision, dtype, device, local_only)
            model = AutoModelForCausalLM.from_pretrained(
                repo_id, revision=revision, local_files_only=local_only,
                **load_kwargs(dtype, device, found))
            loaded = model, tokenizer
            break
        except BackendError:  # it will not fit: say so, do not try the hub as well
            raise
        except Exception as error:  # hub errors come in many classes; all end the same way
            where = "local cache" if local_only else "hub"
            first_line = (str(error).splitlines() or [""])[0][:200]
            attempts.append(f"{where}: {type(error).__name__}: {first_line}")
    if loaded is None:
        raise BackendError(
            f"could not load {name} ({repo_id}{'@' + revision if revision else ''}) from the "
            f"Hugging Face hub or its local cache. Tried: {'; '.join(attempts)}. If this "
            "machine is offline, download the model elsewhere (hf download ...) and pass "
            "--model /path/to/folder; for a gated model (llama, gemma) accept its licence on "
            "the hub and run 'hf auth login'."
        )
    model, tokenizer = loaded
    _place(model, device)
    commit = getattr(model.config, "_commit_hash", None) or revision or "unknown"
    return NnsightBackend(
        model, tokenizer, name=name, fingerprint=f"hub:{repo_id}@{commit}", dtype=dtype,
        device=device, info={"source": f"hub:{repo_id}", "revision": str(commit)},
    )
