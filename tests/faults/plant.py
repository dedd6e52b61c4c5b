"""Faults planted at the operating system's calls, for the paths under one folder.

A full disk, a read-only mount, a file system that refuses new files and a SIGKILL at an
exact point cannot be made for real in CI without privileges, and chmod does not stop
root (which CI runners run as). So the answer the kernel would give is planted at the
calls the library makes, for paths under ``folder`` only:

- ``mkdir``: ``os.mkdir`` of a folder there;
- ``create``: ``os.open`` of a new file there (``O_CREAT``; ``tempfile.mkstemp`` too);
- ``write``: a write to a file open there, through ``os.write`` (each call counts) or a
  file object from ``os.fdopen`` (each file counts); half the bytes land first, as on a
  disk that fills up mid-write;
- ``replace``: ``os.replace`` into the folder, before the rename; ``replaced``: after it;
- ``remove``: ``os.unlink`` or ``os.rmdir`` of something there.

The fault is an errno (``ENOSPC``, ``EROFS``, ...) raised as ``OSError``, or ``SIGKILL``:
the process kills itself at that point, as the OOM killer or a CI time limit would.
``after`` lets that many matching calls through first (a disk that fills up later).

Used in this process through :func:`plant` (with ``monkeypatch``), or in a pytest
subprocess as a plugin: :func:`install` copies this file into the run's folder as
``fault_plant.py``, and ``-p fault_plant`` loads it there, configured by the JSON in
``$REFUSAL_FAULT``. In a subprocess ``armed: "tests"`` holds the fault back until the
first test starts, so the start-up checks pass: the mount turns read-only, or the disk
fills, once the run is under way. ``log`` names a JSON-lines file where every
``os.replace`` into the folder is recorded (process, path, content), whether or not a
fault is planted: what each run wrote, for the tests to compare. ``barrier`` makes
``parties`` runs wait for each other before their first test, and ``delay`` slows each
write into the folder, so two runs' model work overlaps for sure.

Standard library only: the plugin is imported by a bare pytest subprocess.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV = "REFUSAL_FAULT"
PLUGIN = "fault_plant"
OPS = ("mkdir", "create", "write", "replace", "replaced", "remove")


@dataclass
class Fault:
    """What to plant: ``error`` (an errno name or ``SIGKILL``) on ``ops`` under ``folder``."""

    folder: str
    error: str = "ENOSPC"
    ops: list[str] = field(default_factory=lambda: ["write"])
    after: int = 0
    armed: str = "start"  # or "tests": from the first test on (subprocess runs only)
    log: str | None = None
    delay: float = 0.0  # seconds to wait before each os.replace into the folder
    barrier: str | None = None  # a folder where ``parties`` runs meet before their tests
    parties: int = 2

    def to_env(self) -> str:
        return json.dumps(asdict(self))


class _Planted:
    """The patched calls of one :class:`Fault`; ``real`` holds the originals."""

    def __init__(self, fault: Fault) -> None:
        unknown = set(fault.ops) - set(OPS)
        if unknown:
            raise ValueError(f"unknown ops {sorted(unknown)}; known: {OPS}")
        self.fault = fault
        self.folder = os.path.abspath(fault.folder)
        self.seen = 0  # matching calls so far
        self.armed = fault.armed == "start"
        self.real = {name: getattr(os, name) for name in
                     ("mkdir", "open", "write", "fdopen", "replace", "unlink", "rmdir")}

    # -- which calls the fault concerns --------------------------------------------------

    def under(self, path: Any) -> bool:
        try:
            absolute = os.path.abspath(os.fsdecode(os.fspath(path)))
        except TypeError:
            return False
        return absolute == self.folder or absolute.startswith(self.folder + os.sep)

    def fd_under(self, fd: int) -> bool:
        try:
            return self.under(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False

    def strikes(self, op: str) -> bool:
        """Whether this call fails; counts the matching calls that pass."""
        if not self.armed or op not in self.fault.ops:
            return False
        if self.seen < self.fault.after:
            self.seen += 1
            return False
        return True

    def fail(self, path: Any = None) -> None:
        if self.fault.error == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)
        code = getattr(errno, self.fault.error)
        raise OSError(code, os.strerror(code), None if path is None else os.fspath(path))

    # -- the patched calls ---------------------------------------------------------------

    def mkdir(self, path: Any, *args: Any, **kwargs: Any) -> None:
        if self.under(path) and self.strikes("mkdir"):
            self.fail(path)
        self.real["mkdir"](path, *args, **kwargs)

    def open(self, path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and self.under(path) and self.strikes("create"):
            self.fail(path)
        return self.real["open"](path, flags, *args, **kwargs)

    def write(self, fd: int, data: Any) -> int:
        if self.fd_under(fd) and self.strikes("write"):
            self.real["write"](fd, bytes(data)[: len(data) // 2])
            self.fail()
        return self.real["write"](fd, data)

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = self.real["fdopen"](fd, *args, **kwargs)
        if "write" in self.fault.ops and self.fd_under(fd):
            return _FillingFile(handle, self)
        return handle

    def replace(self, src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if not self.under(dst):
            self.real["replace"](src, dst, *args, **kwargs)
            return
        if self.strikes("replace"):
            self.fail(dst)
        if self.fault.delay:
            time.sleep(self.fault.delay)
        if self.fault.log:
            self.record(src, dst)
        self.real["replace"](src, dst, *args, **kwargs)
        if self.strikes("replaced"):
            self.fail(dst)

    def unlink(self, path: Any, *args: Any, **kwargs: Any) -> None:
        if self.under(path) and self.strikes("remove"):
            self.fail(path)
        self.real["unlink"](path, *args, **kwargs)

    def rmdir(self, path: Any, *args: Any, **kwargs: Any) -> None:
        if self.under(path) and self.strikes("remove"):
            self.fail(path)
        self.real["rmdir"](path, *args, **kwargs)

    def record(self, src: Any, dst: Any) -> None:
        """One line of the log: which process wrote what, and a digest of its content
        (for a cache file's metadata, the sha256 of the data it describes, since its
        ``created`` time differs between two writers of the same value)."""
        try:
            raw = Path(src).read_bytes()
        except OSError:
            return
        content = hashlib.sha256(raw).hexdigest()
        if str(dst).endswith(".json"):
            try:
                content = str(json.loads(raw).get("sha256", content))
            except (ValueError, AttributeError):
                pass
        line = json.dumps({"pid": os.getpid(),
                           "path": os.path.relpath(os.fspath(dst), self.folder),
                           "content": content})
        with open(self.fault.log, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def patches(self) -> dict[str, Any]:
        return {"mkdir": self.mkdir, "open": self.open, "write": self.write,
                "fdopen": self.fdopen, "replace": self.replace, "unlink": self.unlink,
                "rmdir": self.rmdir}


class _FillingFile:
    """A file object whose first write meets the fault (half of its bytes land first)
    when the fault strikes this file: the files written, not the write calls, count."""

    def __init__(self, handle: Any, planted: _Planted) -> None:
        self._handle = handle
        self._planted = planted
        self._doomed = planted.strikes("write")

    def write(self, data: Any) -> int:
        if self._doomed:
            self._handle.write(data[: len(data) // 2])
            self._handle.flush()
            self._planted.fail()
        return self._handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> "_FillingFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def plant(monkeypatch: Any, fault: Fault) -> _Planted:
    """Plant ``fault`` in this process until ``monkeypatch`` is undone."""
    planted = _Planted(fault)
    for name, patched in planted.patches().items():
        monkeypatch.setattr(os, name, patched)
    return planted


def install(directory: Path) -> list[str]:
    """Copy this module into ``directory`` as a plugin; returns the pytest arguments that
    load it (set ``$REFUSAL_FAULT`` to a :meth:`Fault.to_env` first)."""
    shutil.copy(__file__, directory / f"{PLUGIN}.py")
    return ["-p", PLUGIN]


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``log`` file (none if nothing was written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# -- as a pytest plugin in a subprocess ---------------------------------------------------------

_ACTIVE: _Planted | None = None
if __name__ == PLUGIN and os.environ.get(ENV):
    _ACTIVE = _Planted(Fault(**json.loads(os.environ[ENV])))
    for _name, _patched in _ACTIVE.patches().items():
        setattr(os, _name, _patched)


_STARTED: list[bool] = []


def pytest_runtest_setup(item: Any) -> None:
    """At the first test: arm an ``armed: "tests"`` fault, and meet at the barrier."""
    if _ACTIVE is None or _STARTED:
        return
    _STARTED.append(True)
    _ACTIVE.armed = True
    if _ACTIVE.fault.barrier:
        meet(Path(_ACTIVE.fault.barrier), _ACTIVE.fault.parties)


def meet(barrier: Path, parties: int, timeout: float = 120.0) -> None:
    """Wait until ``parties`` processes arrived at ``barrier``, so that their model work
    starts together (two runs on one cold cache then compute the same entries at once)."""
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(barrier.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(list(barrier.iterdir()))} of {parties} runs "
                               f"reached {barrier} in {timeout} s")
        time.sleep(0.002)
