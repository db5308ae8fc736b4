"""Test fixtures for the difficulty subpackage: a real chat-completions HTTP server on 127.0.0.1, a tiny random
Qwen2.5-VL built from a config (saved to disk and loaded back by path), and small datasets.

The HTTP server is a real ``http.server`` speaking the OpenAI chat-completions format. Its replies come from a
*script* (a Python function of the request), or from the tiny VLM when a test passes :func:`model_responder`;
each test says which.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from adapter_fixtures import train_tokenizer

# ------------------------------------------------------------------------------------------------------------
# Scripted chat-completions server
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """Answer 200 with a chat-completions body whose message content is ``text``."""

    text: str | None
    delay: float = 0.0


@dataclass
class Status:
    """Answer with an HTTP error status."""

    code: int
    body: str = '{"error": "scripted"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Raw:
    """Answer 200 with this exact body (e.g. something that is not a chat-completions response)."""

    body: bytes
    delay: float = 0.0


@dataclass
class Drip:
    """Answer 200 with a valid reply, sending its body one byte every ``interval`` seconds (a slow or hostile
    server that never trips a per-read timeout)."""

    text: str
    interval: float = 0.5
    delay: float = 0.0


@dataclass
class Flood:
    """Answer 200 with ``size`` bytes of JSON-looking junk, with a ``Content-Length`` header or without one
    (then the body ends when the connection closes). Records how many bytes were written before the client left."""

    size: int
    declare_length: bool = True
    delay: float = 0.0
    written: list[int] = field(default_factory=list)


Action = Reply | Status | Raw | Drip | Flood
Responder = Callable[[dict[str, Any], int], Action]

SAMPLE_RE = re.compile(r"sample-(\d+)")


def user_text(body: dict[str, Any]) -> str:
    """All text of the request's messages, joined."""
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [p.get("text", "") for p in content if p.get("type") == "text"]
    return "\n".join(parts)


def sample_number(body: dict[str, Any]) -> int | None:
    """The ``N`` of the first ``sample-N`` in the request's first user message (the expression)."""
    match = SAMPLE_RE.search(user_text(body))
    return int(match.group(1)) if match else None


def expected_aspects(n: int) -> dict[str, float]:
    """What :func:`scores_by_sample` answers for sample ``n``."""
    return {"scene": float(1 + n % 10), "seg": float(1 + (3 * n) % 10), "language": float(1 + (7 * n) % 10)}


def scores_by_sample(delay: float = 0.0) -> Responder:
    """Script: a valid JSON reply whose scores are a fixed function of the sample number in the expression."""

    def respond(body: dict[str, Any], index: int) -> Action:
        n = sample_number(body)
        if n is None:
            return Reply("I cannot tell which sample this is.", delay=delay)
        return Reply(f"Here is my rating:\n```json\n{json.dumps(expected_aspects(n))}\n```", delay=delay)

    return respond


def sequence(*actions: Action, then: Responder | None = None) -> Responder:
    """Script: the given actions for the first requests, then ``then`` (default: valid replies)."""
    then = then or scores_by_sample()

    def respond(body: dict[str, Any], index: int) -> Action:
        return actions[index] if index < len(actions) else then(body, index)

    return respond


class ScriptedJudgeServer:
    """A real HTTP server on 127.0.0.1 that answers ``POST /v1/chat/completions`` from a responder function.

    Records every request body, how many arrived per sample number, and the most requests in flight at once.
    Use as a context manager.
    """

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder or scores_by_sample()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.per_sample: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    n = sample_number(body)
                    if n is not None:
                        server.per_sample[n] += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                # A request counts as in flight from its arrival until its reply starts to be written. Counting
                # until the write has finished would overlap the client's next request (the client frees its
                # slot as soon as it has read the reply, possibly before this thread gets to decrement).
                try:
                    if self.path.rstrip("/") != "/v1/chat/completions":
                        action: Action = Status(404, '{"error": "not found"}')
                    else:
                        action = server.responder(body, index)
                    time.sleep(action.delay)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                try:
                    self._send(action, body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def _send(self, action: Action, body: dict[str, Any]) -> None:
                if isinstance(action, Flood):
                    return self._flood(action)
                if isinstance(action, Status):
                    payload, code, headers = action.body.encode(), action.code, action.headers
                elif isinstance(action, Raw):
                    payload, code, headers = action.body, 200, {}
                else:
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": action.text},
                                }
                            ],
                        }
                    ).encode()
                    code, headers = 200, {}
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if isinstance(action, Drip):
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        time.sleep(action.interval)
                else:
                    self.wfile.write(payload)

            def _flood(self, action: Flood) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if action.declare_length:
                    self.send_header("Content-Length", str(action.size))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                chunk = b'{"choices": [' + b" " * 65522
                written = 0
                try:
                    while written < action.size:
                        piece = chunk[: action.size - written]
                        self.wfile.write(piece)
                        written += len(piece)
                finally:
                    action.written.append(written)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------------------------------------------------
# Images and datasets
# ------------------------------------------------------------------------------------------------------------


def square_image(n: int, size: int = 56) -> Any:
    """A white image with a coloured square whose position depends on ``n``."""
    from PIL import Image

    image = Image.new("RGB", (size, size), "white")
    offset = (n * 7) % (size // 2)
    image.paste((200, (40 * n) % 256, 30), (offset, offset, offset + size // 3, offset + size // 3))
    return image


def write_jsonl_dataset(directory: Path, n: int, *, name: str = "data.jsonl") -> Path:
    """``n`` rows ``{"id", "image": "images/N.png", "problem": "... sample-N ...", "mask_area_ratio"}`` as JSONL,
    with the images saved next to it (relative paths, as datasets ship them)."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("w", encoding="utf-8") as stream:
        for i in range(n):
            square_image(i).save(directory / "images" / f"{i}.png")
            row = {
                "id": f"s{i}",
                "image": f"images/{i}.png",
                "problem": f"the coloured square of sample-{i}",
                "mask_area_ratio": round(0.01 + 0.9 * i / max(n, 1), 4),
            }
            stream.write(json.dumps(row) + "\n")
    return path


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------------
# Tiny random Qwen2.5-VL (modelled on shared/recipes/tiny_qwen.py; built from a config, never downloaded)
# ------------------------------------------------------------------------------------------------------------

# ChatML: a message's content is a string or a list of {"type": "image"} / {"type": "text"} parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAINING_TEXT = [
    '{"scene": 4, "seg": 6, "language": 3}',
    "Rate each aspect from 1 to 10.",
    "Referring expression: the coloured square",
    "0 1 2 3 4 5 6 7 8 9 , . : [ ] { } \" '",
]


def _tokenizer() -> Any:
    return train_tokenizer(TRAINING_TEXT, 360, CHAT_TEMPLATE)


def _image_only_processor_class() -> type:
    """A Qwen2.5-VL processor class that accepts no video processor (the stock one needs torchvision, absent
    here). Created on first use (transformers is imported only by the tests that need it) and published as a
    module attribute so processors of this class pickle."""
    cls = globals().get("ImageOnlyQwenProcessor")
    if cls is None:
        from transformers import Qwen2_5_VLProcessor

        def check_argument_for_proper_class(self: Any, argument_name: str, argument: Any) -> Any:
            if argument is None:
                return None
            return Qwen2_5_VLProcessor.check_argument_for_proper_class(self, argument_name, argument)

        cls = type(
            "ImageOnlyQwenProcessor",
            (Qwen2_5_VLProcessor,),
            {"check_argument_for_proper_class": check_argument_for_proper_class, "__module__": __name__},
        )
        globals()["ImageOnlyQwenProcessor"] = cls
    return cls


def image_only_processor(tokenizer: Any, image_processor: Any) -> Any:
    """A Qwen2.5-VL processor from a tokenizer and an image processor, without a video processor."""
    cls = _image_only_processor_class()
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def save_tiny_vlm(directory: Path) -> Path:
    """Build a tiny random Qwen2.5-VL (about 200k parameters) and save model, tokenizer and image processor."""
    from adapter_fixtures import build_vlm
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = _tokenizer()
    model = build_vlm(tokenizer, max_position_embeddings=4096)  # the judge's prompts are long
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16).save_pretrained(directory)
    return directory


def load_processor(directory: Path) -> Any:
    """The processor for a directory written by :func:`save_tiny_vlm`, loaded from its files by path."""
    from transformers import AutoImageProcessor, AutoTokenizer

    return image_only_processor(AutoTokenizer.from_pretrained(directory), AutoImageProcessor.from_pretrained(directory))


def model_responder(backend: Any) -> Responder:
    """Server replies generated by a local backend (the tiny VLM): the request's image is decoded from its data URL
    and the conversation is passed on unchanged."""
    from PIL import Image

    def respond(body: dict[str, Any], index: int) -> Action:
        image = None
        messages = []
        for message in body["messages"]:
            content = message["content"]
            if not isinstance(content, str):
                parts = []
                for part in content:
                    if part["type"] == "image_url":
                        data = part["image_url"]["url"].split(",", 1)[1]
                        image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
                        parts.append({"type": "image"})
                    else:
                        parts.append(part)
                content = parts
            messages.append({"role": message["role"], "content": content})
        return Reply(backend.complete(messages, image))

    return respond


def judge_args(data: Path, out: Path, server: ScriptedJudgeServer, *extra: str) -> list[str]:
    """The `judge` subcommand's arguments (alr-difficulty and alr-rscore alike) against a scripted server, with
    short backoffs and no progress bar; ``extra`` appended."""
    return [
        "judge",
        str(data),
        "-o",
        str(out),
        "--base-url",
        server.base_url,
        "--model",
        "scripted-judge",
        "--backoff",
        "0.01",
        "--max-backoff",
        "0.02",
        "--no-progress",
        *extra,
    ]


def scripted_backend(server: ScriptedJudgeServer, **overrides: Any) -> Any:
    """An ``OpenAICompatibleBackend`` on ``server`` with short timeouts and backoffs (``overrides`` win)."""
    from adaptive_length_reward.difficulty import OpenAICompatibleBackend

    settings: dict[str, Any] = dict(
        base_url=server.base_url,
        model="scripted-judge",
        timeout=2.0,
        max_retries=3,
        backoff=0.01,
        max_backoff=0.05,
        concurrency=2,
    )
    settings.update(overrides)
    return OpenAICompatibleBackend(**settings)


def judge_sample(n: int, *, box: list[int] | None = [4, 4, 20, 20]) -> Any:  # noqa: B006 - never mutated
    """Sample ``n`` for the scripted judge: a square image, an expression that names ``n``."""
    from adaptive_length_reward.difficulty import JudgeSample

    return JudgeSample(
        sample_id=f"s{n}", image=square_image(n), expression=f"the square of sample-{n}", area_ratio=0.1, box=box
    )
