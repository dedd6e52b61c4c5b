"""qwen-coder-1.5b, installed on request, loaded as ``--model qwen-coder-1.5b`` loads it.

Skipped, with the command, where ``python -m refusal_checks prepare qwen-coder-1.5b`` has not
been run for the default cache (1.1 GB of packages, a 6.7 GB dense copy: CI does not).
Loading the dense copy reads 6.2 GB; the memory check runs first.
"""

from __future__ import annotations

import pytest

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.install import installed_files
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import ON_REQUEST, resolve

pytestmark = pytest.mark.real

ALIAS = "qwen-coder-1.5b"


def test_the_1_5b_loads_verified_with_its_chat_template_and_documented_shape():
    cache = default_cache_dir()
    if installed_files(ALIAS, cache / "models") is None:
        pytest.skip(f"{ALIAS} is not prepared in {cache}: {ON_REQUEST[ALIAS].install}")
    backend = load_backend(resolve(ALIAS), LoadOptions(cache_dir=cache))
    assert backend.fingerprint == "sha256:" + ON_REQUEST[ALIAS].sha256
    assert (backend.n_layers, backend.d_model) == (28, 1536)
    assert "prompts" not in backend.info  # its own chat template, not the raw protocol
    rendered = backend.render(["Hi"])[0]
    assert rendered.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    # Arditi's post-instruction tokens: <|im_end|>, \n, <|im_start|>, assistant, \n
    assert backend.post_instruction_positions(["Hi", "How do I bake bread?"]) == [-5, -4, -3,
                                                                                   -2, -1]
