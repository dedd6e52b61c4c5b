"""Interventions inside nnsight: steering and directional ablation in a trace, and the
orthogonalised weight copy.

:class:`NnsightInterventions` is the part of
:class:`~refusal_checks.models.nnsight.backend.NnsightBackend` that edits the model. Steering adds
a vector to one block's input. Ablation projects the direction out of every block input
and out of every write into the residual stream the family's layout lists; behind a
post-norm (Gemma-2) a write is kept orthogonal to the direction after the norm, through
the gain-weighted vector :mod:`refusal_checks.models.architectures` computes.
:meth:`~NnsightInterventions.orthogonalised` makes the same edit on a copy of the weights,
with no hooks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refusal_checks.models.interventions import Ablate, Intervention, Steer, check_for_model
from refusal_checks.models.nnsight.devices import block_devices, import_torch


class NnsightInterventions:
    """Steering and ablation for :class:`~refusal_checks.models.nnsight.backend.NnsightBackend`.

    A mixin: the backend sets the attributes below, and its trace-based measurements
    (``last_logprobs``, ``generate``) call :meth:`_prepare` before a trace and
    :meth:`_edit` inside it. Methods rather than free functions: a traced block calls
    ``self._edit``, and on NDIF the backend's class, this mixin included, arrives by value
    (:func:`refusal_checks.models.remote.remote_scope`).
    """

    model: Any  # the transformers model
    lm: Any  # nnsight's wrapper of it
    device: Any
    d_model: int
    n_layers: int
    # direction digest -> (r per block input, per-block write units, write sites), the
    # last ablation prepared; each vector on the device its block reads or writes on
    _write_units: dict[str, tuple[Any, list[list[Any]], list[tuple[str, bool]]]]

    def _prepare(self, intervention: Intervention | None) -> None:
        """Work out, before a trace, what ``_edit`` projects for an ablation.

        The unit vector to remove at each write depends on the family's layout and, behind
        a post-norm, on the norm's gains (:mod:`refusal_checks.models.architectures`). It is
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
            from refusal_checks.models import architectures

            torch = import_torch()
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

    def _edit(self, intervention: Intervention, torch: Any) -> Any:
        """Apply one intervention inside the current nnsight forward pass.

        Must be called inside a trace (or once per step of a generation's ``iter`` loop),
        after :meth:`_prepare` outside it; modules are touched in forward order, as nnsight
        requires. Ablation projects ``r`` out of every block input and, at every write the
        family's layout lists, the vector that keeps the write orthogonal to ``r`` after any
        post-norm (``r`` itself where there is none).

        Each vector meets its activation on the activation's own device, read inside the
        trace: where :meth:`_prepare` placed it that costs nothing, and it stays right
        where the model sits elsewhere (NDIF's GPUs) or a device map moved a block.

        Returns:
            For a steer, the steered block's input before the edit (the unedited prefix
            :class:`~refusal_checks.models.prefix_store.PrefixStore` keeps); None for an ablation.
        """
        if isinstance(intervention, Steer):
            block = self.lm.model.layers[intervention.layer]
            x = block.input
            block.input = x + torch.tensor(intervention.vector, dtype=self.model.dtype,
                                           device=x.device)
            return x
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
        return None

    def orthogonalised(self, direction: np.ndarray) -> Any:
        """A copy of the model whose weights never write ``direction`` into the residual stream.

        ``W <- W - r_hat r_hat^T W`` on the embeddings and on every write the family's
        layout lists (Arditi et al.; behind a post-norm against the gain-weighted direction,
        :mod:`refusal_checks.models.architectures`): the same edit as hook ablation, with no hooks,
        so the edited model can be saved with ``save_pretrained`` and shipped.

        Raises:
            BackendError: The model's family is not in the ablation table.
        """
        import copy

        torch = import_torch()
        ablate = Ablate(direction)  # refuses NaN/inf and the zero vector, and normalises
        check_for_model(ablate, self.d_model, self.n_layers)  # the width, with the fix
        from refusal_checks.models import architectures  # not a module global: see _prepare

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
