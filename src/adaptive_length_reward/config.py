"""Frozen, serialisable configuration for every component.

Every component (reward, length counter, budget policy, schedule, context provider) has one frozen pydantic
model with ``extra="forbid"`` and a literal ``kind``. A whole shaped reward is therefore a nested dict that can
come from YAML or JSON and be dumped back identically::

    >>> from adaptive_length_reward import build, SoftLengthPenalty
    >>> reward = build({"kind": "soft_length_penalty", "beta": 0.004})
    >>> reward.to_config().model_dump()["beta"]
    0.004
    >>> build(reward.to_config().model_dump()).to_config() == reward.to_config()
    True

Components register their config model with :func:`register`, so modules (and third-party code) add kinds
without editing a central union. Nested component fields use :data:`Nested`, which resolves a dict by its
``kind`` through the registry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, SerializeAsAny, ValidationError

from .errors import ConfigError

__all__ = [
    "ComponentConfig",
    "Configurable",
    "Nested",
    "build",
    "load_config",
    "register",
    "registered_kinds",
]

_REGISTRY: dict[str, tuple[type[ComponentConfig], type[Configurable[Any]]]] = {}


class ComponentConfig(BaseModel):
    """Base of every component's configuration: frozen, no unknown fields, a literal ``kind``."""

    # inf is a meaningful value (no limit); JSON writes it as Infinity, which json.loads reads back.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    kind: str

    def build(self) -> Any:
        """Instantiate the component this configuration describes."""
        return build(self)


def config_of(component: Configurable[Any]) -> ComponentConfig:
    """``component.to_config()``, or an :class:`OpaqueConfig` naming its type when it has no config
    (a user's own reward still composes; only rebuilding it from the dumped config fails)."""
    try:
        config: ComponentConfig = component.to_config()
    except NotImplementedError:
        return OpaqueConfig(type=f"{type(component).__module__}.{type(component).__qualname__}")
    return config


def class_name(obj: object) -> str:
    """``type(obj).__name__`` (rewards shadow ``__name__`` on instances with their configured name)."""
    return type(obj).__name__


def _parse_nested(value: Any) -> Any:
    """Resolve a nested component: a config instance stays, a mapping is validated by its ``kind``."""
    if value is None or isinstance(value, ComponentConfig):
        return value
    if isinstance(value, Configurable):
        return config_of(value)
    if isinstance(value, Mapping):
        return parse_config(value)
    raise ValueError(f"expected a component config (a mapping with a 'kind'), got {type(value).__name__}")


Nested = Annotated[SerializeAsAny[ComponentConfig], BeforeValidator(_parse_nested)]
"""Type of a nested component field: accepts a config, a component, or a mapping with a ``kind``."""

C = TypeVar("C", bound=ComponentConfig)
T = TypeVar("T", bound="Configurable[Any]")


def register(kind: str, config: type[ComponentConfig]) -> Callable[[type[T]], type[T]]:
    """Class decorator: bind a component class to its config model under ``kind``."""

    def decorator(cls: type[T]) -> type[T]:
        if kind in _REGISTRY and _REGISTRY[kind][1].__qualname__ != cls.__qualname__:
            raise ValueError(f"component kind {kind!r} is already registered to {_REGISTRY[kind][1]!r}")
        field = config.model_fields.get("kind")
        if field is None or field.default != kind:
            raise TypeError(f"{config.__name__}.kind must default to {kind!r}")
        _REGISTRY[kind] = (config, cls)
        cls.config_class = config
        cls.kind = kind
        return cls

    return decorator


def registered_kinds() -> list[str]:
    """All registered component kinds, sorted."""
    return sorted(_REGISTRY)


def parse_config(data: Mapping[str, Any] | ComponentConfig) -> ComponentConfig:
    """Validate a mapping into the config model its ``kind`` names."""
    if isinstance(data, ComponentConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: expected a mapping with a 'kind', got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in _REGISTRY:
        raise ConfigError(f"config: kind: expected one of {registered_kinds()}, got {kind!r}")
    model, component = _REGISTRY[kind]
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(format_validation_error(component.__name__, error)) from None


def build(data: Mapping[str, Any] | ComponentConfig) -> Any:
    """Build a component (reward, budget, counter, schedule...) from its config or a plain mapping."""
    config = parse_config(data)
    cls = _REGISTRY[config.kind][1]
    return cls.from_config(config)


def load_config(path: str | Path) -> Any:
    """Build a component from a ``.json``, ``.yaml`` or ``.yml`` file (YAML needs ``pyyaml``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        from .errors import import_optional

        yaml = import_optional("yaml", extra="dev", purpose="Loading a YAML config")
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return build(data)


def format_validation_error(owner: str, error: ValidationError) -> str:
    """Render a pydantic error as ``Owner: field: expected ..., got value`` lines."""
    lines = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if message.startswith("Value error, "):  # our own validators already say field, expected and got
            message = message[len("Value error, ") :]
            lines.append(f"{owner}: {message}" if not loc else f"{owner}: {loc}: {message}")
            continue
        expected = message[0].lower() + message[1:] if message else "a valid value"
        expected = expected.removeprefix("input should be ")
        for words, symbol in _COMPARISONS:
            expected = expected.replace(words, symbol)
        if item["type"] == "missing":
            lines.append(f"{owner}: {loc}: expected a value, got nothing (the field is required)")
        elif item["type"] == "extra_forbidden":
            lines.append(
                f"{owner}: {loc}: unknown field (expected one of the documented fields), got {item.get('input')!r}"
            )
        else:
            lines.append(f"{owner}: {loc or '(config)'}: expected {expected}, got {item.get('input')!r}")
    return "\n".join(lines)


_COMPARISONS = (
    ("greater than or equal to ", ">= "),
    ("less than or equal to ", "<= "),
    ("greater than ", "> "),
    ("less than ", "< "),
)


class Configurable(Generic[C]):
    """Mixin for components that round-trip through a :class:`ComponentConfig`.

    Subclasses are decorated with :func:`register`, implement :meth:`to_config` and, unless their
    constructor takes exactly the config's scalar fields, :meth:`from_config`.
    """

    config_class: ClassVar[type[ComponentConfig]]
    kind: ClassVar[str]

    def to_config(self) -> C:
        """This component's configuration; components without one cannot be rebuilt from a config."""
        raise NotImplementedError(f"{type(self).__name__} has no config; implement to_config() and register it")

    @classmethod
    def from_config(cls: type[T], config: Any) -> T:
        values = {name: getattr(config, name) for name in type(config).model_fields if name != "kind"}
        return cls(**values)

    def __repr__(self) -> str:
        config = config_of(self)
        if isinstance(config, OpaqueConfig):
            return object.__repr__(self)
        fields = ", ".join(f"{name}={getattr(config, name)!r}" for name in type(config).model_fields if name != "kind")
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = config_of(self), config_of(other)
        if isinstance(mine, OpaqueConfig):
            return self is other
        return bool(mine == theirs)

    def __hash__(self) -> int:
        config = config_of(self)
        if isinstance(config, OpaqueConfig):
            return id(self)
        return hash((type(self).__name__, config.model_dump_json()))


def validated(owner: str, model: type[C], /, **values: Any) -> C:
    """Validate constructor arguments with ``model``; raise :class:`ConfigError` with field, expected, got."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(owner, error)) from None


def finite_or_inf(value: float | None) -> float:
    """``None`` means "no limit": map it to ``inf``."""
    return math.inf if value is None else float(value)


class OpaqueConfig(ComponentConfig):
    """Stands in for a component that has no config (e.g. a user's own reward class) inside a composite's
    config: the composite still dumps, but building it back raises, naming the type."""

    kind: Literal["opaque"] = "opaque"
    type: str


@register("opaque", OpaqueConfig)
class _Opaque(Configurable[OpaqueConfig]):
    @classmethod
    def from_config(cls, config: Any) -> Any:
        raise ConfigError(
            f"config: cannot build {config.type} from a config: it has none (implement to_config() and "
            "register it with adaptive_length_reward.config.register)"
        )
