"""The reference implementation the nnsight interventions are checked against: plain torch
forward hooks on the model, no nnsight. Shared by the adapter and real-model tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from refusal_checks.models.interventions import Ablate, Intervention, Steer


@contextlib.contextmanager
def hooked(model: Any, intervention: Intervention | None, *,
           prompt_pass_only: bool = False) -> Iterator[None]:
    """``model`` with the intervention applied by forward hooks, removed on exit.

    ``prompt_pass_only`` edits only the first forward pass (the prompt): what nnsight does,
    silently, when a generation is traced without its ``iter`` loop.
    """
    import torch

    handles = []
    passes = 0

    def edit_input(edit: Any) -> Any:
        def hook(module: Any, args: tuple, kwargs: dict) -> Any:
            nonlocal passes
            passes += 1
            if prompt_pass_only and passes > 1:
                return None
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}
        return hook

    if isinstance(intervention, Steer):
        vector = torch.tensor(intervention.vector, dtype=torch.float32)
        block = model.model.layers[intervention.layer]
        handles.append(block.register_forward_pre_hook(edit_input(lambda x: x + vector),
                                                       with_kwargs=True))
    elif isinstance(intervention, Ablate):
        assert not prompt_pass_only, "not needed by these tests"
        from refusal_checks.models.architectures import layout_for, submodule, write_directions

        r = torch.tensor(intervention.direction, dtype=torch.float32)

        def project_out(u: Any) -> Any:
            return lambda x: x - (x @ u)[..., None] * u

        # The family's write table: behind a post-norm the projected vector is not r itself.
        writes = layout_for(model).writes
        for block, units in zip(model.model.layers, write_directions(model, r)):
            handles.append(block.register_forward_pre_hook(edit_input(project_out(r)),
                                                           with_kwargs=True))
            for write, u in zip(writes, units):
                edit = project_out(u)
                hook = ((lambda m, a, out, edit=edit: (edit(out[0]), *out[1:]))
                        if write.tuple_output else (lambda m, a, out, edit=edit: edit(out)))
                handles.append(submodule(block, write.source).register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
