"""The unedited residual stream below a steered block, kept in memory for the next steer.

Steering at block ``L`` edits block ``L``'s input; blocks ``0..L-1`` compute exactly what
the unedited model computes. Callers steer the same batches at the same layer many times
(the steering sweep: each prompt set under every category direction and strength at one
layer; Arditi's selection: the same validation prompts at five positions per layer), so
:class:`~refusal_checks.models.nnsight.backend.NnsightBackend` keeps block ``L``'s unedited input
for a batch here and, on the next steer of that batch at ``L``, skips blocks ``0..L-1``.

:class:`PrefixStore` is a least-recently-used map bounded in bytes. It never touches torch
(values are opaque; the caller passes their size), so it is tested without a model.
Results are unchanged: the prefix is the same tensor the full pass would compute (same
texts, same padding, same kernels), and cache keys never see it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

# 256 MiB: a batch's prefix is batch x tokens x d_model values, e.g. 16 x 80 x 896 float32
# (qwen-coder-0.5b) = 4.6 MB, or 16 x 80 x 3584 bfloat16 (a 7B model) = 9.2 MB. The sweep
# steers a few prompt sets (a few batches each) at one layer, and Arditi's selection one
# 16-prompt batch at each of ~20 candidate layers, so 256 MiB keeps every prefix either
# reuses (28-55 batches) while staying small beside the model's own weights, on a GPU too.
DEFAULT_MAX_BYTES = 256 * 2**20


def batch_digest(*arrays: Any) -> str:
    """A digest of a batch's token ids and attention mask (numpy-like arrays).

    Shapes and dtypes are part of it, so two batches share a prefix only when the model
    would see exactly the same input: same texts, same order, same left padding.
    """
    h = hashlib.sha256()
    for array in arrays:
        h.update(f"{array.dtype}{tuple(array.shape)};".encode())
        h.update(array.tobytes())
    return h.hexdigest()


class PrefixStore:
    """Least-recently-used ``key -> value`` map holding at most ``max_bytes`` of values.

    Attributes:
        max_bytes: The bound on the summed sizes of the values held.
        hits: Lookups that found their key (prefixes reused).
        misses: Lookups that did not.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"prefix store bound {max_bytes} bytes is negative; use 0 to "
                             "switch the store off.")
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """The summed sizes of the values held (never above :attr:`max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> Any | None:
        """The value stored under ``key`` (now the most recently used), or None."""
        if key not in self._items:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return self._items[key][0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> bool:
        """Keep ``value`` (``nbytes`` large) under ``key``, evicting the least recently used.

        Returns:
            False when the value alone exceeds the bound (it is then not kept).
        """
        if key in self._items:
            self._bytes -= self._items.pop(key)[1]
        if nbytes > self.max_bytes:
            return False
        while self._items and self._bytes + nbytes > self.max_bytes:
            self._bytes -= self._items.popitem(last=False)[1][1]
        self._items[key] = (value, int(nbytes))
        self._bytes += int(nbytes)
        return True

    def clear(self) -> None:
        """Drop every value (counters are kept)."""
        self._items.clear()
        self._bytes = 0
