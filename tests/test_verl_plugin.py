"""The ``verl.plugins`` entry point against verl 0.9.1: ``import verl`` loads neither the adapter nor the library,
the names are registered when verl imports its registries (either import order, both registries, the agent loops),
and a failing adapter import is a visible warning plus a stand-in that raises it (never "Unknown reward manager").

Each case runs in a fresh interpreter. The entry point is the installed package's (the verl venv installs this
checkout, ``make test-verl``); the time and memory it costs: benchmarks/verl_import.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("verl", reason="the verl plugin needs verl: make test-verl (docs/verl.md, 'Install')")

pytestmark = pytest.mark.slow
PLUGIN = "adaptive_length_reward_verl_plugin"


def _python(code: str, **env: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last, returned with ``stderr``."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environ, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "stderr": run.stderr}


def test_the_entry_point_is_installed_and_stdlib_only() -> None:
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="verl.plugins")}
    assert points.get("adaptive_length_reward") == PLUGIN, points
    out = _python(f"""
        import json, sys
        before = set(sys.modules)
        import {PLUGIN}
        new = {{m.split(".")[0] for m in set(sys.modules) - before}} - {{"{PLUGIN}"}}
        print(json.dumps({{"not_stdlib": sorted(new - set(sys.stdlib_module_names)), "new": len(new)}}))
    """)
    assert out["not_stdlib"] == [] and out["new"], out


def test_import_verl_registers_lazily_in_both_registries_and_the_agent_loops() -> None:
    out = _python("""
        import json, sys
        import verl
        lazy = {name: name in sys.modules for name in
                ("adaptive_length_reward", "adaptive_length_reward.adapters.verl", "pydantic")}
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.workers.reward_manager import get_reward_manager_cls as legacy
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
        print(json.dumps({"lazy": lazy,
            "reward_loop": [get_reward_manager_cls(n).__name__ for n in
                            ("adaptive_length", "adaptive_length_rate_limited")],
            "legacy": legacy("adaptive_length").__name__,
            "agent_loops": {k: v["_target_"] for k, v in _agent_loop_registry.items() if k.startswith("adaptive")}}))
    """)
    assert out["lazy"] == {
        "adaptive_length_reward": False,
        "adaptive_length_reward.adapters.verl": False,
        "pydantic": False,
    }
    assert out["reward_loop"] == ["AdaptiveLengthRewardManager", "AdaptiveLengthRateLimitedRewardManager"]
    assert out["legacy"] == "AdaptiveLengthLegacyRewardManager"
    assert out["agent_loops"] == {
        "adaptive_length_single_turn": "adaptive_length_reward.adapters.verl_agent_loop.UncertaintySingleTurnAgentLoop",
        "adaptive_length_margin": "adaptive_length_reward.adapters.verl_agent_loop.MarginSingleTurnAgentLoop",
    }
    assert "adaptive-length-reward" not in str(out["stderr"])  # no warning of ours (verl's own may appear)


@pytest.mark.parametrize(
    "first",
    [
        "verl.workers.reward_manager",
        "verl.experimental.reward_loop.reward_manager",
        "verl.trainer.ppo.reward",
        "adaptive_length_reward.adapters.verl",
    ],
)
def test_registration_holds_whichever_module_is_imported_first(first: str) -> None:
    """verl's two registries import each other; the hook must register once both are complete, whichever verl (or
    the user) imports first."""
    out = _python(f"""
        import json
        import verl
        import {first}
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.workers.reward_manager import get_reward_manager_cls as legacy
        print(json.dumps({{"names": [get_reward_manager_cls("adaptive_length").__name__,
                                     legacy("adaptive_length").__name__]}}))
    """)
    assert out["names"] == ["AdaptiveLengthRewardManager", "AdaptiveLengthLegacyRewardManager"]
    assert "could not register" not in str(out["stderr"])


def test_a_failing_adapter_import_is_a_warning_and_a_stand_in_that_raises_it() -> None:
    out = _python("""
        import json, sys
        sys.modules["adaptive_length_reward.adapters.verl"] = None  # as if the adapter's import failed
        import verl
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.workers.reward_manager import get_reward_manager_cls as legacy
        stand_in = get_reward_manager_cls("adaptive_length")
        try:
            stand_in(config=None, tokenizer=None, compute_score=None)
        except ImportError as error:
            raised = str(error)
        print(json.dumps({"raised": raised, "legacy": legacy("adaptive_length").__name__}))
    """)
    stderr = str(out["stderr"])
    assert "WARNING" in stderr and "could not register verl reward managers" in stderr, stderr[-2000:]
    assert "'adaptive_length' (adaptive-length-reward) is registered but its module" in str(out["raised"])
    assert "failed to import" in str(out["raised"]) and out["legacy"] == "UnavailableAdaptiveLengthRewardManager"


def test_verl_use_external_modules_without_the_entry_point() -> None:
    """``VERL_USE_EXTERNAL_MODULES=adaptive_length_reward_verl_plugin`` with entry points off (docs/verl.md)."""
    out = _python(
        """
        import json, sys
        import verl
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        print(json.dumps({"cls": get_reward_manager_cls("adaptive_length").__name__}))
    """,
        VERL_USE_EXTERNAL_PLUGINS="none",
        VERL_USE_EXTERNAL_MODULES=PLUGIN,
    )
    assert out["cls"] == "AdaptiveLengthRewardManager"
