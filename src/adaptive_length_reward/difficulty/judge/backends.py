"""Where the judge's replies come from: a local transformers model, or an OpenAI-compatible HTTP server.

A backend turns one conversation (chat messages with one image, in the multimodal chat format transformers
processors take) into one reply string, and owns transport concerns (timeouts, retries with exponential backoff,
a concurrency limit). Only the standard library is used for HTTP; torch and transformers are imported on first
use. Which failures are retried, and how, is in docs/difficulty.md.
"""

from __future__ import annotations

import abc
import base64
import io
import json
import logging
import os
import random
import socket
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from ...config import Component, param
from ...errors import MissingExtraError, import_optional
from .reply import JudgeReplyError

__all__ = [
    "JudgeBackend",
    "JudgeRequestError",
    "JudgeTransportError",
    "OpenAICompatibleBackend",
    "TransformersBackend",
    "image_data_url",
]

logger = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, Any]]

#: HTTP statuses worth retrying besides 5xx: request timeout, conflict, too early, too many requests.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

_COUNT_LOCK = threading.Lock()


class JudgeTransportError(RuntimeError):
    """No usable reply after every retry (timeouts, connection errors, 5xx/429, malformed response bodies)."""


class JudgeRequestError(RuntimeError):
    """The server rejected the request (an HTTP 4xx other than 408/409/425/429): fix the URL, model or key."""


class NoConfigError(TypeError, NotImplementedError):
    """The component holds an object a config cannot describe (compositions then carry an opaque config)."""


class JudgeBackend(Component, abc.ABC):
    """Turns one conversation with one image into the judge's reply text.

    Subclasses implement [`complete`][] and [`identity`][], and may override ``max_concurrency`` (how many
    [`complete`][] calls may run at once; the judge never runs more). Attributes named in ``_transient`` (locks,
    a loaded model) are not pickled and are made again by ``__post_init__``.
    """

    _transient: ClassVar[tuple[str, ...]] = ()

    @property
    def max_concurrency(self) -> int:
        return 1

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """What determines the reply (part of the cache key): model id and generation settings, not transport."""

    @abc.abstractmethod
    def complete(self, messages: Messages, image: Any) -> str:
        """The reply to ``messages``; ``image`` (a PIL image) fills the ``{"type": "image"}`` part (``None`` for a
        text-only conversation, which then has no such part).

        Raises:
            JudgeTransportError: no reply after every retry.
            JudgeRequestError: the request was rejected as malformed (not retried).
            ~.reply.JudgeReplyError: a reply came but holds no readable text (too large, content not text); the
                judge treats it like a reply [`parse_judge_reply`][] cannot read.
        """

    @property
    def requests_made(self) -> int:
        """How many requests (HTTP calls or generations, retries included) this backend object has made."""
        return int(self.__dict__.get("_requests", 0))

    def _count_request(self) -> None:
        with _COUNT_LOCK:
            self.__dict__["_requests"] = self.requests_made + 1

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in self._transient:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__post_init__()


def image_data_url(image: Any, *, image_format: Literal["png", "jpeg"] = "png") -> str:
    """A PIL image as a ``data:image/...;base64,`` URL (the OpenAI ``image_url`` form)."""
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class _MalformedResponse(Exception):
    """The server answered 200 with a body that is not a chat-completions response."""


#: How much of an HTTP error body is read (it is quoted in the error message).
ERROR_BODY_BYTES = 300


class _Deadline:
    """A whole-request deadline: when it passes, every socket registered here is shut down, which ends any read
    or write blocked on it (a per-read socket timeout alone lets a server that sends one byte per second keep a
    request alive forever)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def _opener(deadline: _Deadline) -> Any:
    """A urllib opener (proxies and HTTPS as usual) whose connections register their socket with ``deadline``."""
    import functools
    import http.client
    import urllib.request

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.register(self.sock)

    class SecureConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            deadline.register(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(Connection, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            extra = {"check_hostname": self._check_hostname} if hasattr(self, "_check_hostname") else {}
            context = getattr(self, "_context", None)
            return self.do_open(functools.partial(SecureConnection, **extra), req, context=context)

    return urllib.request.build_opener(Handler(), SecureHandler())


def _read_capped(response: Any, limit: int) -> bytes:
    """The whole body, or [`JudgeReplyError`][] as soon as it is known to exceed ``limit`` bytes (from
    ``Content-Length`` before reading, else while reading): an oversized reply is never held in memory."""
    length = response.headers.get("Content-Length") if response.headers else None
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise JudgeReplyError(
            f"expected a response body of at most {limit} bytes (max_response_bytes), got Content-Length {int(length)}"
        )
    chunks, size = [], 0
    while chunk := response.read(min(65536, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise JudgeReplyError(f"expected a response body of at most {limit} bytes (max_response_bytes), got more")
        chunks.append(chunk)
    return b"".join(chunks)


class OpenAICompatibleBackend(JudgeBackend, kind="openai_compatible_backend"):
    """An OpenAI-compatible ``/chat/completions`` endpoint (a vLLM or SGLang server, or a hosted API)."""

    base_url: str = param(min_length=1, doc="the API root, e.g. http://127.0.0.1:8000/v1 (/chat/completions is added)")
    model: str = param(min_length=1, doc="the served model name (vLLM's --served-model-name)")
    timeout: float = param(
        default=60.0,
        gt=0,
        doc="seconds per request, a deadline for the whole request (connect, "
        "send, headers and body), not per socket read",
    )
    max_response_bytes: int = param(
        default=4 * 1024 * 1024,
        ge=1024,
        doc="largest response body read; a larger reply is recorded as unreadable without being read whole",
    )
    max_retries: int = param(default=3, ge=0, doc="retries of a transient failure after the first attempt")
    backoff: float = param(default=1.0, ge=0, doc="first retry wait in seconds, doubled each time")
    max_backoff: float = param(default=30.0, ge=0, doc="longest retry wait in seconds")
    concurrency: int = param(default=4, ge=1, doc="requests in flight at once, across every thread using it")
    max_tokens: int = param(default=256, ge=1, doc="reply length limit in tokens")
    temperature: float = param(default=0.0, ge=0, doc="sampling temperature (0: greedy)")
    top_p: float = param(default=1.0, gt=0, le=1, doc="nucleus sampling mass")
    seed: int | None = param(default=None, doc="sampling seed sent with each request")
    json_mode: bool = param(default=False, doc="request response_format json_object (vLLM and SGLang support it)")
    image_format: Literal["png", "jpeg"] = param(default="png", doc="how the image is inlined: png (lossless) or jpeg")
    api_key_env: str | None = param(default=None, doc="environment variable holding a bearer token (never stored)")

    _transient = ("_slots",)

    @staticmethod
    def _check(config: Any) -> None:
        if not config.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url: expected an http:// or https:// URL (e.g. http://127.0.0.1:8000/v1), got "
                f"{config.base_url!r}"
            )

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.concurrency)

    @property
    def max_concurrency(self) -> int:
        return self.concurrency

    @property
    def url(self) -> str:
        """The endpoint: ``{base_url}/chat/completions``."""
        return f"{self.base_url.rstrip('/')}/chat/completions"

    def identity(self) -> dict[str, Any]:
        names = ("model", "max_tokens", "temperature", "top_p", "seed", "json_mode", "image_format")
        return {"backend": "openai-compatible", **{name: getattr(self, name) for name in names}}

    def payload(self, messages: Messages, image: Any) -> dict[str, Any]:
        """The JSON body sent for one conversation (the ``{"type": "image"}`` part becomes an ``image_url``)."""
        url = (
            None
            if image is None
            else {"type": "image_url", "image_url": {"url": image_data_url(image, image_format=self.image_format)}}
        )
        converted = []
        for message in messages:
            content = message["content"]
            if not isinstance(content, str):
                if url is None and any(part.get("type") == "image" for part in content):
                    raise TypeError(
                        "OpenAICompatibleBackend.payload: image: expected an image for the messages' "
                        "image part, got None"
                    )
                content = [url if part.get("type") == "image" else dict(part) for part in content]
            converted.append({"role": message["role"], "content": content})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": converted,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        name = self.api_key_env
        if name is not None:
            key = os.environ.get(name)
            if not key:
                raise JudgeRequestError(
                    f"OpenAICompatibleBackend: api_key_env: expected the environment variable "
                    f"{name!r} to hold an API key, got nothing"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @staticmethod
    def _reply_text(body: bytes) -> str:
        """The reply text of a chat-completions body.

        Raises:
            _MalformedResponse: not a chat-completions body (retried as a transport failure).
            JudgeReplyError: a chat completion whose content is not text (recorded like any unreadable reply).
        """
        try:
            message = json.loads(body)["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            raise _MalformedResponse(
                f"expected a chat-completions JSON body with choices[0].message, got {body[:200]!r}"
            ) from None
        if not isinstance(message, Mapping):
            raise _MalformedResponse(f"expected choices[0].message to be an object, got {type(message).__name__}")
        content = message.get("content")
        if content is None:  # e.g. a reply with only tool calls or only reasoning: nothing to read
            return ""
        if isinstance(content, list):
            texts = []
            for i, part in enumerate(content):
                text = part.get("text", "") if isinstance(part, Mapping) else ""
                if not isinstance(text, str):
                    raise JudgeReplyError(
                        f"choices[0].message.content[{i}].text: expected a string, got {type(text).__name__}"
                    )
                texts.append(text)
            return "".join(texts)
        if not isinstance(content, str):
            raise JudgeReplyError(f"choices[0].message.content: expected text, got {type(content).__name__}")
        return content

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2.0**attempt) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay

    def complete(self, messages: Messages, image: Any) -> str:
        data = json.dumps(self.payload(messages, image)).encode("utf-8")
        headers = self._headers()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            reply, last, retry_after = self._attempt(data, headers)
            if reply is not None:
                return reply
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                logger.warning(
                    "%s: attempt %d of %d failed (%s); retrying in %.1f s",
                    self.url,
                    attempt + 1,
                    self.max_retries + 1,
                    last,
                    delay,
                )
                time.sleep(delay)
        logger.error("%s: no reply after %d attempts; last error: %s", self.url, self.max_retries + 1, last)
        raise JudgeTransportError(f"{self.url}: no reply after {self.max_retries + 1} attempts; last error: {last}")

    def _attempt(self, data: bytes, headers: Mapping[str, str]) -> tuple[str | None, str, float | None]:
        """One request within the ``timeout`` deadline: ``(reply, "", None)``, or ``(None, what failed, the
        server's Retry-After)`` when worth retrying. Raises [`JudgeRequestError`][] for a request the server
        rejects, [`JudgeReplyError`][] for a reply that is not readable text or too large."""
        # Imported here: urllib.request pulls in http.client, ssl and email (~50 ms), needed only when judging.
        import http.client
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, data=data, headers=dict(headers), method="POST")
        with self._slots, _Deadline(self.timeout) as deadline:
            self._count_request()
            try:
                with _opener(deadline).open(request, timeout=self.timeout) as response:
                    body = _read_capped(response, self.max_response_bytes)
                if deadline.expired:  # the shutdown may read as a clean end of a truncated body
                    raise TimeoutError
                return self._reply_text(body), "", None
            except urllib.error.HTTPError as error:
                with error:
                    detail = error.read(ERROR_BODY_BYTES).decode("utf-8", "replace")
                if error.code not in RETRYABLE_STATUSES and error.code < 500:
                    raise JudgeRequestError(
                        f"{self.url}: HTTP {error.code} (not retried; check base_url, model and key): {detail}"
                    ) from None
                header = error.headers.get("Retry-After") if error.headers else None
                wait = float(header) if header is not None and header.strip().replace(".", "", 1).isdigit() else None
                return None, f"HTTP {error.code}: {detail}", wait
            except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as error:
                if deadline.expired or isinstance(error, TimeoutError):
                    return None, f"no complete reply within the {self.timeout:g} s deadline (timeout)", None
                if isinstance(error, urllib.error.URLError):
                    return None, f"connection failed: {error.reason}", None
                return None, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__, None
            except _MalformedResponse as error:
                return None, f"malformed response: {error}", None


class TransformersBackend(JudgeBackend, kind="transformers_backend"):
    """A local image-text model: any ``AutoModelForImageTextToText`` checkpoint directory (e.g. Qwen2.5-VL).

    The model and processor load on the first ``complete``; one generation runs at a time. With
    ``temperature > 0`` each request is seeded from ``seed`` and its prompt, so a rerun reproduces it.
    """

    model_path: str | Path = param(kw_only=False, min_length=1, doc="a local checkpoint directory (or a hub id)")
    processor: Any = param(
        default=None,
        doc="a ready processor object (with apply_chat_template and __call__(text=, "
        "images=, return_tensors='pt')), for checkpoints whose AutoProcessor cannot load here "
        "(Qwen-VL needs torchvision); not representable in a config",
    )
    processor_path: str | Path | None = param(default=None, doc="where AutoProcessor loads from (default: model_path)")
    model_id: str | None = param(
        default=None,
        doc="the model's name in the cache key (default: model_path as "
        "given); keeps a cache valid when the checkpoint moves",
    )
    max_new_tokens: int = param(default=256, ge=1, doc="reply length limit in tokens")
    temperature: float = param(default=0.0, ge=0, doc="sampling temperature (0: greedy)")
    top_p: float = param(default=1.0, gt=0, le=1, doc="nucleus sampling mass")
    seed: int = param(default=0, doc="sampling seed (with the prompt's hash, per request)")
    device: str = param(default="cpu", min_length=1, doc="torch device for the model, e.g. cpu or cuda")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = param(default="auto", doc="weights' dtype (auto: saved)")

    _transient = ("_model", "_processor", "_lock")

    @staticmethod
    def _check(config: Any) -> None:
        if config.processor is not None and config.processor_path is not None:
            raise ValueError("processor: expected either processor or processor_path, got both")

    def __post_init__(self) -> None:
        self._model: Any = None
        self._processor: Any = self.processor
        self._lock = threading.Lock()

    def to_config(self) -> Any:
        if self.processor is not None:
            raise NoConfigError(
                "TransformersBackend: to_config: a processor object cannot be written to a config; "
                "pass processor_path=... instead"
            )
        return super().to_config()

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model": self.model_id or self.model_path,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._model, self._processor
        purpose = "The local difficulty judge (TransformersBackend)"
        transformers = import_optional("transformers", extra="judge", purpose=purpose)
        torch = import_optional("torch", extra="judge", purpose=purpose)
        major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
        dtype_key = "dtype" if major_minor >= (4, 56) else "torch_dtype"
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        model = transformers.AutoModelForImageTextToText.from_pretrained(self.model_path, **{dtype_key: dtype})
        model = model.to(self.device).eval()
        if self._processor is None:
            source = self.processor_path or self.model_path
            try:
                self._processor = transformers.AutoProcessor.from_pretrained(source)
            except ImportError as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                raise MissingExtraError(
                    f"TransformersBackend: the processor of {source!r} needs a package that is not installed "
                    f"({reason}). Install it (Qwen-VL processors need torchvision), or pass processor=... built "
                    "from AutoTokenizer and AutoImageProcessor"
                ) from error
        self._model = model
        return model, self._processor

    def encode(self, messages: Messages, image: Any) -> tuple[Any, str]:
        """``(inputs, prompt)``: the processor's model inputs for one conversation (``input_ids``,
        ``pixel_values``, ... on the model's device) and the rendered chat prompt they were made from."""
        model, processor = self._load()
        text = processor.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=None if image is None else [image], return_tensors="pt")
        return inputs.to(model.device), text

    def complete(self, messages: Messages, image: Any) -> str:
        torch = import_optional("torch", extra="judge", purpose="The local difficulty judge (TransformersBackend)")
        with self._lock:
            model, processor = self._load()
            inputs, text = self.encode(messages, image)
            generation: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
            if self.temperature > 0:
                generation.update(temperature=self.temperature, top_p=self.top_p)
                torch.manual_seed(self.seed + zlib.crc32(text.encode("utf-8")))
            self._count_request()
            with torch.no_grad():
                output = model.generate(**inputs, **generation)
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            return str(processor.batch_decode(new_tokens, skip_special_tokens=True)[0])
