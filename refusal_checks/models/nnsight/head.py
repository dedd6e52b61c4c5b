"""The chat template's shared head: computed once per (model, edit), not once per prompt.

A chat template puts the same tokens in front of every user message: on
qwen-coder-0.5b ``<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a
helpful assistant.<|im_end|>\\n<|im_start|>user\\n``, 24 tokens of a 44-token average
prompt. Causal attention means those tokens' keys and values do not depend on what
follows them, so :class:`SharedHead` computes them once, in a batch of one, and every
batch then runs only its prompts' distinct suffixes against them. An edit that reaches the
head's tokens (a steer adds its vector at every position, an ablation projects at every
position) changes them, so the head is computed once per edit, with the same edit applied.

The head is found from the template, not listed: the template's text in front of a
message, tokenized, as far as it matches the start of the whole prompt's tokens
(:func:`head_ids`). A prompt runs against it only when its own encoding starts with
exactly those ids, so head plus suffix is token for token the full pass's input (a
tokenizer that merged the head's last token with a message's first character fails that
check); otherwise its batch runs the full pass. Each row sees exactly what the full pass shows it:
the head at positions ``0..h-1``, its own tokens after it, padding (now between head and
suffix) masked out, position ids counted from the mask. The values equal the full pass's
up to float32 rounding: the head's keys and values come from a batch of one instead of a
padded batch, which changes the matmul blocking (tests/adapter/test_shared_head.py).

Off (every row runs the full pass) on NDIF (nothing is kept between traces) and under a
device map (the keys would have to sit on each block's device); the reason is in the
model's ``info["shared_head"]``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from refusal_checks.models.interventions import Intervention
from refusal_checks.models.nnsight.devices import execution_device, import_torch
from refusal_checks.models.template import PROBES

# Edits whose head keys/values are kept: 0.6 MB each on qwen-coder-0.5b (24 layers x 2 x
# 24 tokens x 128 float32 values), ~3 MB on a 7B model in bfloat16, so the sweep's
# settings and Arditi's candidates at one layer all stay; older ones are recomputed (one
# pass over the head) when needed again.
MAX_EDITS = 64


def head_ids(render: Callable[[Sequence[str]], list[str]],
             tokenize: Callable[[str], list[int]]) -> list[int]:
    """The token ids the template puts in front of every message (may be empty).

    For each probe, the template's text before the message is tokenized alone and compared
    with the probe's full encoding: the head is the run both share from the start (a token
    that the full encoding merges across the message's first character is not in it), and
    the shortest such run over the probes, so it holds for messages starting any way.
    """
    runs = []
    for message, rendered in zip(PROBES, render(PROBES)):
        start = rendered.rfind(message)
        if start <= 0:
            return []
        alone, full = tokenize(rendered[:start]), tokenize(rendered)
        n = 0
        while n < min(len(alone), len(full)) and alone[n] == full[n]:
            n += 1
        runs.append(full[:n])
    shortest = min(runs, key=len)
    return shortest if all(run[: len(shortest)] == shortest for run in runs) else []


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices per batch: prompts in order of length (ties in their own order), cut
    every ``batch_size``. A batch is padded to its longest prompt, so batching prompts of
    like length pads least; with the head reused the padding is a larger share of what is
    left (on the bundled benign prompts 4,752 padded suffix tokens in file order, 2,944
    sorted, for 2,521 real ones). Each prompt's values do not depend on its batch (positions
    come from the mask), up to float32 rounding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    size = max(1, int(batch_size))
    return [order[start:start + size] for start in range(0, len(order), size)]


def edit_key(intervention: Any) -> str:
    """The key of an edit's head: its intervention key, or "none" when unedited."""
    return "none" if intervention is None else json.dumps(intervention.key(), sort_keys=True)


class SharedHead:
    """The head's token ids and, per edit, its keys and values (one row, every layer).

    Attributes:
        ids: The head's token ids (empty: off).
        off: Why the head is not reused on this backend, or None.
        hits: Lookups that found the head's keys and values under their edit.
        misses: Lookups that did not (each is one pass over the head).
    """

    def __init__(self, ids: Sequence[int], off: str | None = None) -> None:
        self.ids = list(ids) if off is None else []
        self.off = off if off is not None else (None if ids else
                                                "the template puts no common head in front of messages")
        self._kv: OrderedDict[str, list[tuple[Any, Any]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def describe(self) -> str:
        """For the model's info: the head's length, or why it is off."""
        if self.off:
            return f"off: {self.off}"
        return f"{len(self.ids)} tokens computed once per edit"

    def split(self, encoded: Sequence[Sequence[int]], deepest: int) -> list[list[int]] | None:
        """Each prompt's tokens after the head, or None when the batch must run whole.

        ``deepest``: how many tokens from the end a caller reads (positions ``-deepest..-1``
        must lie in every suffix, or the head would hide them).
        """
        h = len(self.ids)
        if not h or any(list(row[:h]) != self.ids for row in encoded):
            return None
        suffixes = [list(row[h:]) for row in encoded]
        if min(len(s) for s in suffixes) < max(1, deepest):
            return None
        return suffixes

    def get(self, key: str) -> list[tuple[Any, Any]] | None:
        """The head's per-layer ``(keys, values)`` under an edit, if kept."""
        kv = self._kv.get(key)
        if kv is not None:
            self._kv.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return kv

    def put(self, key: str, kv: list[tuple[Any, Any]]) -> None:
        self._kv[key] = kv
        self._kv.move_to_end(key)
        while len(self._kv) > MAX_EDITS:
            self._kv.popitem(last=False)


def suffix_inputs(torch: Any, head: int, suffixes: Sequence[Sequence[int]], pad: int,
                  where: Any) -> dict[str, Any]:
    """Left-padded suffix ids, the full mask (head, padding, suffix) and position ids.

    Position ids count the mask from the head's first token, so each suffix token sits
    where it sits in the full pass whatever padding its batch needed.
    """
    width = max(len(s) for s in suffixes)
    ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in suffixes])
    tail = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes])
    mask = torch.cat([torch.ones(len(suffixes), head, dtype=tail.dtype), tail], dim=1)
    position_ids = (head + tail.cumsum(-1) - 1).clamp(min=head)
    return {"input_ids": ids.to(where), "attention_mask": mask.to(where),
            "position_ids": position_ids.to(torch.long).to(where)}


def expanded_cache(kv: Sequence[tuple[Any, Any]], rows: int, config: Any) -> Any:
    """A fresh cache holding the head for ``rows`` rows (a forward pass appends to it)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                                        for k, v in kv], config=config)


def cache_keyword(model: Any) -> str:
    """The keyword a model's forward takes its key/value cache by (transformers 5.2x
    renamed ``past_key_values`` to ``cache``)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class HeadInputs:
    """Batch inputs that reuse the shared head, for
    :class:`~refusal_checks.models.nnsight.backend.NnsightBackend` (a mixin, like
    :class:`~refusal_checks.models.nnsight.interventions.NnsightInterventions`)."""

    model: Any
    lm: Any
    tokenizer: Any
    device: Any
    remote: Any
    head: SharedHead
    info: dict[str, str]
    _cache_kw: str
    _one_device: bool
    # and, from the backend and the edit mixin: render(texts), encode(texts), _tokenize(text),
    # _batch(texts), _edit(...)

    def _find_head(self) -> None:
        """Find the template's head under the current rendering (again after the system
        prompt changes it); none is kept from before."""
        self.head = SharedHead(head_ids(self.render, self._tokenize), off=(
            "remote traces keep nothing between them" if self.remote else
            None if self._one_device else "the model is spread over devices by a device map"))
        self.info["shared_head"] = self.head.describe()

    def _inputs(self, texts: Sequence[str], intervention: Intervention | None,
                deepest: int = 1, encoded: Sequence[Sequence[int]] | None = None,
                new_tokens: int = 0) -> tuple[dict[str, Any], Any]:
        """A batch's inputs and the cache holding the template's head, or (full batch, None).

        With the head reused, ``input_ids`` holds only the suffixes and the returned cache
        the head's keys and values under ``intervention`` (for every row); ``deepest``: the
        furthest position from the end the caller reads, which must lie in every suffix.
        Off on NDIF, which keeps nothing between traces, and where sliding-window attention
        could reach the head: the window counts cache slots, and the padding now between
        head and suffix would move the head away (``new_tokens``: what generation adds).
        ``encoded``: the texts' token ids, where the caller has them already.
        """
        if not self.remote and self.head.ids:
            suffixes = self.head.split(self.encode(texts) if encoded is None else encoded,
                                       deepest)
            window = getattr(self.model.config, "sliding_window", None)
            if suffixes is not None and window and (
                    len(self.head.ids) + max(map(len, suffixes)) + new_tokens > int(window)):
                suffixes = None
            if suffixes is not None:
                torch = import_torch()
                where = execution_device(self.model.get_input_embeddings(), self.device)
                kv = self._head_kv(intervention, where)
                if kv is None:
                    return self._batch(texts), None
                batch = suffix_inputs(torch, len(self.head.ids), suffixes,
                                      self.tokenizer.pad_token_id, where)
                from refusal_checks.core import cost  # not a module global: travels to NDIF

                cost.note(shared_head=len(texts))
                return batch, expanded_cache(kv, len(texts), self.model.config)
        return self._batch(texts), None

    def _by_length(self, texts: Sequence[str], batch_size: int,
                   encoded: Sequence[Sequence[int]] | None = None
                   ) -> Iterator[tuple[list[int], list[str], list[Sequence[int]]]]:
        """(row indices, texts, token ids) per batch, prompts of like length together
        (:func:`length_batches`); each prompt is encoded once."""
        encoded = self.encode(texts) if encoded is None else encoded
        for rows in length_batches([len(ids) for ids in encoded], batch_size):
            yield rows, [texts[i] for i in rows], [encoded[i] for i in rows]

    def _with_head(self, head: Any) -> dict[str, Any]:
        """The keyword that hands a forward pass or generate the head's cache (if any)."""
        return {} if head is None else {self._cache_kw: head}

    def _head_kv(self, intervention: Intervention | None,
                 where: Any) -> list[tuple[Any, Any]] | None:
        """The head's per-layer keys and values under ``intervention`` (computed once), or
        None when the model's cache does not hold them per layer (the head is then off)."""
        key = edit_key(intervention)
        kv = self.head.get(key)
        if kv is None:
            torch = import_torch()
            from transformers import DynamicCache

            n = len(self.head.ids)
            batch = {"input_ids": torch.tensor([self.head.ids], device=where),
                     "attention_mask": torch.ones(1, n, dtype=torch.long, device=where),
                     "position_ids": torch.arange(n, device=where)[None]}
            cache = DynamicCache(config=self.model.config)  # filled in place by the pass
            with torch.inference_mode():
                if intervention is None:
                    self.model(**batch, **{self._cache_kw: cache}, use_cache=True,
                               logits_to_keep=1)
                else:
                    with self.lm.trace(batch, **{self._cache_kw: cache}, use_cache=True,
                                       logits_to_keep=1):
                        self._edit(intervention, torch)
            kv = [(getattr(layer, "keys", None), getattr(layer, "values", None))
                  for layer in getattr(cache, "layers", ())]
            if not kv or any(k is None or k.shape[-2] != n for k, _ in kv):
                # A cache of another kind (a recurrent state, a compressed cache): run whole.
                self.head.ids, self.head.off = [], f"the model's cache is a {type(cache).__name__}"
                self.info["shared_head"] = self.head.describe()
                return None
            self.head.put(key, kv)
        return kv

