"""Where the judge's replies come from: a local transformers model, or an OpenAI-compatible HTTP server.

A backend turns one conversation (chat messages with one image) into one reply string. It owns transport
concerns (timeouts, retries with exponential backoff, a concurrency limit); reading the reply is the judge's job
(:func:`~adaptive_length_reward.difficulty.judge.parse_judge_reply`).

Messages use the neutral multimodal chat format that transformers processors and chat templates take::

    [{"role": "system", "content": "..."},
     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}]

:class:`OpenAICompatibleBackend` sends them to ``{base_url}/chat/completions`` (vLLM's and SGLang's OpenAI
servers) with the image inlined as a base64 ``data:`` URL in an ``image_url`` part; only the standard library
is used (``urllib``). :class:`TransformersBackend` runs any ``AutoModelForImageTextToText`` checkpoint in
process; torch and transformers are imported on first use, never at import time.

Failures: a timeout, a connection error, an HTTP 408/409/425/429 or 5xx, or a body that is not a
chat-completions response is retried up to ``max_retries`` times, waiting ``backoff * 2**attempt`` seconds
(capped at ``max_backoff``, times a random factor in ``[0.5, 1]``, and at least the server's ``Retry-After``);
then :class:`JudgeTransportError` is raised. Any other HTTP 4xx means the request itself is wrong (bad URL,
model name, key) and raises :class:`JudgeRequestError` at once.
"""

from __future__ import annotations

import abc
import base64
import io
import json
import os
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..config import ComponentConfig, Configurable, format_validation_error, register, validated
from ..errors import ConfigError, MissingExtraError, import_optional

__all__ = [
    "JudgeBackend",
    "JudgeRequestError",
    "JudgeTransportError",
    "OpenAICompatibleBackend",
    "TransformersBackend",
    "image_data_url",
]

Messages = Sequence[Mapping[str, Any]]

#: HTTP statuses worth retrying besides 5xx: request timeout, conflict, too early, too many requests.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


class JudgeTransportError(RuntimeError):
    """No usable reply after every retry (timeouts, connection errors, 5xx/429, malformed response bodies)."""


class JudgeRequestError(RuntimeError):
    """The server rejected the request (an HTTP 4xx other than 408/409/425/429): fix the URL, model or key."""


class JudgeBackend(Configurable[ComponentConfig], abc.ABC):
    """Turns one conversation with one image into the judge's reply text.

    Subclasses implement :meth:`complete` and :meth:`identity`, and set :attr:`max_concurrency` (how many
    :meth:`complete` calls may run at once; the judge never runs more).
    """

    max_concurrency: int = 1

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """What determines the reply: model id and generation settings (part of the cache key).

        Transport settings (URL, timeouts, retries, concurrency) are left out: they do not change the reply.
        """

    @abc.abstractmethod
    def complete(self, messages: Messages, image: Any) -> str:
        """The reply to ``messages``; ``image`` (a PIL image) fills the ``{"type": "image"}`` part.

        Raises:
            JudgeTransportError: no reply after every retry.
            JudgeRequestError: the request was rejected as malformed (not retried).
        """

    @property
    def requests_made(self) -> int:
        """How many requests (HTTP calls or generations, retries included) this backend object has made."""
        return int(self.__dict__.get("_requests", 0))

    def _count_request(self) -> None:
        lock = self.__dict__.setdefault("_count_lock", threading.Lock())
        with lock:
            self.__dict__["_requests"] = self.__dict__.get("_requests", 0) + 1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_count_lock", None)
        return state


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


# ------------------------------------------------------------------------------------------------------------


class OpenAICompatibleBackendConfig(ComponentConfig):
    kind: Literal["openai_compatible_backend"] = "openai_compatible_backend"
    base_url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(3, ge=0)
    backoff: float = Field(1.0, ge=0, allow_inf_nan=False)
    max_backoff: float = Field(30.0, ge=0, allow_inf_nan=False)
    concurrency: int = Field(4, ge=1)
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    json_mode: bool = False
    image_format: Literal["png", "jpeg"] = "png"
    api_key_env: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL (e.g. http://127.0.0.1:8000/v1), got {value!r}")
        return value.rstrip("/")


@register("openai_compatible_backend", OpenAICompatibleBackendConfig)
class OpenAICompatibleBackend(JudgeBackend):
    """An OpenAI-compatible ``/chat/completions`` endpoint (a vLLM or SGLang server, or a hosted API).

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name (``--served-model-name`` of vLLM); part of the cache key.
        timeout: seconds per HTTP request (connect and read).
        max_retries: retries after the first attempt for transient failures (see the module docstring).
        backoff, max_backoff: the exponential backoff's first wait and cap, in seconds.
        concurrency: the most requests in flight at once, across every thread using this object.
        max_tokens, temperature, top_p, seed: generation settings sent with each request (part of the key).
        json_mode: also send ``response_format={"type": "json_object"}`` (vLLM and SGLang support it).
        image_format: how the image is inlined: ``"png"`` (lossless, default) or ``"jpeg"`` (smaller).
        api_key_env: name of an environment variable holding a bearer token (the key itself is never stored
            in configs or caches); ``None`` sends no ``Authorization`` header.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 4,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        json_mode: bool = False,
        image_format: Literal["png", "jpeg"] = "png",
        api_key_env: str | None = None,
    ) -> None:
        values = dict(base_url=base_url, model=model, timeout=timeout, max_retries=max_retries, backoff=backoff,
                      max_backoff=max_backoff, concurrency=concurrency, max_tokens=max_tokens, temperature=temperature,
                      top_p=top_p, seed=seed, json_mode=json_mode, image_format=image_format, api_key_env=api_key_env)
        try:  # not config.validated(): its own parameter is called ``model``
            self._config = OpenAICompatibleBackendConfig.model_validate(values)
        except ValidationError as error:
            raise ConfigError(format_validation_error("OpenAICompatibleBackend", error)) from None
        self.max_concurrency = self._config.concurrency
        self._slots = threading.BoundedSemaphore(self._config.concurrency)

    @property
    def url(self) -> str:
        """The endpoint: ``{base_url}/chat/completions``."""
        return f"{self._config.base_url}/chat/completions"

    def identity(self) -> dict[str, Any]:
        c = self._config
        return {"backend": "openai-compatible", "model": c.model, "max_tokens": c.max_tokens,
                "temperature": c.temperature, "top_p": c.top_p, "seed": c.seed, "json_mode": c.json_mode,
                "image_format": c.image_format}

    def payload(self, messages: Messages, image: Any) -> dict[str, Any]:
        """The JSON body sent for one conversation (the ``{"type": "image"}`` part becomes an ``image_url``)."""
        c = self._config
        url = image_data_url(image, image_format=c.image_format)
        converted = []
        for message in messages:
            content = message["content"]
            if not isinstance(content, str):
                parts = []
                for part in content:
                    if part.get("type") == "image":
                        parts.append({"type": "image_url", "image_url": {"url": url}})
                    else:
                        parts.append(dict(part))
                content = parts
            converted.append({"role": message["role"], "content": content})
        body: dict[str, Any] = {"model": c.model, "messages": converted, "max_tokens": c.max_tokens,
                                "temperature": c.temperature, "top_p": c.top_p}
        if c.seed is not None:
            body["seed"] = c.seed
        if c.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        name = self._config.api_key_env
        if name is not None:
            key = os.environ.get(name)
            if not key:
                raise JudgeRequestError(f"OpenAICompatibleBackend: api_key_env: expected the environment "
                                        f"variable {name!r} "
                                        "to hold an API key, got nothing")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @staticmethod
    def _reply_text(body: bytes) -> str:
        try:
            data = json.loads(body)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _MalformedResponse(f"expected a chat-completions JSON body with choices[0].message, got "
                                     f"{body[:200]!r}") from None
        if not isinstance(message, Mapping):
            raise _MalformedResponse(f"expected choices[0].message to be an object, got {message!r:.120}")
        content = message.get("content")
        if content is None:  # e.g. a reply with only tool calls or only reasoning: nothing to read
            return ""
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        if not isinstance(content, str):
            raise _MalformedResponse(f"expected choices[0].message.content to be text, got {content!r:.120}")
        return content

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        c = self._config
        delay = min(c.max_backoff, c.backoff * 2.0**attempt) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, c.max_backoff))
        return delay

    def complete(self, messages: Messages, image: Any) -> str:
        # Imported here: urllib.request pulls in http.client, ssl and email (~50 ms), needed only when judging.
        import http.client
        import urllib.error
        import urllib.request

        c = self._config
        data = json.dumps(self.payload(messages, image)).encode("utf-8")
        headers = self._headers()
        last = "no attempt made"
        for attempt in range(c.max_retries + 1):
            retry_after: float | None = None
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._slots:
                    self._count_request()
                    with urllib.request.urlopen(request, timeout=c.timeout) as response:
                        body = response.read()
                return self._reply_text(body)
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                if error.code not in RETRYABLE_STATUSES and error.code < 500:
                    raise JudgeRequestError(f"{self.url}: HTTP {error.code} (not retried; check base_url, model and "
                                            f"key): {detail}") from None
                last = f"HTTP {error.code}: {detail}"
                header = error.headers.get("Retry-After") if error.headers else None
                if header is not None and header.strip().replace(".", "", 1).isdigit():
                    retry_after = float(header)
            except urllib.error.URLError as error:
                last = f"connection failed: {error.reason}"
            except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
                last = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            except _MalformedResponse as error:
                last = f"malformed response: {error}"
            if attempt < c.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        raise JudgeTransportError(f"{self.url}: no reply after {c.max_retries + 1} attempts; last error: {last}")

    def to_config(self) -> OpenAICompatibleBackendConfig:
        return self._config

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_slots", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self._config.concurrency)


# ------------------------------------------------------------------------------------------------------------


class TransformersBackendConfig(ComponentConfig):
    kind: Literal["transformers_backend"] = "transformers_backend"
    model_path: str = Field(min_length=1)
    processor_path: str | None = None
    model_id: str | None = None
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    device: str = Field("cpu", min_length=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


@register("transformers_backend", TransformersBackendConfig)
class TransformersBackend(JudgeBackend):
    """A local image-text model: any ``AutoModelForImageTextToText`` checkpoint directory (e.g. Qwen2.5-VL).

    The model and processor load on the first :meth:`complete` (never at import or construction); one
    generation runs at a time (``max_concurrency = 1``). Greedy decoding by default; with ``temperature > 0``
    each request is seeded from ``seed`` and its prompt, so a rerun reproduces it.

    Args:
        model_path: a local checkpoint directory (or a hub id where the hub is reachable).
        processor: a ready processor object, for checkpoints whose ``AutoProcessor`` cannot load here (e.g.
            Qwen-VL processors need torchvision for their video part); it must accept
            ``apply_chat_template(messages, ...)`` and ``__call__(text=..., images=..., return_tensors="pt")``.
            Not representable in a config.
        processor_path: where to load the processor from with ``AutoProcessor`` (default: ``model_path``).
        model_id: the model's name in the cache key (default: ``model_path`` as given); set it to keep a
            cache valid when the checkpoint moves.
        max_new_tokens, temperature, top_p, seed: generation settings (part of the cache key).
        device: torch device for the model, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: model weights' dtype (``"auto"`` = as saved).
    """

    max_concurrency = 1

    def __init__(
        self,
        model_path: str | Path,
        *,
        processor: Any = None,
        processor_path: str | Path | None = None,
        model_id: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        device: str = "cpu",
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
    ) -> None:
        if processor is not None and processor_path is not None:
            raise ValueError("TransformersBackend: processor: expected either processor or processor_path, got both")
        self._config = validated(
            "TransformersBackend", TransformersBackendConfig, model_path=str(model_path),
            processor_path=None if processor_path is None else str(processor_path), model_id=model_id,
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, device=device, dtype=dtype,
        )
        self._given_processor = processor
        self._model: Any = None
        self._processor: Any = processor
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        c = self._config
        return {"backend": "transformers", "model": c.model_id or c.model_path, "max_new_tokens": c.max_new_tokens,
                "temperature": c.temperature, "top_p": c.top_p, "seed": c.seed}

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._model, self._processor
        c = self._config
        purpose = "The local difficulty judge (TransformersBackend)"
        transformers = import_optional("transformers", extra="judge", purpose=purpose)
        torch = import_optional("torch", extra="judge", purpose=purpose)
        major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
        dtype_key = "dtype" if major_minor >= (4, 56) else "torch_dtype"
        dtype = "auto" if c.dtype == "auto" else getattr(torch, c.dtype)
        model = transformers.AutoModelForImageTextToText.from_pretrained(c.model_path, **{dtype_key: dtype})
        model = model.to(c.device).eval()
        if self._processor is None:
            source = c.processor_path or c.model_path
            try:
                self._processor = transformers.AutoProcessor.from_pretrained(source)
            except ImportError as error:
                raise MissingExtraError(
                    f"TransformersBackend: the processor of {source!r} needs a package that is not installed "
                    f"({str(error).strip().splitlines()[0] if str(error).strip() else error!r}). Install it (Qwen-VL "
                    "processors need torchvision), or pass processor=... built from AutoTokenizer and "
                    "AutoImageProcessor"
                ) from error
        self._model = model
        return model, self._processor

    def encode(self, messages: Messages, image: Any) -> tuple[Any, str]:
        """``(inputs, prompt)``: the processor's model inputs for one conversation (``input_ids``,
        ``pixel_values``, ... on the model's device) and the rendered chat prompt they were made from."""
        model, processor = self._load()
        text = processor.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[image], return_tensors="pt")
        inputs = inputs.to(model.device)
        return inputs, text

    def complete(self, messages: Messages, image: Any) -> str:
        c = self._config
        torch = import_optional("torch", extra="judge", purpose="The local difficulty judge (TransformersBackend)")
        with self._lock:
            model, processor = self._load()
            inputs, text = self.encode(messages, image)
            generation: dict[str, Any] = {"max_new_tokens": c.max_new_tokens, "do_sample": c.temperature > 0}
            if c.temperature > 0:
                generation.update(temperature=c.temperature, top_p=c.top_p)
                torch.manual_seed(c.seed + zlib.crc32(text.encode("utf-8")))
            self._count_request()
            with torch.no_grad():
                output = model.generate(**inputs, **generation)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            return str(processor.batch_decode(new_tokens, skip_special_tokens=True)[0])

    def to_config(self) -> TransformersBackendConfig:
        if self._given_processor is not None:
            raise TypeError("TransformersBackend: to_config: a processor object cannot be written to a config; "
                            "pass processor_path=... instead")
        return self._config

    def __repr__(self) -> str:
        c = self._config
        return f"TransformersBackend({c.model_path!r}, model_id={c.model_id!r}, max_new_tokens={c.max_new_tokens})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self._config == other._config and self._given_processor is other._given_processor)

    def __hash__(self) -> int:
        return hash(("TransformersBackend", self._config.model_dump_json()))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(_model=None, _lock=None)
        if self._given_processor is None:
            state["_processor"] = None  # reloaded from its path in the receiving process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
