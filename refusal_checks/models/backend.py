"""The Backend protocol: what the claims need from a model, as plain numpy.

Two implementations exist: :mod:`refusal_checks.models.nnsight.backend` (any Hugging Face
causal LM, through nnsight) and :mod:`refusal_checks.models.synthetic` (planted worlds with
known answers). Claims and fixtures only ever see this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from refusal_checks.errors import BackendError
from refusal_checks.models.interventions import Intervention
from refusal_checks.models.reply_tokens import ReplyTokens
from refusal_checks.prompts.sets import PromptSet

__all__ = ["Backend", "BackendError", "FirstLogprobs", "ProgressCallback", "check_layers",
           "check_positions"]

# Called after each batch with (prompts done, prompts total).
ProgressCallback = Callable[[int, int], None]
# Called after each generated batch with (its prompt texts, their first reply token's
# log-probabilities, float32 ``(prompt, vocab)``): the prompt pass generation computed anyway.
FirstLogprobs = Callable[[Sequence[str], np.ndarray], None]


@runtime_checkable
class Backend(Protocol):
    """A model the claims can measure.

    Attributes:
        name: Display name (the alias or path the user gave).
        fingerprint: Identity of the weights (hash or hub revision); part of every cache key.
        n_layers: Number of decoder blocks.
        d_model: Width of the residual stream.
        dtype: Compute dtype as text ("float32", "bfloat16", ...).
        info: Facts for reports (source, revision, chat template digest, ...).
    """

    name: str
    fingerprint: str
    n_layers: int
    d_model: int
    dtype: str
    info: dict[str, str]

    def input_digest(self, prompts: PromptSet) -> str:
        """Digest of exactly what the model reads for these prompts (template and tokens)."""
        ...

    def use_system_prompt(self, value: str | None) -> None:
        """Render every prompt with this system prompt: ``default`` (or None: the chat
        template's own), ``none`` or a text (:mod:`refusal_checks.models.system_prompt`);
        named in :attr:`info`, and part of :meth:`input_digest` through the rendering.

        Raises:
            BackendError: This backend cannot render the choice; the message says what to do.
        """
        ...

    def post_instruction_positions(self, texts: Sequence[str] = ()) -> list[int]:
        """Positions of the chat-template tokens after the user's message, as negative
        offsets from the end (Arditi et al.'s candidate positions); ``texts``: prompts the
        answer must hold for."""
        ...

    def residual_stream(
        self,
        prompts: PromptSet,
        layers: Sequence[int],
        positions: Sequence[int],
        *,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Residual stream at the input of each requested block ("resid_pre").

        Args:
            prompts: The user messages; the backend applies the chat template.
            layers: Block indices in ``[0, n_layers)``; layer ``L`` is the input of block ``L``.
            positions: Negative offsets from the end of the templated prompt
                (``-1`` is the last template token, ``-2`` the one before).
            batch_size: Prompts per forward pass.
            progress: Called with (done, total) after each batch.

        Returns:
            float32 array of shape ``(prompt, layer, position, d_model)``.
        """
        ...

    def last_logprobs(
        self,
        prompts: PromptSet,
        *,
        intervention: Intervention | None = None,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Log-probabilities of the first reply token, with ``intervention`` applied.

        Returns:
            float32 array of shape ``(prompt, vocab)``.
        """
        ...

    def refusal_token_ids(self, openings: Sequence[str] | None = None) -> list[int]:
        """Token ids that open a refusal: the first token of each opening (by default
        :data:`refusal_checks.models.scoring.REFUSAL_OPENINGS`), as the model would emit it."""
        ...

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
        """Greedy replies to the prompts (new text only), with ``intervention`` applied at
        every step when one is given.

        ``first_logprobs``, when given, is called per batch with the log-probabilities of
        the first reply token (what :meth:`last_logprobs` returns under the same
        intervention, taken from the generation's own prompt pass). A backend may skip the
        call (NDIF does); callers then compute them with :meth:`last_logprobs`.

        ``reply_tokens``, when given, is called per batch with each reply's new token ids up
        to its first end token (:mod:`refusal_checks.models.reply_tokens`). Only a backend
        that also has ``reply_text(rows, max_new_tokens)`` and ``stop_tokens()`` (the
        nnsight backend) makes the call; the others generate text and ignore it, and their
        replies are not shared across budgets
        (:func:`refusal_checks.measure.shared_replies.shares_replies`).
        """
        ...


def check_layers(layers: Sequence[int], n_layers: int, model: str) -> list[int]:
    """Validate block indices; negative values count from the end.

    Raises:
        BackendError: A layer is out of range; the message gives the valid range.
    """
    checked = []
    for layer in layers:
        index = layer + n_layers if layer < 0 else layer
        if not 0 <= index < n_layers:
            raise BackendError(
                f"layer {layer} is out of range for {model}, which has {n_layers} blocks. "
                f"Use a layer in 0..{n_layers - 1} (or -{n_layers}..-1 from the end)."
            )
        checked.append(index)
    return checked


def check_positions(positions: Sequence[int]) -> list[int]:
    """Positions are negative offsets from the end of the templated prompt."""
    for position in positions:
        if position >= 0:
            raise BackendError(
                f"position {position} is not a negative offset. Positions count back from the "
                "end of the chat-templated prompt: -1 is its last token, -2 the one before "
                "(the paper's decision state)."
            )
    return list(positions)
