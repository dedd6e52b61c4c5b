"""The nnsight backend: a Hugging Face causal LM measured through nnsight traces.

:class:`NnsightBackend` owns the chat template and tokenisation, reads the residual
stream and first-token log-probabilities inside traces, applies interventions (steering;
directional ablation, behind a post-norm through :mod:`refusal_checks.models.architectures`)
and generates, and hands the rest of the library plain numpy arrays. The interventions'
edits live in :mod:`refusal_checks.models.nnsight.interventions`, devices and dtypes in
:mod:`refusal_checks.models.nnsight.devices`, loading in :mod:`refusal_checks.models.nnsight.loading`,
GGUF conversion in :mod:`refusal_checks.models.nnsight.dense`. A steer reuses the unedited blocks
below it from :mod:`refusal_checks.models.prefix_store`.
torch, transformers and nnsight are imported where they are used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks.models.backend import (BackendError, FirstLogprobs, ProgressCallback, check_layers,
                                    check_positions)
from refusal_checks.models.interventions import Intervention, Steer, check_for_model
from refusal_checks.models.nnsight.devices import (block_devices, device_summary, execution_device,
                                            import_torch)
from refusal_checks.models.nnsight.head import HeadInputs, cache_keyword
from refusal_checks.models.nnsight.interventions import NnsightInterventions
from refusal_checks.models.prefix_store import PrefixStore, batch_digest
from refusal_checks.models.reply_tokens import ReplyTokens, cut, trim
from refusal_checks.prompts.load import PromptSet
from refusal_checks.models.remote import remote_scope


class NnsightBackend(HeadInputs, NnsightInterventions):
    """A Hugging Face causal LM wrapped by nnsight (see :class:`refusal_checks.models.backend.Backend`)."""

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
        system_prompt: str | None = None,
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
        # (nnsight's serialise/deserialise simulation of NDIF; refusal_checks.models.remote).
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
        # Prefixes are reused only on one device (under a device map each skipped block
        # would need its output on the next block's device) and, in _prefix_layer, locally.
        self._one_device = True
        if getattr(model, "hf_device_map", None):  # loaded with a device map (auto)
            embed, blocks = block_devices(model, device)
            self.info["device_map"] = device_summary(embed, blocks)
            self._one_device = len({str(where) for where in (embed, *blocks)}) == 1
        # block L's unedited input per (batch, L): see last_logprobs
        self.prefix = PrefixStore()
        self._write_units = {}  # the last ablation prepared (NnsightInterventions._prepare)
        self._cache_kw = cache_keyword(model)
        self.use_system_prompt(system_prompt)

    # -- inputs -------------------------------------------------------------------------
    def render(self, texts: Sequence[str]) -> list[str]:
        """Each user message inside the model's chat template, ready for the reply, with the
        system prompt of :meth:`use_system_prompt` (the template's default unless set)."""
        return self._render(texts)

    def use_system_prompt(self, value: str | None) -> None:
        """Render with this system prompt (``default``, ``none`` or a text; see
        :mod:`refusal_checks.models.system_prompt`), checked now, before any model work, and
        named in :attr:`info`. The rendered text feeds ``input_digest``, so cache keys follow.

        Raises:
            BackendError: The template cannot render this choice; the message says what to do.
        """
        from refusal_checks.models.system_prompt import SystemPrompt

        choice = SystemPrompt.parse(value)
        # Anything the constructor derives from the rendering (the template's tokens in front
        # of every message) must be derived again here, after the new renderer is set.
        self._render = choice.renderer(self.tokenizer)
        self.system_prompt = choice
        self.info["system_prompt"] = choice.record()
        self.info["system_text"] = choice.text(self.tokenizer)
        self._find_head()  # the template's head under this rendering

    def post_instruction_positions(self, texts: Sequence[str] = ()) -> list[int]:
        """Template tokens after the user's message (:mod:`refusal_checks.models.template`)."""
        from refusal_checks.models.template import post_instruction_positions

        return post_instruction_positions(self.tokenizer, self.render, texts)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of the rendered prompts (the template already holds special tokens)."""
        return [self._tokenize(r) for r in self.render(texts)]

    def _tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def input_digest(self, prompts: PromptSet) -> str:
        ids = self.encode(prompts.texts)
        return hashlib.sha256(json.dumps(ids).encode()).hexdigest()

    def _batch(self, texts: Sequence[str]) -> dict[str, Any]:
        torch = import_torch()
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
        torch = import_torch()
        import nnsight

        layers = check_layers(layers, self.n_layers, self.name)
        positions = check_positions(positions)
        order = sorted(set(layers))  # nnsight needs modules requested in forward order
        index = torch.tensor(positions)
        texts = list(prompts.texts)
        # Left padding would silently hand back pad-token states for a position that lies
        # before the start of a short prompt; refuse it instead.
        encoded = self.encode(texts)  # once: for the batches and the head's split
        lengths = [len(ids) for ids in encoded]
        shortest = min(lengths, default=0)
        if texts and -min(positions, default=-1) > shortest:
            raise BackendError(
                f"position {min(positions)} lies before the start of the shortest prompt of "
                f"{prompts.name!r}, which has {shortest} tokens after the chat template. "
                f"Use positions in -{shortest}..-1."
            )
        out = np.empty((len(texts), len(layers), len(positions), self.d_model), np.float32)
        done = 0
        for rows, chunk, ids in self._by_length(texts, batch_size, encoded):
            batch, head = self._inputs(chunk, None, -min(positions), ids)
            with remote_scope(self.remote, self.name), torch.inference_mode(), self.lm.trace(
                    batch, **self._with_head(head), logits_to_keep=1, remote=self.remote):
                # Built and saved inside the block: a remote run sends back only variables
                # bound there and marked saved (a dict filled from outside stays empty).
                saved = {}
                for layer in order:
                    # .input of block L is resid_pre; transformers 5 blocks take the hidden
                    # state as their first argument ([batch, seq, d_model]).
                    saved[layer] = self.lm.model.layers[layer].input[:, index, :]
                nnsight.save(saved)
            for j, layer in enumerate(layers):
                out[rows, j] = saved[layer].float().cpu().numpy()
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        if not np.isfinite(out).all():
            raise BackendError(
                f"{self.name} produced non-finite activations in dtype {self.dtype}. "
                "Try --refusal-dtype float32."
            )
        return out

    def refusal_token_ids(self, openings: Sequence[str] | None = None) -> list[int]:
        """First token of each refusal opening, as the model would emit it in a reply."""
        from refusal_checks.models.scoring import REFUSAL_OPENINGS

        ids = set()
        for opening in openings or REFUSAL_OPENINGS:
            tokens = self.tokenizer(opening, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(int(tokens[0]))
        return sorted(ids)

    def last_logprobs(
        self,
        prompts: PromptSet,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Log-probabilities of the first reply token: ``(prompt, vocab)`` float32.

        A steer at block ``L > 0`` of a local model keeps each batch's unedited input to
        block ``L`` in :attr:`prefix`; the next steer of the same batch (same token ids and
        padding) at ``L`` skips blocks ``0..L-1`` and starts from it. The values are the
        full pass's: blocks below ``L`` never see the edit.
        """
        torch = import_torch()
        check_for_model(intervention, self.d_model, self.n_layers)
        self._prepare(intervention)
        layer = self._prefix_layer(intervention)
        texts = list(prompts.texts)
        out = np.empty((len(texts), self.model.config.vocab_size), np.float32)
        reused = 0
        done = 0
        for rows, chunk, ids in self._by_length(texts, batch_size):
            batch, head = self._inputs(chunk, intervention, encoded=ids)
            key = prefix = None
            if layer is not None:
                key = (batch_digest(batch["input_ids"].cpu().numpy(),  # and the head, if used
                                    batch["attention_mask"].cpu().numpy(),
                                    np.asarray(self.head.ids if head is not None else [])), layer)
                prefix = self.prefix.get(key)
            with remote_scope(self.remote, self.name), torch.inference_mode(), self.lm.trace(
                    batch, **self._with_head(head), logits_to_keep=1, remote=self.remote):
                if prefix is not None:
                    # Each skipped block "returns" the prefix; only block L-1's reaches a
                    # block that runs. Masks and rotary embeddings are the model's, not
                    # the blocks', so block L still gets them.
                    for i in range(layer):
                        self.lm.model.layers[i].skip(prefix)
                if key is not None and prefix is None:
                    below = self.lm.model.layers[layer - 1].output.save()
                if intervention is not None:
                    unedited = self._edit(intervention, torch)
                    if key is not None and prefix is None:
                        unedited = unedited.save()
                # The model's logits, not lm_head's: Gemma-2 soft-caps them after the head.
                logits = self.lm.output.logits[:, -1, :].save()
            # Kept only where block L-1's output IS block L's input: a skipped block hands
            # on the prefix, so code between blocks (or a block returning a tuple) would
            # be lost. transformers 5's Llama, Qwen, Mistral, Gemma and OLMo pass it on as is.
            if (key is not None and prefix is None and isinstance(below, torch.Tensor)
                    and below.shape == unedited.shape and torch.equal(below, unedited)):
                self.prefix.put(key, unedited, unedited.numel() * unedited.element_size())
            reused += prefix is not None
            values = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            out[rows, :] = values[:, : out.shape[1]]
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        if reused:
            from refusal_checks.core import cost  # not a module global: see _prepare

            cost.note(prefix_reuses=reused)
        return out

    def _prefix_layer(self, intervention: Intervention | None) -> int | None:
        """The block whose unedited input this call keeps or reuses, or None.

        Only a steer edits one block: an ablation edits every block input from 0 on. Not
        remote: NDIF (or its simulation, set after loading) keeps nothing between traces.
        """
        if (isinstance(intervention, Steer) and intervention.layer > 0 and not self.remote
                and self._one_device and self.prefix.max_bytes > 0):
            return intervention.layer
        return None

    def generate(
        self,
        prompts: PromptSet,
        max_new_tokens: int,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
        first_logprobs: FirstLogprobs | None = None,
        reply_tokens: ReplyTokens | None = None,
    ) -> list[str]:
        """Greedy replies, new tokens only; with an intervention applied at every step.

        Without an intervention this is plain ``model.generate``. With one, nnsight edits
        the prompt pass and every generated token: the ``iter`` loop is required, without it
        only the prompt pass would be edited, silently (../shared/MODELS.md). A fixed number
        of steps runs (end token switched off, so the end token is neither banned nor a
        reason to stop early), and each reply is cut at its first end token, so the text
        equals what an early-stopping generate would give.

        ``first_logprobs`` (local models): the first step's logits are read in the same
        trace (nnsight's step 0, the prompt pass), so the cheap score of a judged reply
        needs no second forward pass; the same computation as :meth:`last_logprobs` on the
        same batch (tests/adapter/test_first_step.py).

        ``reply_tokens``: called per batch with each row's new token ids up to its first
        end token (:func:`refusal_checks.models.reply_tokens.trim`); :meth:`reply_text`
        turns them into the reply of any budget up to ``max_new_tokens``.
        """
        torch = import_torch()
        check_for_model(intervention, self.d_model, self.n_layers)
        self._prepare(intervention)
        texts = list(prompts.texts)
        stop = self.stop_tokens()  # not the pad token (see stop_tokens)
        # On NDIF the logits would travel back at full vocabulary per batch; callers score
        # with last_logprobs there instead.
        capture = first_logprobs is not None and not self.remote
        vocab = self.model.config.vocab_size
        replies: list[str] = [""] * len(texts)
        done = 0
        for rows, chunk, ids in self._by_length(texts, batch_size):
            batch, head = self._inputs(chunk, intervention, encoded=ids, new_tokens=max_new_tokens)
            batch.pop("position_ids")  # generate derives them from the mask itself
            if head is not None:  # generate takes the whole input and skips what is cached
                ids = torch.tensor([self.head.ids], device=batch["input_ids"].device)
                batch["input_ids"] = torch.cat(
                    [ids.expand(len(chunk), -1), batch["input_ids"]], dim=1)
            options = dict(max_new_tokens=max_new_tokens, do_sample=False,
                           pad_token_id=self.tokenizer.pad_token_id, **self._with_head(head))
            first = None
            if intervention is None and not self.remote and not capture:
                with torch.inference_mode():
                    tokens = self.model.generate(**batch, **options)
            elif intervention is None:  # through nnsight: remote weights, or step 0 read
                with remote_scope(self.remote, self.name), torch.inference_mode(), \
                        self.lm.generate(batch, remote=self.remote, **options) as tracer:
                    if capture:
                        # Step 0 only: a batch whose rows all end early has no later step.
                        for _ in tracer.iter[:1]:
                            first = self.lm.output.logits[:, -1, :].save()
                    tokens = tracer.result.save()
            else:
                # eos_token_id=None: the iter loop needs every step, and min_new_tokens alone
                # would get them by banning the end token, changing the greedy replies.
                with remote_scope(self.remote, self.name), torch.inference_mode(), \
                        self.lm.generate(batch, min_new_tokens=max_new_tokens,
                                         eos_token_id=None, remote=self.remote,
                                         **options) as tracer:
                    for step in tracer.iter[:max_new_tokens]:
                        self._edit(intervention, torch)
                        if capture and step == 0:
                            first = self.lm.output.logits[:, -1, :].save()
                    tokens = tracer.result.save()
            if first is not None and first_logprobs is not None:
                values = torch.log_softmax(first.float(), dim=-1).cpu().numpy()
                first_logprobs(chunk, values[:, :vocab])
            new = tokens[:, batch["input_ids"].shape[1] :].tolist()
            if reply_tokens is not None:
                reply_tokens(chunk, [trim(row, stop) for row in new])
            cut = [row[: next((i for i, t in enumerate(row) if t in stop), len(row))]
                   for row in new]
            for i, reply in zip(rows, self.tokenizer.batch_decode(cut, skip_special_tokens=True)):
                replies[i] = reply
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        return replies

    # -- replies as tokens (refusal_checks.models.reply_tokens) ---------------------------
    def stop_tokens(self) -> frozenset[int]:
        """The end tokens :meth:`generate` cuts a reply at (the generation config's and the
        tokenizer's end of text; not the pad token: plain generate does not stop at it, a
        model may emit it, and the pad it writes after a finished row follows an end token)."""
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        return frozenset(int(t) for t in (*eos, self.tokenizer.eos_token_id) if t is not None)

    def reply_text(self, rows: Sequence[Sequence[int]], max_new_tokens: int) -> list[str]:
        """The ``max_new_tokens``-token replies held in generated rows (``reply_tokens`` of
        :meth:`generate` at that budget or a longer one): cut in tokens, then decoded as
        :meth:`generate` decodes."""
        stop = self.stop_tokens()
        return self.tokenizer.batch_decode([cut(row, max_new_tokens, stop) for row in rows],
                                           skip_special_tokens=True)
