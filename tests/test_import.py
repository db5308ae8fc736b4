"""`import adaptive_length_reward` is cheap and loads neither torch nor any RL framework."""

from __future__ import annotations

import re
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "verl", "openrlhf", "datasets", "ray", "accelerate", "vllm", "PIL")


def _cumulative_import_seconds() -> float:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import adaptive_length_reward"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(l for l in result.stderr.splitlines() if re.search(r"\|\s+adaptive_length_reward$", l))
    return int(line.split("|")[1]) / 1e6


def test_import_time_under_half_a_second() -> None:
    # Best of three runs in fresh interpreters: the requirement is about the code, not a busy CI neighbour.
    best = min(_cumulative_import_seconds() for _ in range(3))
    assert best < 0.5, f"import adaptive_length_reward took {best:.3f} s cumulative"


def test_no_heavy_modules_after_import() -> None:
    code = f"import sys, adaptive_length_reward; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"heavy modules imported by `import adaptive_length_reward`: {loaded}"


def test_public_api_is_literal_and_complete() -> None:
    import adaptive_length_reward as alr

    assert len(alr.__all__) == len(set(alr.__all__))
    for name in alr.__all__:
        assert hasattr(alr, name), name
    from adaptive_length_reward import SoftLengthPenalty  # noqa: F401  (the import users write)
