"""Components and their configuration: each parameter declared once ([`Component`][], [`param`][]).

Every component (reward, length counter, budget policy, schedule, context provider) is described by a frozen
pydantic config with ``extra="forbid"`` and a literal ``kind``, derived from its declaration, so a whole shaped
reward is a nested dict that comes from YAML or JSON and dumps back identically::

    >>> from adaptive_length_reward import build, SoftLengthPenalty
    >>> reward = build({"kind": "soft_length_penalty", "beta": 0.004})
    >>> reward.to_config().model_dump()["beta"]
    0.004
    >>> build(reward.to_config().model_dump()).to_config() == reward.to_config()
    True

Kinds live in a registry (a class statement's ``kind=``, or [`register`][] for third-party classes), and nested
component fields use [`Nested`][], which resolves a dict by its ``kind``. See docs/concepts.md, "Configuration".
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import json
import logging
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SerializeAsAny,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic import Field as PydanticField
from pydantic_core import PydanticSerializationError
from typing_extensions import dataclass_transform

from .errors import ConfigError

__all__ = [
    "Component",
    "ComponentConfig",
    "Configurable",
    "Nested",
    "build",
    "load_config",
    "param",
    "parameters",
    "register",
    "registered_kinds",
]

# kind -> (config model, class); the model is None for a Component until its declaration is first resolved.
_REGISTRY: dict[str, tuple[type[ComponentConfig] | None, type[Configurable[Any]]]] = {}


class ComponentConfig(BaseModel):
    """Base of every component's configuration: frozen, no unknown fields, a literal ``kind``."""

    # inf is a meaningful value (no limit); JSON writes it as Infinity, which json.loads reads back.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    kind: str

    def build(self) -> Any:
        """Instantiate the component this configuration describes."""
        return build(self)


def config_of(component: Configurable[Any]) -> ComponentConfig:
    """``component.to_config()``, or an ``OpaqueConfig`` naming its type when it has no config
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


logger = logging.getLogger(__name__)

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
        logger.debug("registered component kind %r: %s.%s", kind, cls.__module__, cls.__qualname__)
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
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ConfigError(f"config: kind: expected one of {registered_kinds()}, got {kind!r}")
    model, component = _REGISTRY[kind]
    if model is None:
        model = component.config_model()  # type: ignore[attr-defined]
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(format_validation_error(component.__name__, error)) from None


def build(data: Mapping[str, Any] | ComponentConfig) -> Any:
    """Build a component (reward, budget, counter, schedule...) from its config or a plain mapping.

    Args:
        data: a component config, or a mapping with a registered ``kind`` and the component's parameters (nested
            components as mappings of their own).

    Returns:
        The component.

    Raises:
        ConfigError: an unknown ``kind``, an unknown field, or a value that fails validation (naming the field,
            what was expected and what was given).
    """
    config = parse_config(data)
    cls = _REGISTRY[config.kind][1]
    return cls.from_config(config)


def load_config(path: str | Path) -> Any:
    """Build a component from a ``.json``, ``.yaml`` or ``.yml`` file (YAML needs ``pyyaml``).

    Args:
        path: the config file; ``.yaml``/``.yml`` is read as YAML, anything else as JSON.

    Returns:
        The component ([`build`][] of the file's mapping).

    Raises:
        ConfigError: the file's config is invalid (see [`build`][]).
        MissingExtraError: a YAML file without ``pyyaml`` installed.
        OSError: the file cannot be read.
        ValueError: a JSON file that is not valid JSON (``json.JSONDecodeError``).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        from .errors import import_optional

        yaml = import_optional("yaml", extra=None, package="pyyaml", purpose="Loading a YAML config (or use JSON)")
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return build(data)


def format_validation_error(owner: str, error: ValidationError) -> str:
    """Render a pydantic error as ``Owner: field: expected ..., got value`` lines."""
    lines = []
    items = error.errors(include_url=False)
    for item in items:
        loc = ".".join(str(part) for part in item["loc"])
        if item["type"] == "too_short" and any(
            len(other["loc"]) > len(item["loc"]) and other["loc"][: len(item["loc"])] == item["loc"] for other in items
        ):
            continue  # pydantic also counts the entries that failed as missing: their own errors say it all
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
    """Mixin for components that round-trip through a [`ComponentConfig`][].

    Library components subclass [`Component`][] and declare their parameters once; a third-party class
    may instead be decorated with [`register`][] and implement [`to_config`][] (and ``from_config``
    unless its constructor takes exactly the config's fields).

    Equality and hashing follow the configuration plus ``_identity_extras`` (what changes a score but is not
    in the config, e.g. an in-memory tokenizer), so two components compare equal exactly when they score alike.
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

    def _identity_extras(self) -> tuple[Any, ...]:
        """Objects outside the config that change what the component computes (compared by identity)."""
        return ()

    def __repr__(self) -> str:
        config = config_of(self)
        if isinstance(config, OpaqueConfig):
            return object.__repr__(self)
        fields = ", ".join(f"{name}={getattr(config, name)!r}" for name in type(config).model_fields if name != "kind")
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine = config_of(self)
        if isinstance(mine, OpaqueConfig):
            return self is other
        extras = zip(self._identity_extras(), other._identity_extras())
        return bool(mine == config_of(other)) and all(a is b for a, b in extras)

    def __hash__(self) -> int:
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            config = config_of(self)
            if isinstance(config, OpaqueConfig):
                return id(self)
            extras = tuple(id(x) for x in self._identity_extras())
            try:
                text = config.model_dump_json()
            except PydanticSerializationError:  # a parameter holds an arbitrary object: its repr stands in
                text = repr(config)
            cached = hash((type(self).__name__, text, extras))
            self.__dict__["_hash"] = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hash", None)  # ids in the hash do not survive pickling
        return state


# -- Declared components: each parameter written once -----------------------------------------------------------------


class _Missing:
    """The "no default" marker of [`param`][] (a required parameter)."""

    def __repr__(self) -> str:
        return "<required>"


_MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter (see [`param`][])."""

    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None
    doc: str = ""
    kw_only: bool = True
    alias: str | None = None
    constraints: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def param(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    doc: str = "",
    kw_only: bool = True,
    alias: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a component parameter: its default, bounds (pydantic ``Field`` keywords such as ``gt``, ``ge``,
    ``min_length``; numbers are finite unless ``allow_inf_nan=True``) and a one-line doc. Pass ``default=`` by
    keyword: type checkers read it from there (PEP 681).

    From the class annotations and these declarations [`Component`][] derives the typed constructor, its
    validation, ``to_config``/``build``, equality, ``repr`` and the API docs ([`parameters`][]).
    """
    return Param(default, default_factory, doc, kw_only, alias, constraints)


@dataclasses.dataclass(frozen=True)
class Field_:
    """A resolved parameter: name, config key, Python type, declaration."""

    name: str
    key: str
    hint: Any
    spec: Param
    components: tuple[type, ...]  # component classes the value may hold (empty for plain values)

    @property
    def required(self) -> bool:
        return self.spec.default is _MISSING and self.spec.default_factory is None

    @property
    def defaults_for_none(self) -> bool:
        """``None`` given for a component parameter that cannot hold it means "the default" (as it always has)."""
        return bool(self.components) and not self.required and type(None) not in typing.get_args(self.hint)

    def default(self) -> Any:
        return self.spec.default_factory() if self.spec.default_factory is not None else self.spec.default

    def signature_default(self) -> Any:
        """The default as a signature shows it: the value, or a factory's call as text."""
        return _Shown(self.default_text()) if isinstance(self.spec.default_factory, type) else self.default()

    def default_text(self) -> str:
        """How the default reads in a signature: ``TieredBudget()`` rather than every field of it."""
        factory = self.spec.default_factory
        return f"{factory.__name__}()" if isinstance(factory, type) else repr(self.default())


def _component_classes(hint: Any) -> tuple[type, ...]:
    """Every [`Configurable`][] subclass that appears in a type hint."""
    if isinstance(hint, type) and issubclass(hint, Configurable):
        return (hint,)
    return tuple(c for arg in typing.get_args(hint) for c in _component_classes(arg))


def _strict_number(value: Any) -> Any:
    """Numbers only for a ``float``/``int`` parameter: pydantic's lax mode would read ``True`` as 1 and ``"0.5"``
    as 0.5; a bool or a string in a number's place is a mistake in the config, so it is refused."""
    if isinstance(value, (str, bytes)) or type(value).__name__ in ("bool", "bool_"):  # numpy's bool too
        raise ValueError(f"expected a number, got {value!r} (a {type(value).__name__})")
    return value


_NUMBER_TYPES: dict[Any, Any] = {
    float: Annotated[float, BeforeValidator(_strict_number)],
    int: Annotated[int, BeforeValidator(_strict_number)],
}


def _config_type(hint: Any) -> Any:
    """The config field type of a parameter type: components become [`Nested`][], sequences tuples, numbers
    refuse bools and strings."""
    if isinstance(hint, type) and issubclass(hint, Configurable):
        return Nested
    if hint in _NUMBER_TYPES:
        return _NUMBER_TYPES[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return Union[tuple(_config_type(a) for a in args)]  # noqa: UP007 - built from a tuple
    if origin in (tuple, list, collections.abc.Sequence) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple[tuple(_config_type(a) for a in args)]  # type: ignore[misc]
        return tuple[_config_type(args[0]), ...]  # type: ignore[misc]
    return hint


@dataclass_transform(kw_only_default=True, field_specifiers=(param, Param))
class Component(Configurable[ComponentConfig]):
    """Base of every library component: a class whose annotated attributes *are* its configuration.

    A subclass lists its parameters as annotated class attributes with defaults (plain values or
    [`param`][] declarations) and names its ``kind`` in the class statement::

        class FixedBudget(BudgetPolicy, kind="fixed_budget"):
            budget: float | None = param(default=None, ge=0, doc="the budget; None = no penalty")

    That one declaration gives the typed keyword constructor (positional where ``kw_only=False``), validation
    with ``Owner: field: expected ..., got ...`` errors, the frozen pydantic config (``to_config`` /
    [`build`][]), equality, hashing, ``repr`` and the parameter table of the docs. Cross-field rules go in
    ``_check`` (raise ``ValueError("field: expected ..., got ...")``); derived state in
    ``__post_init__``. Component-valued parameters keep the objects given (a tokenizer inside stays).
    """

    __fields: ClassVar[tuple[Field_, ...] | None] = None
    __signature__: ClassVar[Any]  # set below: the constructor's signature, derived from the declaration

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__fields = None
        if kind is not None:
            if kind in _REGISTRY and _REGISTRY[kind][1].__qualname__ != cls.__qualname__:
                raise ValueError(f"component kind {kind!r} is already registered to {_REGISTRY[kind][1]!r}")
            cls.kind = kind
            _REGISTRY[kind] = (None, cls)
            logger.debug("registered component kind %r: %s.%s", kind, cls.__module__, cls.__qualname__)

    # -- the declaration ------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[Field_, ...]:
        """The declared parameters, base classes' first, in declaration order."""
        if cls.__dict__.get("_Component__fields") is None:
            found: dict[str, Field_] = {}
            for klass in reversed(cls.__mro__):
                own = inspect.get_annotations(klass)
                if not own or not issubclass(klass, Component):
                    continue
                hints = typing.get_type_hints(klass)
                for name in own:
                    if typing.get_origin(hints[name]) is ClassVar or hints[name] is ClassVar:
                        continue
                    value = klass.__dict__.get(name, _MISSING)
                    spec = value if isinstance(value, Param) else Param(default=value)
                    found[name] = Field_(name, spec.alias or name, hints[name], spec, _component_classes(hints[name]))
            # Keyword parameters in declaration order, the reward's ``name`` last (as every signature reads).
            cls.__fields = tuple(sorted(found.values(), key=lambda f: f.key == "name"))
        return cls.__fields  # type: ignore[return-value]

    @classmethod
    def signature(cls) -> inspect.Signature:
        """The constructor's signature (what ``help()`` and ``inspect.signature(cls)`` show)."""
        kinds = {True: inspect.Parameter.KEYWORD_ONLY, False: inspect.Parameter.POSITIONAL_OR_KEYWORD}
        parameters = [
            inspect.Parameter(
                f.key,
                kinds[f.spec.kw_only],
                default=inspect.Parameter.empty if f.required else f.signature_default(),
                annotation=_type_name(f.hint),
            )
            for f in sorted(cls.fields(), key=lambda f: f.spec.kw_only)
        ]
        return inspect.Signature(parameters)

    @classmethod
    def config_model(cls) -> type[ComponentConfig]:
        """The frozen pydantic config model derived from the declaration (built on first use)."""
        model: type[ComponentConfig] | None = cls.__dict__.get("_config_model")
        if model is None:
            kind = cls.kind if cls._registered() else "unregistered"  # validation only; to_config refuses
            definitions: dict[str, Any] = {"kind": (Literal[kind], kind)}
            for f in cls.fields():
                constraints = dict(f.spec.constraints)
                if _numeric(f.hint):
                    constraints.setdefault("allow_inf_nan", False)
                default = ... if f.required else _config_default(f.default())
                field = PydanticField(default, description=f.spec.doc, **constraints)
                definitions[f.key] = (_config_type(f.hint), field)
            checks = [k.__dict__["_check"] for k in cls.__mro__ if "_check" in k.__dict__]

            def run_checks(config: Any) -> Any:
                for check in reversed(checks):
                    check(config)
                return config

            validators: dict[str, Any] = {"_checks": model_validator(mode="after")(run_checks)}
            model = create_model(
                f"{cls.__name__}Config",
                __base__=ComponentConfig,
                __module__=cls.__module__,
                __doc__=f"Configuration of ``{cls.__name__}``, derived from its declared parameters.",
                __validators__=validators,
                **definitions,
            )
            setattr(cls, "_config_model", model)  # noqa: B010 - a per-class cache, not a declared field
            cls.config_class = model
        return model

    @staticmethod
    def _check(config: Any) -> None:
        """Cross-field rules on the validated config; raise ``ValueError("field: expected ..., got ...")``."""

    # -- construction ---------------------------------------------------------------------------------------
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        owner = type(self).__name__
        fields = type(self).fields()
        positional = [f for f in fields if not f.spec.kw_only]
        if len(args) > len(positional):
            raise TypeError(f"{owner}() takes {len(positional)} positional arguments, got {len(args)}")
        by_key = {f.spec.alias or f.name: f for f in fields}
        values: dict[str, Any] = {}
        for f, value in zip(positional, args):
            values[f.name] = value
        for key, value in kwargs.items():
            if key not in by_key:
                raise TypeError(f"{owner}: unexpected argument {key!r} (expected one of {sorted(by_key)})")
            if by_key[key].name in values:
                raise TypeError(f"{owner}: got {key!r} twice")
            values[by_key[key].name] = value
        for f in fields:
            if f.name not in values or (values[f.name] is None and f.defaults_for_none):
                if f.required:
                    raise TypeError(f"{owner}: {f.key}: expected a value, got nothing (the argument is required)")
                values[f.name] = f.default()
            value = values[f.name]
            values[f.name] = _check_components(owner, f, value) if f.components else _json_form(value)
        self._config = validated(owner, self.config_model(), **{f.key: values[f.name] for f in fields})
        for f in fields:
            setattr(self, f.name, values[f.name] if f.components else getattr(self._config, f.key))
        self.__post_init__()

    def __post_init__(self) -> None:
        """Derived state, after validation (every parameter is an attribute by then)."""

    def _identity_extras(self) -> tuple[Any, ...]:
        """The children's: a child without a config by identity, a configured child's own extras."""
        extras: list[Any] = []
        for f in type(self).fields():
            if f.components:
                value = getattr(self, f.name)
                for child in value if isinstance(value, tuple) else (value,):
                    if isinstance(child, Configurable):
                        opaque = isinstance(config_of(child), OpaqueConfig)
                        extras.extend((child,) if opaque else child._identity_extras())
        return tuple(extras)

    @classmethod
    def _registered(cls) -> bool:
        """Whether this very class is registered under its ``kind`` (a subclass without a kind of its own is not)."""
        return _REGISTRY.get(getattr(cls, "kind", ""), (None, None))[1] is cls

    def to_config(self) -> ComponentConfig:
        if not self._registered():
            raise NotImplementedError(
                f"{type(self).__name__} has no kind; declare one: class {type(self).__name__}"
                f"(..., kind='...') to build it from a config"
            )
        return self._config

    def __getstate__(self) -> dict[str, Any]:
        # The config model is created at run time (not importable by name): pickle the values, re-derive it.
        state = super().__getstate__()
        state.pop("_config", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        fields = type(self).fields()
        self._config = validated(type(self).__name__, self.config_model(), **{f.key: state[f.name] for f in fields})

    @classmethod
    def from_config(cls: type[T], config: Any) -> T:
        values = {}
        for f in cls.fields():  # type: ignore[attr-defined]
            value = getattr(config, f.key)
            values[f.spec.alias or f.name] = _built(value) if f.components else value
        return cls(**values)


class _Shown(str):
    """A default as its text in a signature (``repr`` is the text itself)."""

    def __repr__(self) -> str:
        return str(self)


class _Signature:
    """``Component.__signature__``: the declared constructor on the class, nothing on instances (their
    ``__call__`` has its own signature)."""

    def __get__(self, instance: Any, owner: type[Component]) -> inspect.Signature | None:
        return owner.signature() if instance is None else None


Component.__signature__ = _Signature()


def _numeric(hint: Any) -> bool:
    """A number (or an optional one): such parameters are finite unless declared ``allow_inf_nan=True``."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    return any(a in (float, int) for a in args) and all(a in (float, int, type(None)) for a in args)


def _json_form(value: Any) -> Any:
    """A plain value in the form a JSON config keeps it (paths and mapping keys as text), so that a config read back
    from JSON equals the original."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value


def _config_default(value: Any) -> Any:
    if isinstance(value, Configurable):
        return config_of(value)
    if isinstance(value, (list, tuple)):
        return tuple(_config_default(v) for v in value)
    return value


def _built(value: Any) -> Any:
    """Components built back from nested configs (recursively through tuples)."""
    if isinstance(value, ComponentConfig):
        return build(value)
    if isinstance(value, tuple):
        return tuple(_built(v) for v in value)
    return value


def _check_components(owner: str, f: Field_, value: Any) -> Any:
    """A component-valued parameter holds instances of the declared classes (TypeError naming them)."""
    if not f.components:
        return value
    hint = f.hint
    if typing.get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    sequence = typing.get_origin(hint) in (tuple, list, collections.abc.Sequence)
    item = typing.get_args(hint)[0] if sequence else hint
    options = typing.get_args(item) if typing.get_origin(item) in (Union, types.UnionType) else (item,)
    plain = tuple(a for a in options if not _component_classes(a))
    if not sequence:
        return _check_item(owner, f.key, f.components, value, plain)
    empty = not value and f.spec.constraints.get("min_length", 0) > 0
    if empty or isinstance(value, (str, bytes, Configurable)) or not isinstance(value, collections.abc.Sequence):
        kinds = " or ".join(c.__name__ for c in f.components)
        what = "a non-empty sequence" if f.spec.constraints.get("min_length", 0) > 0 else "a sequence"
        raise TypeError(f"{owner}: {f.key}: expected {what} of {kinds}s, got {value!r:.80}")
    return tuple(_check_item(owner, f"{f.key}[{i}]", f.components, v, plain) for i, v in enumerate(value))


def _check_item(owner: str, where: str, classes: tuple[type, ...], value: Any, plain: tuple[Any, ...]) -> Any:
    if isinstance(value, classes) or (plain and not isinstance(value, Configurable)):
        return value
    expected = " or ".join(f"a {c.__name__}" for c in classes)
    raise TypeError(f"{owner}: {where}: expected {expected}, got {type(value).__name__}")


def parameters(cls: type[Component]) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, doc)`` of each declared parameter, for the API docs and CLIs."""
    rows = []
    for f in cls.fields():
        default = "required" if f.required else f.default_text()
        rows.append((f.key, _type_name(f.hint), default, f.spec.doc))
    return rows


def _type_name(hint: Any) -> str:
    """``Sequence[Reward] | None`` rather than the qualified ``repr`` of a type hint."""
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or re.sub(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Za-z_])", "", str(hint)).replace("NoneType", "None")


def validated(owner: str, model: type[C], /, **values: Any) -> C:
    """Validate constructor arguments with ``model``; raise [`ConfigError`][] with field, expected, got."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(owner, error)) from None


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
