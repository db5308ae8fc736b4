"""The OpenRLHF reward server against hostile clients: body and batch limits, slow clients, the token check.

One real server, started by its command line (``python -m adaptive_length_reward.adapters.openrlhf_server``) on a
free port of 127.0.0.1, with a 1 s header and body timeout, a token, and the default body limit (16 MiB);
clients are raw sockets (to send what a normal client would not) and urllib. Peak memory is the server process's
``VmHWM`` from /proc (Linux).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_fixtures import free_port

pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
pytest.importorskip("fastapi", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")

from adaptive_length_reward.adapters.openrlhf_server import ServerLimits

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"
MB = 1024 * 1024
PROMPT = "<|im_start|>user\nFind the cat.<|im_end|>\n<|im_start|>assistant\n"
QUERY = PROMPT + (
    '<think>the cat is left</think><answer>{"bbox": [10, 10, 40, 40], "points_1": [20, 20], '
    '"points_2": [30, 30]}</answer><|im_end|>'
)
LABEL = {"ground_truth": "<box>(10,10),(40,40)</box><points>(20,20),(30,30)</points>", "difficulty": 2.0}
VALID = {"query": [QUERY], "prompts": [PROMPT], "labels": [LABEL]}


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "ALR_AUTH_TOKEN": TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_length_reward.adapters.openrlhf_server",
            "--port",
            str(port),
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-batch",
            "64",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the server did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        assert post(url, VALID)[0] == 200  # warm: the first request imports and builds what scoring needs
        yield {"url": url, "port": port, "pid": process.pid}
    finally:
        process.terminate()
        process.communicate(timeout=30)


def post(url: str, body: Any, *, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + "/get_reward", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def head(length: int | None, *, chunked: bool = False, token: str = TOKEN) -> bytes:
    lines = [
        "POST /get_reward HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Authorization: Bearer {token}",
    ]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_until_answered(
    port: int, header: bytes, body: Iterator[bytes], *, limit_s: float = 20.0
) -> tuple[bytes, int, float]:
    """Send the header, then body pieces, reading whenever the server answers; returns (what the server sent
    back, body bytes sent, seconds until the answer began)."""
    started = time.monotonic()
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(header)
        for piece in body:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    sock.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(piece)
            assert time.monotonic() - started < limit_s
        answered = time.monotonic() - started
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent, answered


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_valid_requests_are_served_with_the_token(server: dict[str, Any]) -> None:
    status, out = post(server["url"], VALID)
    assert status == 200 and len(out["rewards"]) == 1 and set(out) >= {"rewards", "scores", "extra_logs"}


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_a_missing_or_wrong_token_gets_401(server: dict[str, Any], token: str | None) -> None:
    status, out = post(server["url"], VALID, token=token)
    assert status == 401 and "Bearer" in out["detail"]


def test_a_100_mb_body_gets_413_without_growing_the_server(server: dict[str, Any]) -> None:
    before = peak_rss(server["pid"])
    pieces = (b"x" * MB for _ in range(100))
    answer, sent, answered = send_until_answered(server["port"], head(100 * MB), pieces)
    growth = peak_rss(server["pid"]) - before
    assert status_of(answer) == 413 and b"max_body_bytes" in answer, answer[:300]
    assert answered < 2.0 and sent < 20 * MB, (answered, sent)
    assert growth < 50 * MB, growth


def test_a_100_mb_body_without_a_length_is_cut_off_at_the_limit(server: dict[str, Any]) -> None:
    before = peak_rss(server["pid"])
    chunk = b"100000\r\n" + b"x" * MB + b"\r\n"  # 1 MiB chunks (hex 100000)
    answer, sent, _ = send_until_answered(server["port"], head(None, chunked=True), (chunk for _ in range(100)))
    growth = peak_rss(server["pid"]) - before
    assert status_of(answer) == 413 and b"max_body_bytes" in answer, answer[:300]
    limit = ServerLimits().max_body_bytes
    assert sent < limit + 20 * MB, sent
    assert growth < 50 * MB, growth


def test_a_huge_content_length_gets_413_at_once(server: dict[str, Any]) -> None:
    answer, _, answered = send_until_answered(server["port"], head(10_000_000_000), iter(()))
    assert status_of(answer) == 413 and b"10000000000" in answer and answered < 1.0, (answer[:200], answered)


def test_a_client_sending_its_headers_slowly_is_dropped_after_the_header_timeout(server: dict[str, Any]) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as sock:
        closed_at = None
        for byte in head(10):
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - started
                break
            readable, _, _ = select.select([sock], [], [], 0.3)
            if readable and sock.recv(1) == b"":
                closed_at = time.monotonic() - started
                break
    assert closed_at is not None and 0.9 <= closed_at < 2.5, closed_at  # 1 s header timeout


def test_a_client_sending_its_body_slowly_gets_408_after_the_body_timeout(server: dict[str, Any]) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as sock:
        sock.sendall(head(1000) + b'{"query": [')
        answer = b""
        while chunk := sock.recv(65536):  # the server answers, then closes the connection
            answer += chunk
    elapsed = time.monotonic() - started
    assert status_of(answer) == 408 and b"body_timeout" in answer, answer[:300]
    assert 0.9 <= elapsed < 2.5, elapsed


def test_too_many_queries_get_413(server: dict[str, Any]) -> None:
    body = {key: values * 65 for key, values in VALID.items()}
    status, out = post(server["url"], body)
    assert status == 413 and "max_batch" in out["detail"] and "got 65" in out["detail"]
    assert post(server["url"], {key: values * 64 for key, values in VALID.items()})[0] == 200


def test_a_bad_content_length_gets_400(server: dict[str, Any]) -> None:
    answer, _, _ = send_until_answered(server["port"], head("12abc"), iter(()))  # type: ignore[arg-type]
    assert status_of(answer) in (400, 413), answer[:200]  # uvicorn's parser or the guard refuses it


def test_the_server_still_serves_after_every_hostile_client(server: dict[str, Any]) -> None:
    status, out = post(server["url"], VALID)
    assert status == 200 and len(out["rewards"]) == 1


def test_limits_from_the_environment_are_checked() -> None:
    assert ServerLimits.from_env({"ALR_MAX_BODY_BYTES": "1024", "ALR_AUTH_TOKEN": "t"}) == ServerLimits(
        max_body_bytes=1024, auth_token="t"
    )
    with pytest.raises(ValueError, match="ALR_MAX_BATCH: expected an integer, got '1e3'"):
        ServerLimits.from_env({"ALR_MAX_BATCH": "1e3"})
    with pytest.raises(ValueError, match="header_timeout: expected a number of seconds > 0, got 0.0"):
        ServerLimits.from_env({"ALR_HEADER_TIMEOUT": "0"})
    with pytest.raises(ValueError, match="max_body_bytes: expected an int >= 1, got True"):
        ServerLimits(max_body_bytes=True)  # type: ignore[arg-type]
