"""The one data type every reward takes: a batch of completions with their per-sample context, and the one
group-key abstraction that says which rows form a GRPO group in each trainer's layout.

Group-relative rewards (Kimi, ShorterBetter, ALP, GRPO-LEAD, LASER-D) read ``group_ids``; every trainer lays its
groups out differently, and each layout has one function here that turns it into ``group_ids``:

====================  ==========================================================  ================================
trainer               what identifies a group                                     function
====================  ==========================================================  ================================
TRL                   runs of equal prompts (``RepeatSampler`` puts a prompt's    [`consecutive_group_ids`][]
                      ``num_generations`` rows next to each other)
verl                  the ``uid`` column of the ``DataProto`` (one uuid per       [`group_ids_from_uids`][]
                      prompt, shared by its ``rollout.n`` responses)
OpenRLHF              ``n_samples_per_prompt`` consecutive rows per prompt        [`group_ids_from_blocks`][]
====================  ==========================================================  ================================

    >>> consecutive_group_ids(["p", "p", "q", "q", "p"])
    [0, 0, 1, 1, 2]
    >>> group_ids_from_uids(["7f1c", "7f1c", "a2e9"])
    ['7f1c', '7f1c', 'a2e9']
    >>> group_ids_from_blocks(6, samples_per_prompt=3)
    [0, 0, 0, 1, 1, 1]
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .errors import MissingContextError

__all__ = [
    "CONTEXT_FIELDS",
    "Completion",
    "RewardBatch",
    "consecutive_group_ids",
    "dense_group_index",
    "group_ids_from_blocks",
    "group_ids_from_uids",
]

Completion = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""A completion as trainers hand it over: a string (standard format), one chat message, or a list of chat
messages (TRL's conversational format; the last assistant message is the response)."""

#: Context columns with a fixed meaning. Anything else lives in ``RewardBatch.extra``.
CONTEXT_FIELDS = (
    "completions",
    "reasoning",
    "lengths",
    "token_ids",
    "difficulty",
    "uncertainty",
    "group_ids",
    "ground_truth",
)

_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


def _split_completion(completion: Any, index: int) -> tuple[str, str | None]:
    """Return (response text, separate reasoning text or None) of one completion in any supported format."""
    if isinstance(completion, str):
        return completion, None
    message: Any = completion
    if isinstance(completion, Sequence) and not isinstance(completion, bytes):
        assistant = [m for m in completion if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
        message = assistant[-1] if assistant else None
    if not isinstance(message, Mapping):
        raise TypeError(
            f"completions[{index}]: expected a string, a chat message or a list of chat messages with an assistant "
            f"message, got {completion!r:.120}"
        )
    content = "" if message.get("content") is None else message["content"]
    if isinstance(content, list):  # multimodal content parts: keep the text parts
        content = "".join(
            part.get("text", "") for part in content if isinstance(part, Mapping) and part.get("type") == "text"
        )
    if not isinstance(content, str):
        raise TypeError(f"completions[{index}]: message content must be a string, got {type(content).__name__}")
    reasoning = next((message[k] for k in _REASONING_KEYS if isinstance(message.get(k), str)), None)
    return content, reasoning


def _float_column(name: str, values: Any, n: int) -> npt.NDArray[np.float64]:
    """Floats, one per sample; ``None`` entries become NaN (a missing value for that sample)."""
    if isinstance(values, np.ndarray):
        array = values.astype(np.float64, copy=True).reshape(-1) if values.ndim <= 1 else values
    else:
        try:
            array = np.array(values, dtype=np.float64)  # None becomes NaN
        except (TypeError, ValueError) as error:
            expected = "numbers (or None for missing)"
            raise TypeError(f"RewardBatch: {name}: expected {expected}, got {values!r:.120}") from error
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"RewardBatch: {name}: expected {n} values (one per completion), got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"RewardBatch: {name}: expected finite values (NaN marks a missing one), got inf")
    array.setflags(write=False)
    return array


def _check_len(name: str, values: Sequence[Any], n: int) -> tuple[Any, ...]:
    values = tuple(values)
    if len(values) != n:
        raise ValueError(f"RewardBatch: {name}: expected {n} values (one per completion), got {len(values)}")
    return values


@dataclasses.dataclass(frozen=True, eq=False)
class RewardBatch:
    """A batch of completions and the context a reward may need, one entry per completion.

    Build it with [`from_completions`][] (accepts TRL's standard and conversational formats) or directly
    with response strings. Every column is optional except ``completions``; a reward that needs a missing
    column raises [`MissingContextError`][] naming it. The columns are listed in
    docs/concepts.md; any other per-sample column goes in ``extra``.
    """

    completions: tuple[str, ...]
    reasoning: tuple[str | None, ...] | None = None
    lengths: npt.NDArray[np.float64] | None = None
    token_ids: tuple[Sequence[int], ...] | None = None
    difficulty: npt.NDArray[np.float64] | None = None
    uncertainty: npt.NDArray[np.float64] | None = None
    group_ids: tuple[Any, ...] | None = None
    ground_truth: tuple[Any, ...] | None = None
    step: int = 0
    extra: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        completions = self.completions
        if isinstance(completions, str):
            raise TypeError("RewardBatch: completions: expected a sequence of strings, got a single str")
        completions = tuple(completions)
        if not all(map(isinstance, completions, repeat(str))):
            i, text = next((i, t) for i, t in enumerate(completions) if not isinstance(t, str))
            raise TypeError(
                f"RewardBatch: completions[{i}]: expected str, got {type(text).__name__} "
                "(use RewardBatch.from_completions for chat messages)"
            )
        n = len(completions)
        set_ = object.__setattr__
        set_(self, "completions", completions)
        for name in ("reasoning", "token_ids", "group_ids", "ground_truth"):
            if getattr(self, name) is not None:
                set_(self, name, _check_len(name, getattr(self, name), n))
        if self.lengths is not None:
            lengths = _float_column("lengths", self.lengths, n)
            if np.isnan(lengths).any() or (lengths < 0).any():
                raise ValueError(f"RewardBatch: lengths: expected non-negative numbers, got {lengths.tolist()!r:.120}")
            set_(self, "lengths", lengths)
        for name in ("difficulty", "uncertainty"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _float_column(name, value, n))
        if self.uncertainty is not None and (self.uncertainty < 0).any():  # NaN compares False: missing stays allowed
            raise ValueError(
                "RewardBatch: uncertainty: expected numbers >= 0 (NaN or None marks a missing one; the rule of "
                f"pixelthink_score and the estimators' [0, 1]), got {self.uncertainty.tolist()!r:.120}"
            )
        if not isinstance(self.step, (int, np.integer)) or isinstance(self.step, bool) or self.step < 0:
            raise ValueError(f"RewardBatch: step: expected a non-negative int, got {self.step!r}")
        set_(self, "step", int(self.step))
        extra = {}
        for key, values in dict(self.extra).items():
            if key in CONTEXT_FIELDS:
                raise ValueError(f"RewardBatch: extra: {key!r} is a context field; pass it as {key}=...")
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise TypeError(f"RewardBatch: extra[{key!r}]: expected one value per completion, got {values!r:.80}")
            extra[key] = _check_len(f"extra[{key!r}]", list(values), n)
        set_(self, "extra", extra)

    @classmethod
    def from_completions(cls, completions: Sequence[Completion], **context: Any) -> RewardBatch:
        """Build a batch from completions in any trainer format, with context columns as keywords.

        Strings are kept as they are. Chat messages (TRL's conversational format) contribute the last
        assistant message's ``content``; a ``reasoning_content``/``thinking`` field fills ``reasoning``.
        Keywords that are not context fields (``difficulty``, ``group_ids``...) or ``step`` go to
        ``extra``; ``None`` values are dropped.
        """
        if isinstance(completions, str):
            raise TypeError("completions: expected a sequence of completions, got a single str")
        if all(map(isinstance, completions, repeat(str))):  # the standard format: nothing to split
            texts, reasoning = cast("list[str]", list(completions)), []
        else:
            split = [_split_completion(completion, i) for i, completion in enumerate(completions)]
            texts, reasoning = [text for text, _ in split], [thought for _, thought in split]
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = dict(context.pop("extra", None) or {})
        for key, value in context.items():
            if value is None:
                continue
            if key in CONTEXT_FIELDS or key == "step":
                fields[key] = value
            else:
                extra[key] = value
        if "reasoning" not in fields and any(r is not None for r in reasoning):
            fields["reasoning"] = tuple(reasoning)
        return cls(completions=tuple(texts), extra=extra, **fields)

    def __len__(self) -> int:
        return len(self.completions)

    def has(self, name: str) -> bool:
        """Whether column ``name`` (a context field or an extra column) is present."""
        if name in CONTEXT_FIELDS:
            return getattr(self, name) is not None
        return name in self.extra

    def column(self, name: str, *, by: str = "a reward") -> Any:
        """Return column ``name``; raise [`MissingContextError`][] saying who needs it when absent."""
        if not self.has(name):
            present = [f for f in CONTEXT_FIELDS if getattr(self, f) is not None] + sorted(self.extra)
            raise MissingContextError(
                f"{by} needs the batch column {name!r}, which is missing "
                f"(present: {', '.join(present)}). Pass {name}=... when building the RewardBatch"
                + (" or add a context provider that fills it." if name in ("difficulty", "uncertainty") else ".")
            )
        return getattr(self, name) if name in CONTEXT_FIELDS else self.extra[name]

    def require(self, names: Iterable[str], *, by: str) -> None:
        """Raise [`MissingContextError`][] for the first of ``names`` that is absent."""
        for name in names:
            self.column(name, by=by)

    def replace(self, **changes: Any) -> RewardBatch:
        """A copy with some columns replaced (``extra`` entries are merged, not replaced)."""
        extra = dict(self.extra)
        extra.update(changes.pop("extra", {}) or {})
        changed = set(changes) | {key for key in extra if extra[key] is not self.extra.get(key)}
        for key in list(changes):
            if key not in CONTEXT_FIELDS and key != "step":
                extra[key] = changes.pop(key)
        derived = dataclasses.replace(self, extra=extra, **changes)
        object.__setattr__(derived, "derived_from", (weakref.ref(self), frozenset(changed)))  # no chain kept alive
        return derived

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "derived_from"}

    def origin(self, reads: frozenset[str]) -> RewardBatch:
        """The earliest batch this one was derived from (by [`replace`][]) without changing any of ``reads``:
        a node that reads only those columns computes the same result on both (the evaluation memo uses it)."""
        batch = self
        while (link := batch.__dict__.get("derived_from")) and not link[1] & reads and (parent := link[0]()):
            batch = parent
        return batch

    def take(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> RewardBatch:
        """A batch of the given rows (every column, the same step)."""
        index = [int(i) for i in rows]
        fields: dict[str, Any] = {}
        for name in CONTEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value[index] if isinstance(value, np.ndarray) else tuple(value[i] for i in index)
        extra = {key: tuple(values[i] for i in index) for key, values in self.extra.items()}
        return RewardBatch(step=self.step, extra=extra, **fields)

    def group_index(self, *, by: str) -> npt.NDArray[np.intp]:
        """Dense integer group index per sample (0..G-1) from ``group_ids``; needed by group rewards."""
        return dense_group_index(self.column("group_ids", by=by))


# -- Group keys: one function per trainer layout (see the module docstring) ------------------------------------------


def dense_group_index(ids: Iterable[Any]) -> npt.NDArray[np.intp]:
    """Group ids as a dense integer index 0..G-1, numbered in order of first appearance.

    >>> dense_group_index(["b", "a", "b"]).tolist()
    [0, 1, 0]
    """
    first_seen: dict[Any, int] = {}
    try:
        index = [first_seen.setdefault(g, len(first_seen)) for g in ids]
    except TypeError as error:
        raise TypeError(f"RewardBatch: group_ids: expected hashable ids, got {error}") from None
    return np.asarray(index, dtype=np.intp)


def consecutive_group_ids(keys: Sequence[Any], same: Callable[[Any, Any], bool] | None = None) -> list[int]:
    """TRL's layout: a new group starts wherever a row's key (its prompt) differs from the previous row's.

    ``same(a, b)`` compares two keys (default ``==``; TRL's adapter also compares the rows' images).
    """
    equal = same or (lambda a, b: bool(a == b))
    ids: list[int] = []
    for i, key in enumerate(keys):
        ids.append(0 if i == 0 else ids[-1] if equal(key, keys[i - 1]) else ids[-1] + 1)
    return ids


def group_ids_from_uids(uids: Iterable[Any]) -> list[Any]:
    """verl's layout: the ``uid`` of each row (``DataProto.non_tensor_batch["uid"]``, shared by the responses of one
    prompt), as plain Python values; rows of one group need not be adjacent.

    Raises:
        ValueError: a missing uid (``None`` or NaN), naming the row.
        TypeError: an unhashable uid.
    """
    ids = [u.item() if isinstance(u, np.generic) else u for u in uids]
    for i, uid in enumerate(ids):
        if uid is None or (isinstance(uid, float) and uid != uid):
            raise ValueError(f"group_ids_from_uids: uids[{i}]: expected the prompt's uid, got {uid!r}")
    dense_group_index(ids)  # hashable, or a TypeError naming the problem
    return ids


def group_ids_from_blocks(n: int, *, samples_per_prompt: int) -> list[int]:
    """OpenRLHF's layout: ``samples_per_prompt`` (``n_samples_per_prompt``) consecutive rows per prompt.

    Raises:
        ValueError: ``n`` not a multiple of ``samples_per_prompt`` (a group split across calls), or either < 1.
    """
    if isinstance(samples_per_prompt, bool) or not isinstance(samples_per_prompt, int) or samples_per_prompt < 1:
        raise ValueError(f"group_ids_from_blocks: samples_per_prompt: expected an int >= 1, got {samples_per_prompt!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n % samples_per_prompt:
        raise ValueError(
            f"group_ids_from_blocks: n: expected a multiple of samples_per_prompt ({samples_per_prompt}) "
            f"rows, got {n!r}: a group must not be split across calls"
        )
    return [i // samples_per_prompt for i in range(n)]
