"""``pip check`` of a framework's test venv, clean apart from the listed GPU-only requirements.

Usage: ``VENV/bin/python tests/frameworks/pip_check.py --allow flash-attn deepspeed [--output FILE]``. Prints pip's
report, writes it to ``--output``, and exits 1 when any line is about something else than an allowed package being
absent (``X requires flash-attn, which is not installed.``): a version conflict or another missing package fails.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

MISSING = re.compile(r"^(?P<owner>\S+) \S+ requires (?P<package>[A-Za-z0-9_.\-]+), which is not installed\.$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unexpected(report: str, allowed: set[str]) -> list[str]:
    """Lines of a ``pip check`` report other than "requires <allowed>, which is not installed"."""
    bad = []
    for line in report.splitlines():
        match = MISSING.match(line.strip())
        if (
            line.strip()
            and line.strip() != "No broken requirements found."
            and not (match and _normal(match["package"]) in allowed)
        ):
            bad.append(line)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow", nargs="*", default=[], help="GPU-only packages that may be missing")
    parser.add_argument("--output", type=Path, help="write pip's report here too")
    args = parser.parse_args(argv)
    run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    report = (run.stdout + run.stderr).strip()
    allowed = {_normal(name) for name in args.allow}
    bad = unexpected(report, allowed)
    text = f"$ {Path(sys.executable).parent.parent.name}/bin/python -m pip check\n{report}\n"
    print(text, end="")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    if bad:
        print(
            f"pip check: {len(bad)} problem(s) besides the GPU-only packages {sorted(allowed)}:",
            *bad,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    print(f"pip check: clean apart from the GPU-only packages {sorted(allowed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
