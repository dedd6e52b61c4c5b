"""The judge registry: ``--refusal-judge NAME`` to a :class:`~refusal_checks.judges.Judge`.

Apart from :mod:`refusal_checks.judges` because it names the embedding judge, which itself
builds on the judges' classes: the registry imports both, neither imports it.
"""

from __future__ import annotations

from collections.abc import Callable

from refusal_checks.judges import Judge, JudgeUnavailableError, SubstringJudge, UnknownJudgeError


def _embedding_judge() -> Judge:
    from refusal_checks.embedding_judge import load_embedding_judge

    return load_embedding_judge()


# name -> factory. Factories load lazily: the registry itself costs nothing to import.
JUDGES: dict[str, Callable[[], Judge]] = {
    "substring": SubstringJudge,
    "embedding": _embedding_judge,
}


def _known() -> str:
    from refusal_checks.embedding_judge import INSTALL

    return (f"Known judges: {', '.join(sorted(JUDGES))} (embedding needs "
            f"`{INSTALL}`, plus torch and transformers)")


def load_judge(name: str) -> Judge:
    """Make the judge registered under ``name``.

    Raises:
        UnknownJudgeError: ``name`` is not in JUDGES.
        JudgeUnavailableError: The judge is known but cannot run here; the message has the fix.
    """
    factory = JUDGES.get(name.strip().lower()) if isinstance(name, str) else None
    if factory is None:
        raise UnknownJudgeError(f"Refusal judge {name!r} is not known. {_known()}.")
    try:
        return factory()
    except JudgeUnavailableError as exc:
        raise type(exc)(f"Refusal judge {name!r} cannot be loaded: {exc} (known judges: "
                        f"{', '.join(sorted(JUDGES))})") from exc
    except ImportError as exc:  # torch or transformers missing
        raise JudgeUnavailableError(
            f"Refusal judge {name!r} cannot be loaded: {exc}. It needs torch and transformers "
            f"(pip install -e . installs both). {_known()}.") from exc
