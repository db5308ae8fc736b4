"""verl plugin of adaptive-length-reward: registers the verl adapter's names without importing it.

verl imports every ``verl.plugins`` entry point at ``import verl`` (``verl/__init__.py``), in the driver and in every
Ray worker. Importing the adapter there cost +2-3 s and +158 MB per process; this module imports nothing but the
standard library. It puts an import hook on ``sys.meta_path``: when verl itself finishes importing one of the modules
in :data:`HOOKS` (its reward-manager registries, its agent-loop module), the hook registers the adapter there:

* reward managers ``adaptive_length`` and ``adaptive_length_rate_limited`` in the reward-loop registry
  (``verl.experimental.reward_loop.reward_manager.get_reward_manager_cls``) and ``adaptive_length`` in the legacy one
  (``verl.workers.reward_manager.get_reward_manager_cls``) with ``adaptive_length_batch`` (group rewards), importing
  ``adaptive_length_reward.adapters.verl``;
* agent loops ``adaptive_length_single_turn`` and ``adaptive_length_margin`` in verl's agent-loop registry, which
  holds only their import paths (imported when verl instantiates one).

It lives outside the ``adaptive_length_reward`` package so that ``import verl`` does not load the library (pydantic
and the components). verl logs a failing plugin at debug level only; failures here are logged as warnings on the
logger ``adaptive_length_reward.verl_plugin``, and the reward managers' names then resolve to a stand-in that raises
the original error when verl instantiates it (never "Unknown reward manager"). docs/verl.md, "Plugin".
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["AGENT_LOOPS", "HOOKS", "LEGACY_REWARD_MANAGERS", "REWARD_MANAGERS", "install"]

logger = logging.getLogger("adaptive_length_reward.verl_plugin")

ADAPTER = "adaptive_length_reward.adapters.verl"
REWARD_LOOP_PACKAGE = "verl.experimental.reward_loop.reward_manager"
LEGACY_PACKAGE = "verl.workers.reward_manager"
AGENT_LOOP_MODULE = "verl.experimental.agent_loop.agent_loop"
#: verl registry names -> the adapter's classes (``adaptive_length_reward.adapters.verl``).
REWARD_MANAGERS = {
    "adaptive_length": "AdaptiveLengthRewardManager",
    "adaptive_length_rate_limited": "AdaptiveLengthRateLimitedRewardManager",
}
LEGACY_REWARD_MANAGERS = {
    "adaptive_length": "AdaptiveLengthLegacyRewardManager",
    "adaptive_length_batch": "AdaptiveLengthBatchRewardManager",
}
#: verl agent-loop names -> import paths (verl's registry stores ``{"_target_": path}`` and imports on use).
AGENT_LOOPS = {
    "adaptive_length_single_turn": "adaptive_length_reward.adapters.verl_agent_loop.UncertaintySingleTurnAgentLoop",
    "adaptive_length_margin": "adaptive_length_reward.adapters.verl_agent_loop.MarginSingleTurnAgentLoop",
}


def _unavailable(name: str, error: BaseException) -> type:
    """A registry stand-in that raises ``error``'s story when verl instantiates the manager ``name``."""
    message = (
        f"verl reward manager {name!r} (adaptive-length-reward) is registered but its module {ADAPTER!r} "
        f"failed to import: {type(error).__name__}: {error}"
    )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise ImportError(message) from error

    return type("UnavailableAdaptiveLengthRewardManager", (), {"__init__": __init__, "error": message})


def _initializing(name: str) -> bool:
    """Whether the module ``name`` is being imported right now (in ``sys.modules``, its code still running)."""
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def register_reward_managers(module: ModuleType | None = None) -> None:
    """Register the reward managers in both of verl's registries (idempotent; a failure is logged as a warning and
    registers stand-ins that raise it).

    Skipped while the reward-loop registry package or the adapter is still importing (verl's two registries import
    each other): the reward-loop package's own hook, or the adapter's last line, registers then."""
    # ``module`` is the one whose hook calls: it has finished, though importlib marks it initializing until we return
    just_loaded = getattr(module, "__name__", None)
    if _initializing(ADAPTER) or (just_loaded != REWARD_LOOP_PACKAGE and _initializing(REWARD_LOOP_PACKAGE)):
        return
    try:
        import importlib

        importlib.import_module(ADAPTER).register_reward_managers()
    except Exception as error:
        logger.warning(
            "adaptive-length-reward: could not register verl reward managers %s: %s: %s",
            sorted(REWARD_MANAGERS),
            type(error).__name__,
            error,
            exc_info=True,
        )
        try:
            from verl.experimental.reward_loop.reward_manager import registry
            from verl.workers.reward_manager import registry as legacy

            for name in REWARD_MANAGERS:
                registry.REWARD_MANAGER.setdefault(name, _unavailable(name, error))
            for name in LEGACY_REWARD_MANAGERS:
                legacy.REWARD_MANAGER_REGISTRY.setdefault(name, _unavailable(name, error))
        except Exception:  # verl's registries themselves are broken: verl reports that
            logger.warning("adaptive-length-reward: verl's reward-manager registries are not importable", exc_info=True)


def register_agent_loops(module: ModuleType | None = None) -> None:
    """Add the agent loops' import paths to verl's agent-loop registry (``agent_loop.py::_agent_loop_registry``)."""
    try:
        if module is None:
            import importlib

            module = importlib.import_module(AGENT_LOOP_MODULE)
        registry = module._agent_loop_registry
        for name, target in AGENT_LOOPS.items():
            registry.setdefault(name, {"_target_": target})
    except Exception as error:
        logger.warning(
            "adaptive-length-reward: could not register verl agent loops %s: %s: %s",
            sorted(AGENT_LOOPS),
            type(error).__name__,
            error,
            exc_info=True,
        )


#: module verl imports -> what to do once it has finished importing.
HOOKS: dict[str, Callable[[ModuleType], None]] = {
    REWARD_LOOP_PACKAGE: register_reward_managers,
    LEGACY_PACKAGE: register_reward_managers,
    AGENT_LOOP_MODULE: register_agent_loops,
}


class _ThenCall(importlib.abc.Loader):
    """Wraps a module's loader: executes the module, then calls ``after(module)``."""

    def __init__(self, loader: Any, after: Callable[[ModuleType], None]) -> None:
        self._loader, self._after = loader, after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules of ``hooks`` with the other finders and wraps their loaders (once each)."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = dict(hooks)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        after = self.hooks.get(fullname)
        if after is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    del self.hooks[fullname]
                    spec.loader = _ThenCall(spec.loader, after)
                return spec  # type: ignore[no-any-return]
        return None


def install() -> None:
    """Register now where verl has already imported a registry, else when it does (idempotent)."""
    pending = {}
    for name, after in HOOKS.items():
        module = sys.modules.get(name)
        if module is not None and not _initializing(name):
            after(module)
        else:
            pending[name] = after
    if pending and not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(pending))


try:
    install()
except Exception as _error:  # never let verl swallow a failure at debug level
    logger.warning(
        "adaptive-length-reward: the verl plugin could not install its import hook: %s", _error, exc_info=True
    )
