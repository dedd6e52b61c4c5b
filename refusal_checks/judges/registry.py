"""The judge registry: ``--refusal-judge NAME`` to a :class:`~refusal_checks.judges.base.Judge`.

Apart from :mod:`refusal_checks.judges.base` because it names the embedding and WildGuard judges,
which themselves build on the judges' classes: the registry imports them, none imports it.
Judges that run a model of their own on the run's device (:data:`ON_DEVICE`) get the
``device`` given to :func:`load_judge`.
"""

from __future__ import annotations

from collections.abc import Callable

from refusal_checks.judges.base import Judge, JudgeUnavailableError, SubstringJudge, UnknownJudgeError


def _embedding_judge() -> Judge:
    from refusal_checks.judges.embedding import load_embedding_judge

    return load_embedding_judge()


def _wildguard_judge(device: str | None = None) -> Judge:
    from refusal_checks.judges.wildguard import load_wildguard_judge

    return load_wildguard_judge(device=device)


# name -> factory. Factories load lazily: the registry itself costs nothing to import.
JUDGES: dict[str, Callable[..., Judge]] = {
    "substring": SubstringJudge,
    "embedding": _embedding_judge,
    "wildguard": _wildguard_judge,
}
# Judges whose factory takes the run's torch device (a 7B model belongs where the run
# computes, not on the CPU by default).
ON_DEVICE: frozenset[str] = frozenset({"wildguard"})


def _known() -> str:
    from refusal_checks.judges.embedding import INSTALL

    return (f"Known judges: {', '.join(sorted(JUDGES))} (embedding needs "
            f"`{INSTALL}`, plus torch and transformers; wildguard needs the allenai/wildguard "
            "model on this machine, a GPU recommended)")


def load_judge(name: str, device: str | None = None) -> Judge:
    """Make the judge registered under ``name``.

    Args:
        name: A key of JUDGES (any casing, spaces around ignored).
        device: The run's torch device (``--refusal-device``), for the judges in ON_DEVICE;
            None lets them choose (the first GPU, else the CPU).

    Raises:
        UnknownJudgeError: ``name`` is not in JUDGES.
        JudgeUnavailableError: The judge is known but cannot run here; the message has the fix.
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    factory = JUDGES.get(key)
    if factory is None:
        raise UnknownJudgeError(f"Refusal judge {name!r} is not known. {_known()}.")
    try:
        return factory(device=device) if key in ON_DEVICE else factory()
    except JudgeUnavailableError as exc:
        raise type(exc)(f"Refusal judge {name!r} cannot be loaded: {exc} (known judges: "
                        f"{', '.join(sorted(JUDGES))})") from exc
    except ImportError as exc:  # torch or transformers missing
        raise JudgeUnavailableError(
            f"Refusal judge {name!r} cannot be loaded: {exc}. It needs torch and transformers "
            f"(pip install -e . installs both). {_known()}.") from exc
