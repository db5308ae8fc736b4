"""Install a framework's test venv honouring the framework's own pins (run with the venv's python).

``install.py docs PAGE`` runs the ``pip install`` lines of PAGE's block whose mark names this script, as written,
with two substitutions a checkout needs: ``adaptive-length-reward[...]`` becomes this checkout (``-e ROOT[...]``),
and a bare ``torch`` becomes ``--torch`` (on the project's machines torch==2.13.0, a local CPU wheel; the page's
``--index-url`` of PyTorch's CPU builds is not reachable from CI).

``install.py without REQ --gpu-only NAME...`` installs REQ (e.g. ``openrlhf==0.11.2``) without resolving, then
every requirement of its metadata except the GPU-only ones, in one resolution with this checkout (``--extras``), so
the framework's pins hold; ``pip check`` then lists only the GPU-only packages (tests/frameworks/pip_check.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- [^>\n]*tests/frameworks/install\.py[^>\n]*-->\n```(?:bash|sh)\n(.*?)```", re.S)


def install_lines(page: str) -> list[list[str]]:
    """The arguments after ``pip install`` of each command of the page's install block."""
    match = BLOCK.search(page)
    if match is None:
        raise SystemExit("no ```bash block marked with a comment naming tests/frameworks/install.py")
    commands = []
    for line in match.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] != ["pip", "install"]:
            raise SystemExit(f"install block: expected only 'pip install' commands, got {line!r}")
        commands.append(words[2:])
    return commands


def localised(args: list[str], torch: str) -> list[str]:
    """``args`` with this checkout for the package and ``torch`` for a bare torch requirement."""
    out = []
    for arg in args:
        if arg.startswith("adaptive-length-reward"):
            out += ["-e", f"{ROOT}{arg[len('adaptive-length-reward') :]}"]
        elif arg == "torch":
            out.append(torch)
        else:
            out.append(arg)
    return out


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    print("+ pip install", shlex.join(args), flush=True)
    subprocess.run(command, check=True)


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    docs = sub.add_parser("docs")
    docs.add_argument("page", type=Path)
    without = sub.add_parser("without")
    without.add_argument("requirement")
    without.add_argument("--gpu-only", nargs="*", default=[])
    for p in (docs, without):
        p.add_argument("--torch", default="torch==2.13.0")
        p.add_argument("--extras", default="", help="also install this checkout with these extras (e.g. 'dev')")
    args = parser.parse_args(argv)
    pip(args.torch)  # first: a framework's torch requirement must not pull a CUDA build
    if args.mode == "docs":
        for command in install_lines(args.page.read_text(encoding="utf-8")):
            pip(*localised(command, args.torch))
        if args.extras:
            pip("-e", f"{ROOT}[{args.extras}]")
        return 0
    pip("--no-deps", args.requirement)
    skip = {_name(name) for name in args.gpu_only}
    requires = importlib.metadata.requires(_name(args.requirement)) or []
    keep = [r for r in requires if "extra ==" not in r and _name(r) not in skip]
    pip(args.torch, *keep, *(["-e", f"{ROOT}[{args.extras}]"] if args.extras else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
