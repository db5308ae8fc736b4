"""The judge at work: show a sample to a backend, read the reply, ask again when it is unreadable, keep the verdict.

A reply unreadable after ``parse_retries`` re-asks is recorded as ``"unparseable"`` and gets no score. Verdicts
are [`Judgment`][] records, the type the [`JudgmentCache`][] stores. [`JudgeRunner`][]
holds what does not depend on the question asked (cache, claims, retries, concurrency);
[`DifficultyJudge`][] asks PixelThink's difficulty question, and
[`RScoreJudge`][adaptive_length_reward.rscore.judge.RScoreJudge] asks for RScore with the same machinery.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import time
import typing
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from ...errors import import_optional
from .backends import JudgeBackend, JudgeTransportError
from .cache import CACHED_STATUSES, Judgment, JudgmentCache, claim_owner
from .prompt import PIXELTHINK_V1, JudgePrompt, TargetGeometry
from .reply import Aggregate, JudgeReplyError, check_weights, parse_judge_reply

__all__ = ["DifficultyJudge", "JudgeInputError", "JudgeRunner", "JudgeSample", "load_image"]

logger = logging.getLogger(__name__)

#: Seconds between looks at samples another annotator has claimed (doubling up to the second value).
CLAIM_POLL = (0.2, 5.0)

#: How much of a reply a verdict keeps (the cache stores it; a hostile judge's megabytes are not worth keeping).
MAX_STORED_REPLY = 100_000


class JudgeInputError(ValueError):
    """A sample cannot be shown to the judge (unreadable image, bad geometry); names the sample."""


def load_image(value: Any, *, base_dir: str | Path | None = None) -> Any:
    """A PIL RGB image from a PIL image, a path (relative to ``base_dir``), encoded bytes, a Hugging Face
    ``Image`` feature dict (``{"bytes": ..., "path": ...}``), or an ``H x W x 3`` uint8 array.

    Raises:
        TypeError: an unsupported value; ``FileNotFoundError``/``OSError`` from reading the file.
    """
    pil = import_optional("PIL.Image", extra="judge", purpose="Showing images to the difficulty judge")
    if isinstance(value, pil.Image):
        return value.convert("RGB") if value.mode != "RGB" else value
    if isinstance(value, (str, Path, bytes, bytearray)):
        path = io.BytesIO(value) if isinstance(value, (bytes, bytearray)) else Path(value)
        if isinstance(path, Path) and base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        with pil.open(path) as image:
            return image.convert("RGB")
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            return load_image(value["bytes"])
        if value.get("path") is not None:
            return load_image(value["path"], base_dir=base_dir)
        raise TypeError(f"load_image: expected an image dict with 'bytes' or 'path', got keys {sorted(value)}")
    if isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype == np.uint8:
        return pil.fromarray(value).convert("RGB")
    raise TypeError(f"load_image: expected a PIL image, a path, bytes or an image dict, got {type(value).__name__}")


class Keyed(Protocol):
    """What the runner needs of a sample: its cache key."""

    @property
    def key(self) -> str: ...


SampleT = TypeVar("SampleT", bound=Keyed)


@dataclass(frozen=True)
class _Busy:
    """A sample another annotator holds a claim on."""

    sample: Any


@dataclass(frozen=True)
class JudgeSample:
    """One sample to rate.

    Attributes:
        sample_id: the sample's id (its string form keys the cache).
        image: anything [`load_image`][] reads.
        expression: the referring expression.
        mask: the target mask (gives area and box), or ``None``.
        box: the target's pixel box (see [`parse_box`][]), used when there is no mask.
        area_ratio: the target's mask area ratio, used when there is no mask.
        base_dir: directory that relative image paths are relative to.
    """

    sample_id: Any
    image: Any
    expression: str
    mask: Any = None
    box: Any = None
    area_ratio: float | None = None
    base_dir: str | None = None

    def __post_init__(self) -> None:
        if self.sample_id is None:
            raise ValueError("JudgeSample: sample_id: expected an id, got None")
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise ValueError(
                f"JudgeSample {self.sample_id!r}: expression: expected a non-empty string, got {self.expression!r:.60}"
            )

    @property
    def key(self) -> str:
        """The id's string form (the cache key)."""
        return str(self.sample_id)

    def geometry(self, width: int, height: int) -> TargetGeometry | None:
        """The target's geometry from the mask, else the box and/or the area ratio; ``None`` if none given."""
        if self.mask is not None:
            return TargetGeometry.from_mask(self.mask)
        area = self.area_ratio
        area = None if area is None or (isinstance(area, float) and math.isnan(area)) else float(area)
        if self.box is not None:
            return TargetGeometry.from_box(self.box, width, height, area_ratio=area)
        return None if area is None else TargetGeometry(area_ratio=area)


class JudgeRunner(Generic[SampleT]):
    """Asks a backend about samples, reads the replies, and keeps verdicts in a [`JudgmentCache`][].

    The question-independent part of a judge; a subclass says what a sample is (``sample_type``), how it is
    shown ([`conversation`][]) and how a reply is read ([`read_reply`][], raising
    [`JudgeReplyError`][] for an unreadable one).

    Args:
        backend: where replies come from (a [`JudgeBackend`][]).
        cache: a [`JudgmentCache`][], a path to one, or ``None`` (nothing is remembered).
        prompt: the versioned prompt (an instance of ``prompt_type``).
        parse_retries: re-asks after an unreadable reply before the sample is recorded as ``"unparseable"``.
        claim_lease: seconds a claim on a sample holds (see
            [`claim`][adaptive_length_reward.difficulty.judge.cache.JudgmentCache.claim]): with a cache, a sample
            is claimed before it is asked about, so annotators sharing the cache never ask twice. Make it longer
            than one sample can take (all retries); a claim of a dead process on this machine is taken over at once.

    A sample's cache key is ``(settings_hash, sample.key)`` (see [`settings`][]).
    """

    #: The samples [`judge_many`][] accepts.
    sample_type: ClassVar[type] = object
    #: The prompts the constructor accepts.
    prompt_type: ClassVar[type] = JudgePrompt

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: JudgmentCache | str | Path | None = None,
        prompt: JudgePrompt,
        parse_retries: int = 2,
        claim_lease: float = 600.0,
    ) -> None:
        name = type(self).__name__
        if not isinstance(backend, JudgeBackend):
            raise TypeError(f"{name}: backend: expected a JudgeBackend, got {type(backend).__name__}")
        if not isinstance(prompt, self.prompt_type):
            raise TypeError(f"{name}: prompt: expected a {self.prompt_type.__name__}, got {type(prompt).__name__}")
        if isinstance(parse_retries, bool) or not isinstance(parse_retries, int) or parse_retries < 0:
            raise ValueError(f"{name}: parse_retries: expected an int >= 0, got {parse_retries!r}")
        if isinstance(claim_lease, bool) or not isinstance(claim_lease, (int, float)) or not claim_lease > 0:
            raise ValueError(f"{name}: claim_lease: expected a number of seconds > 0, got {claim_lease!r}")
        self.backend, self.parse_retries = backend, parse_retries
        self.prompt: JudgePrompt = prompt
        self.claim_lease = float(claim_lease)
        self._owner = (os.getpid(), claim_owner())
        self.cache = cache if cache is None or isinstance(cache, JudgmentCache) else JudgmentCache(cache)
        if self.cache is not None and not self.cache.readonly:
            self.cache.register_settings(self.settings_hash, self.settings)

    def conversation(self, sample: SampleT) -> tuple[list[dict[str, Any]], Any]:
        """``(messages, image)`` shown to the backend for one sample (``image`` ``None`` for text only).

        Raises:
            JudgeInputError: the sample cannot be shown.
        """
        raise NotImplementedError

    def read_reply(self, reply: str) -> dict[str, float]:
        """The scores in one raw reply (stored as the verdict's ``aspects``).

        Raises:
            ~.reply.JudgeReplyError: the reply holds no readable scores.
        """
        raise NotImplementedError

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that can change a reply: the backend's
        [`identity`][adaptive_length_reward.difficulty.judge.backends.JudgeBackend.identity] (model and generation
        settings), the prompt version and fingerprint."""
        return {
            "judge": self.backend.identity(),
            "prompt_version": self.prompt.version,
            "prompt_sha256": self.prompt.fingerprint,
        }

    @property
    def settings_hash(self) -> str:
        """SHA-256 (first 32 hex digits) of [`settings`][] as canonical JSON."""
        text = json.dumps(self.settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def ask(self, sample: SampleT) -> Judgment:
        """Rate one sample now (no cache): ask, read, re-ask on an unreadable reply up to ``parse_retries``.

        Raises:
            JudgeInputError: the sample cannot be shown (e.g. an unreadable image).
            ~.backends.JudgeRequestError: the backend rejected the request.
        """
        first, image = self.conversation(sample)
        messages = first
        reply: str | None = None
        error_text = ""
        for attempts in range(1 + self.parse_retries):
            text: str | None = None
            try:
                text = self.backend.complete(messages, image)
                reply = text[:MAX_STORED_REPLY]
                return Judgment(sample.key, "ok", aspects=self.read_reply(text), reply=reply, attempts=attempts + 1)
            except JudgeTransportError as error:
                logger.warning("sample %r: no reply from the judge, recorded as transport_error: %s", sample.key, error)
                return Judgment(sample.key, "transport_error", reply=reply, error=str(error), attempts=attempts)
            except JudgeReplyError as error:  # unreadable, or no readable text at all (too large, not text)
                error_text = str(error)
                reply = None if text is None else reply
                # the judge sees its own unreadable reply and a reminder; a reply without text: the question again
                messages = first if reply is None else self.prompt.repair_messages(first, reply, error_text)
                again = "asking again" if attempts < self.parse_retries else "recorded as unparseable"
                logger.info(
                    "sample %r: unreadable judge reply (attempt %d of %d): %s; %s",
                    sample.key,
                    attempts + 1,
                    1 + self.parse_retries,
                    error_text,
                    again,
                )
        return Judgment(sample.key, "unparseable", reply=reply, error=error_text, attempts=1 + self.parse_retries)

    @property
    def owner(self) -> str:
        """This judge's name on its cache claims (new in a forked or unpickled copy)."""
        if self._owner[0] != os.getpid():
            self._owner = (os.getpid(), claim_owner())
        return self._owner[1]

    def _store(self, judgment: Judgment) -> None:
        if self.cache is not None and judgment.status in CACHED_STATUSES and not judgment.cached:
            self.cache.put(self.settings_hash, judgment)

    def _claim_and_ask(self, sample: SampleT, done_after: float | None) -> Judgment | _Busy:
        """[`ask`][] under a claim on the cache: the verdict another annotator stored meanwhile, or
        ``_Busy`` while another annotator holds the sample (see
        [`claim`][adaptive_length_reward.difficulty.judge.cache.JudgmentCache.claim])."""
        if self.cache is None:
            return self.ask(sample)
        state = self.cache.claim(
            self.settings_hash, sample.key, self.owner, lease=self.claim_lease, done_after=done_after
        )
        if isinstance(state, Judgment):
            return state
        if not state:
            return _Busy(sample)
        try:
            judgment = self.ask(sample)
        except BaseException:
            self.cache.release(self.settings_hash, sample.key, self.owner)
            raise
        if judgment.status not in CACHED_STATUSES:  # nothing to store: let another annotator try
            self.cache.release(self.settings_hash, sample.key, self.owner)
        return judgment

    def cached(self, sample_ids: Iterable[Any]) -> dict[str, Judgment]:
        """Stored verdicts for these ids (keyed by their string form); empty without a cache."""
        return {} if self.cache is None else self.cache.get_many(self.settings_hash, sample_ids)

    def judge(self, sample: SampleT, *, retry_failed: bool = False) -> Judgment:
        """One sample: the cached verdict if there is one, else ask and store."""
        return next(self.judge_many([sample], retry_failed=retry_failed))

    def judge_many(self, samples: Iterable[SampleT], *, retry_failed: bool = False) -> Iterator[Judgment]:
        """Verdicts for many samples, one per distinct id, cached ones first, then as the judge answers.

        At most ``backend.max_concurrency`` samples are in flight; each verdict is stored before it is yielded,
        and on an early stop or an error the requests in flight are waited for and stored too. Cached
        ``"unparseable"`` verdicts are asked again only with ``retry_failed=True``.

        Raises:
            JudgeInputError, JudgeRequestError: from [`ask`][] (after the other finished verdicts are stored).
        """
        unique: dict[str, SampleT] = {}
        for sample in samples:
            if not isinstance(sample, self.sample_type):
                raise TypeError(
                    f"{type(self).__name__}.judge_many: samples: expected {self.sample_type.__name__} "
                    f"items, got {type(sample).__name__}"
                )
            unique.setdefault(sample.key, sample)
        known = self.cached(unique)
        hits, todo = [], []
        for key, sample in unique.items():
            hit = known.get(key)
            if hit is not None and (hit.ok or not retry_failed):
                hits.append(hit)
            else:
                todo.append(sample)
        if self.cache is not None:
            logger.info(
                "judge cache %s: %d of %d samples answered from the cache, %d to ask%s",
                self.cache.path,
                len(hits),
                len(unique),
                len(todo),
                f" ({len(known) - len(hits)} cached as failed, asked again)" if len(known) > len(hits) else "",
            )
        yield from hits
        yield from self._ask_all(todo, retry_failed)

    def _ask_all(self, todo: list[SampleT], retry_failed: bool) -> Iterator[Judgment]:
        workers = max(1, int(self.backend.max_concurrency))
        done_after = time.time() if retry_failed else None  # failures stored from now on count as fresh verdicts
        pending: set[Future[Judgment | _Busy]] = set()
        deferred: list[SampleT] = []  # claimed by another annotator: looked at again later
        queue = iter(todo)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alr-judge")
        poll = CLAIM_POLL[0]

        def refill() -> None:
            for sample in queue:
                pending.add(pool.submit(self._claim_and_ask, sample, done_after))
                if len(pending) >= workers:
                    break

        try:
            refill()
            while pending or deferred:
                if not pending:  # only samples that other annotators are asking about are left: wait, look again
                    logger.info(
                        "%d samples are being asked about by another annotator; looking again in %.1f s",
                        len(deferred),
                        poll,
                    )
                    time.sleep(poll)
                    poll = min(2 * poll, CLAIM_POLL[1])
                    pending.update(pool.submit(self._claim_and_ask, s, done_after) for s in deferred)
                    deferred = []
                    continue
                done, still = wait(pending, return_when=FIRST_COMPLETED)
                pending.intersection_update(still)
                error = next((f.exception() for f in done if f.exception() is not None), None)
                finished: list[Judgment] = []
                for future in done:
                    result = future.result() if future.exception() is None else None
                    if isinstance(result, _Busy):
                        deferred.append(result.sample)
                    elif result is not None:
                        finished.append(result)
                for judgment in finished:  # store every finished verdict before handing any out
                    self._store(judgment)
                yield from finished
                if error is not None:
                    raise error
                refill()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in pending:  # finished after an error or an early stop: keep what was paid for
                if not future.cancelled() and future.exception() is None:
                    result = future.result()
                    if isinstance(result, Judgment):
                        self._store(result)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r}, prompt={self.prompt.version!r}, cache={self.cache!r})"


class DifficultyJudge(JudgeRunner[JudgeSample]):
    """Asks a backend to rate samples, reads the replies, and keeps verdicts in a [`JudgmentCache`][].

    The difficulty question (image, expression, target geometry; three aspects) on [`JudgeRunner`][]'s machinery.

    Args:
        backend: where replies come from (a [`JudgeBackend`][]).
        cache: a [`JudgmentCache`][], a path to one, or ``None`` (nothing is remembered).
        prompt: the [`JudgePrompt`][] (default ``PIXELTHINK_V1``).
        parse_retries: re-asks after an unreadable reply before the sample is recorded as ``"unparseable"``.
        aggregate: how [`difficulty`][] combines the aspects (not in the cache key: the cache keeps them).
        weights: per-aspect weights: the difficulty is then ``sum_a w_a s_a / sum_a w_a`` (absent aspects weigh 0).
        claim_lease: seconds a claim on a sample holds (see
            [`claim`][adaptive_length_reward.difficulty.judge.cache.JudgmentCache.claim]): with a cache, a sample
            is claimed before it is asked about, so annotators sharing the cache never ask twice. Make it longer
            than one sample can take (all retries); a claim of a dead process on this machine is taken over at once.

    A sample's cache key is ``(settings_hash, str(sample_id))`` (see ``settings``).
    """

    sample_type = JudgeSample
    prompt_type = JudgePrompt

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: JudgmentCache | str | Path | None = None,
        prompt: JudgePrompt = PIXELTHINK_V1,
        parse_retries: int = 2,
        aggregate: Aggregate = "mean",
        weights: Mapping[str, float] | None = None,
        claim_lease: float = 600.0,
    ) -> None:
        if aggregate not in typing.get_args(Aggregate):
            raise ValueError(
                f"DifficultyJudge: aggregate: expected one of {typing.get_args(Aggregate)}, got {aggregate!r}"
            )
        try:
            self.weights = check_weights(weights)
        except ValueError as error:
            raise ValueError(f"DifficultyJudge: {error}") from None
        self.aggregate = aggregate
        super().__init__(backend, cache=cache, prompt=prompt, parse_retries=parse_retries, claim_lease=claim_lease)

    def difficulty(self, judgment: Judgment) -> float:
        """The verdict's combined score with this judge's aggregation (NaN unless ``"ok"``)."""
        return judgment.difficulty(aggregate=self.aggregate, weights=self.weights)

    def conversation(self, sample: JudgeSample) -> tuple[list[dict[str, Any]], Any]:
        """The prompt's messages for the sample's expression and target geometry, and its image."""
        try:
            image = load_image(sample.image, base_dir=sample.base_dir)
            geometry = sample.geometry(*image.size)
        except (OSError, TypeError, ValueError) as error:
            raise JudgeInputError(f"sample {sample.sample_id!r}: {type(error).__name__}: {error}") from error
        return self.prompt.messages(sample.expression, geometry), image

    def read_reply(self, reply: str) -> dict[str, float]:
        """The three aspect scores ([`parse_judge_reply`][])."""
        return parse_judge_reply(reply)
