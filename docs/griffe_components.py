"""A griffe extension for the docs site: parameters read from declarations, docstrings made Markdown.

mkdocstrings reads the source statically (griffe, no import: the adapters that import verl or OpenRLHF render
without them), so it sees what the source says, not what runs. This extension fills the gaps:

* Components. A subclass of ``adaptive_length_reward.config.Component`` declares its parameters once, as annotated
  class attributes (``beta: float = param(default=0.004, gt=0, doc="...")``), and derives its constructor at
  runtime. From the same declaration, in the order ``Component.fields`` uses (base classes' first, declaration
  order, ``name`` last; the keyword is the ``alias`` where one is given), a synthetic ``__init__`` with the typed
  signature and a Google ``Args:`` section, which ``merge_init_into_class`` shows on the class. A pydantic model
  (``AdapterSettings``...) gets the same from its fields' ``Field(description=...)``.
* Option ``keywords_from`` maps a class whose ``**kwargs`` take a component's parameters
  (``UncertaintyGRPOTrainer``) to that component: its parameters become "Other Parameters" of the class.
* Sphinx roles left in docstrings (``:class:`X```) become cross-references where the site renders the target,
  code spans elsewhere; unindented doctest paragraphs become ``pycon`` code blocks; ``#:`` comments above a
  constant become its docstring; a name re-exported in another module's ``__all__`` is documented once.

Used from mkdocs.yml (``extensions: [docs/griffe_components.py:ComponentParameters]``); nothing here is imported
by the library or its tests' runtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

COMPONENT = "adaptive_length_reward.config.Component"


def _classes(obj: griffe.Object) -> Iterator[griffe.Class]:
    for member in obj.members.values():
        if member.is_alias:
            continue
        if isinstance(member, griffe.Class):
            yield member
            yield from _classes(member)
        elif isinstance(member, griffe.Module):
            yield from _classes(member)


def _mro(cls: griffe.Class) -> list[griffe.Class]:
    try:
        return [cls, *cls.mro()]
    except Exception:  # a base outside the package (trl.GRPOTrainer...) that griffe cannot resolve
        return [cls]


def _keywords(value: Any) -> dict[str, Any] | None:
    """``param(...)``'s keyword arguments, or None when ``value`` is no ``param`` call."""
    if not isinstance(value, griffe.ExprCall) or str(value.function).rsplit(".", 1)[-1] != "param":
        return None
    return {arg.name: arg.value for arg in value.arguments if isinstance(arg, griffe.ExprKeyword)}


def _text(value: Any) -> str:
    """A ``doc=`` value as text: a string literal, or implicitly concatenated literals."""
    text = str(value).strip()
    try:
        import ast

        result = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    text = result if isinstance(result, str) else text
    return re.sub(r"(?<![`\w])(__\w+__)(?![`\w])", r"`\1`", text)  # ``__name__`` is no Markdown bold


def _annotated_attributes(klass: griffe.Class) -> list[griffe.Attribute]:
    """The annotated class attributes ``klass`` itself declares, in source order, ``ClassVar`` ones left out."""
    own = [
        m
        for m in klass.members.values()
        if not m.is_alias
        and isinstance(m, griffe.Attribute)
        and m.annotation is not None
        and "class-attribute" in m.labels
    ]
    # griffe drops ``ClassVar[...]`` from the annotation: the source line still says it
    return [
        m
        for m in sorted(own, key=lambda m: m.lineno or 0)
        if not re.search(r"^\s*[\w.]+\s*:\s*(typing\.)?ClassVar\b", m.source)
    ]


def _fields(cls: griffe.Class) -> list[tuple[str, griffe.Attribute, dict[str, Any]]]:
    """``(keyword, attribute, param keywords)`` of each declared parameter, in ``Component.fields`` order."""
    found: dict[str, tuple[str, griffe.Attribute, dict[str, Any]]] = {}
    for klass in reversed(_mro(cls)):
        if klass.path != COMPONENT and COMPONENT not in {c.path for c in _mro(klass)}:
            continue  # as at runtime: only Component classes declare parameters
        for attribute in _annotated_attributes(klass):
            keywords = _keywords(attribute.value)
            if keywords is None:
                keywords = {} if attribute.value is None else {"default": attribute.value}
            alias = keywords.get("alias")
            key = _text(alias) if alias is not None else attribute.name
            found[attribute.name] = (key, attribute, keywords)
    return sorted(found.values(), key=lambda item: item[0] == "name")


def _parameters(cls: griffe.Class) -> tuple[griffe.Parameters, list[tuple[str, str]]]:
    params, docs = [], []
    fields = _fields(cls)
    for key, attribute, keywords in sorted(fields, key=lambda f: str(f[2].get("kw_only", "True")) != "False"):
        kw_only = str(keywords.get("kw_only", "True")) != "False"
        default = keywords.get("default")
        if default is None and "default_factory" in keywords:
            default = f"{keywords['default_factory']}()"
        kind = griffe.ParameterKind.keyword_only if kw_only else griffe.ParameterKind.positional_or_keyword
        params.append(
            griffe.Parameter(key, annotation=attribute.annotation, kind=griffe.ParameterKind(kind), default=default)
        )
    for key, _attribute, keywords in fields:
        docs.append((key, _text(keywords["doc"]) if "doc" in keywords else ""))
    return griffe.Parameters(*params), docs


def _is_model(cls: griffe.Class) -> bool:
    """A pydantic model (``ComponentConfig``, ``AdapterSettings``...): a base named ``BaseModel`` in its MRO."""
    return any(str(base).rsplit(".", 1)[-1] == "BaseModel" for klass in _mro(cls) for base in klass.bases)


def _model_parameters(cls: griffe.Class) -> tuple[griffe.Parameters, list[tuple[str, str]]]:
    """A pydantic model's keyword constructor: its fields (base classes' first), documented by their
    ``Field(description=...)``."""
    found: dict[str, tuple[griffe.Parameter, str]] = {}
    for klass in reversed(_mro(cls)):
        if not _is_model(klass):
            continue
        for attribute in _annotated_attributes(klass):
            if attribute.name.startswith("_") or attribute.name == "model_config":
                continue
            value, doc = attribute.value, ""
            if isinstance(value, griffe.ExprCall) and str(value.function).rsplit(".", 1)[-1] == "Field":
                keywords = {a.name: a.value for a in value.arguments if isinstance(a, griffe.ExprKeyword)}
                positional = [a for a in value.arguments if not isinstance(a, griffe.ExprKeyword)]
                value = keywords.get("default", positional[0] if positional else None)
                if value is None and "default_factory" in keywords:
                    value = f"{keywords['default_factory']}()"
                doc = _text(keywords["description"]) if "description" in keywords else ""
            parameter = griffe.Parameter(
                attribute.name,
                annotation=attribute.annotation,
                kind=griffe.ParameterKind("keyword-only"),
                default=value,
            )
            found[attribute.name] = (parameter, doc)
    parameters = griffe.Parameters(*(parameter for parameter, _ in found.values()))
    return parameters, [(name, doc) for name, (_, doc) in found.items() if doc]


def _section(title: str, docs: list[tuple[str, str]], types: dict[str, str] | None = None) -> str:
    lines = [f"{title}:"]
    for key, doc in docs:
        typed = f"{key} ({types[key]})" if types and key in types else key
        lines.append(f"    {typed}: {doc or '(undocumented)'}")
    return "\n".join(lines)


# -- docstrings written for Sphinx/help(): Markdown for the site ------------------------------------------------------
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`<>]+)`")


def _lookup(obj: griffe.Object | griffe.Alias, dotted: str) -> griffe.Object | griffe.Alias | None:
    try:
        return obj.get_member(dotted) if dotted else obj
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _final(obj: griffe.Object | griffe.Alias | None) -> griffe.Object | None:
    if obj is None:
        return None
    try:
        return obj.final_target if isinstance(obj, griffe.Alias) else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def resolve(target: str, owner: griffe.Object, package: griffe.Module) -> griffe.Object | None:
    """The object a Sphinx role's target names, seen from ``owner``'s docstring (Sphinx's lookup order)."""
    module = owner if isinstance(owner, griffe.Module) else owner.module
    if target.startswith("."):
        dots = len(target) - len(target.lstrip("."))
        candidates: list[griffe.Object] = [module]
        base: griffe.Object | None = module if module.is_package else module.parent
        for _ in range(dots - 1):
            base = base.parent if base is not None else None
        if base is not None:
            candidates.append(base)
        for candidate in candidates:
            found = _final(_lookup(candidate, target.lstrip(".")))
            if found is not None:
                return found
        return None
    root = package.path + "."
    if target.startswith(root):
        return _final(_lookup(package, target[len(root) :]))
    scope: griffe.Object | None = owner
    while scope is not None:
        found = _final(_lookup(scope, target))
        if found is not None:
            return found
        scope = scope.parent
    return None


def rendered(found: griffe.Object) -> bool:
    """Whether the site shows ``found`` with an anchor (public, documented, inside a rendered public parent)."""
    obj: griffe.Object | None = found
    while obj is not None and obj.parent is not None:
        if not obj.is_public or (not obj.is_module and not obj.has_docstring) or obj.name.startswith("_"):
            return False
        obj = obj.parent
    return True


def markdown_roles(text: str, owner: griffe.Object, package: griffe.Module) -> str:
    """``:class:`~a.b.C``` -> ``[`C`][a.b.C]`` where the site renders ``a.b.C``, else ``` `C` ```."""

    def replace(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if tilde else target.lstrip(".")
        found = resolve(target, owner, package)
        if found is None or not rendered(found):
            return f"`{shown}`"
        return f"[`{shown}`][{found.path}]"

    return ROLE.sub(replace, text)


def markdown_blocks(text: str) -> str:
    """Unindented doctest paragraphs as ``pycon`` code blocks; an RST ``::`` literal-block marker as ``:``."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += ["```pycon", *lines[i:j], "```"]
            i = j
            continue
        line = lines[i]
        if line.endswith("::") and not line.endswith(" ::") and i + 1 < len(lines) and not lines[i + 1].strip():
            line = line[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


def _comment_docstring(attribute: griffe.Attribute) -> None:
    """A constant documented Sphinx-style, by ``#:`` comment lines right above it, gets them as its docstring."""
    if attribute.lineno is None or not isinstance(attribute.filepath, Path):
        return
    lines = attribute.filepath.read_text(encoding="utf-8").split("\n")[: attribute.lineno - 1]
    comment: list[str] = []
    while lines and lines[-1].lstrip().startswith("#:"):
        comment.insert(0, lines.pop().lstrip()[2:].strip())
    if comment:
        attribute.docstring = griffe.Docstring(
            "\n".join(comment),
            parent=attribute,
            parser=attribute.module.docstring.parser if attribute.module.docstring is not None else "google",
        )


def _document_once(pkg: griffe.Module) -> None:
    """A name a module re-exports in ``__all__`` from another module of the package is documented where it is
    defined, not a second time: it leaves the re-exporting module's public names (links to it still resolve).
    The top-level package and subpackages' ``__init__`` are rendered without members anyway."""
    for module in _objects(pkg):
        if not isinstance(module, griffe.Module) or module.is_package or not isinstance(module.exports, list):
            continue
        kept = []
        for name in module.exports:
            member = module.members.get(name) if isinstance(name, str) else None
            target = member.target_path if isinstance(member, griffe.Alias) else ""
            if not target.startswith(pkg.path + "."):
                kept.append(name)
        module.exports = kept


class ComponentParameters(griffe.Extension):
    """Give every component a documented constructor built from its ``param`` declarations."""

    def __init__(self, keywords_from: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keywords_from = keywords_from or {}

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _document_once(pkg)
        for obj in _objects(pkg):
            if isinstance(obj, griffe.Attribute) and obj.docstring is None:
                _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = markdown_blocks(markdown_roles(obj.docstring.value, obj, pkg))
        for cls in _classes(pkg):
            if "__init__" in cls.members:
                continue
            if COMPONENT in {c.path for c in _mro(cls)[1:]}:
                parameters, docs = _parameters(cls)
            elif _is_model(cls):
                parameters, docs = _model_parameters(cls)
            else:
                continue
            if not docs:
                continue
            init = griffe.Function(
                "__init__",
                parameters=griffe.Parameters(griffe.Parameter("self"), *parameters),
                lineno=cls.lineno,
                endlineno=cls.lineno,
            )
            parser = cls.docstring.parser if cls.docstring is not None else None
            options = cls.docstring.parser_options if cls.docstring is not None else None
            init.docstring = griffe.Docstring("", parent=init, parser=parser or "google", parser_options=options)
            init.docstring.value = _section("Args", docs)  # set after: the constructor dedents every line but one
            cls.set_member("__init__", init)
        for target, source in self.keywords_from.items():
            owner, component = pkg.modules_collection.get_member(target), pkg.modules_collection.get_member(source)
            _, docs = _parameters(component)
            types = {key: str(attribute.annotation) for key, attribute, _ in _fields(component)}
            docstring = owner.docstring
            if docstring is not None:
                docstring.value = docstring.value.rstrip() + "\n\n" + _section("Other Parameters", docs, types)
