"""YAML files people edit -> validated pydantic values, each mistake named by file, line and key.

Every hand-edited YAML file is read here, so all of them validate the same way: the export's
``features.yaml``, ``playbook.yaml``, ``rules.yaml``, the health-score config, the training config
and (its syntax and key lines) the mapping file. The rules they share:

- a syntax error names the file and line; a key written twice in one mapping is an error (plain
  ``yaml.safe_load`` silently keeps the last one);
- the models forbid unknown keys, and an unknown key gets the closest known one ("did you mean");
- every problem, from pydantic or from a file's own cross-checks, is one line
  ``file, line N, key a.b.c: what is wrong``, followed by the page that documents the keys.

It lives in ``features/``, the bottom of the dependency graph, because training and serving read
config files too. A line is 1-based; a key path uses list indices for list items.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin
from typing import get_type_hints as type_hints

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from features.errors import ChurnError

KeyPath = tuple[str | int, ...]
Location = tuple[str, int]  # (file, 1-based line)
Problem = tuple[tuple[Any, ...], str]  # (key path, what is wrong)
Value = TypeVar("Value")

_MERGE_TAG = "tag:yaml.org,2002:merge"
_EXTRA = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
_UNION_TAG = frozenset({"union_tag_invalid", "union_tag_not_found"})


def closest(name: str, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, else an empty string."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def dotted(path: Iterable[Any]) -> str:
    """``rules.2.when.days``: a key path as the error messages write it."""
    return ".".join(str(part) for part in path)


# --------------------------------------------------------------------------------------------
# YAML with the line of every key


def _construct(
    node: yaml.Node,
    path: KeyPath,
    file: str,
    lines: dict[KeyPath, Location],
    loader: yaml.SafeLoader,
    error: type[ChurnError],
) -> Any:
    """The values below ``node`` as ``yaml.safe_load`` builds them, with the line of every key.

    Keys are kept as written (``yes:`` is the key ``"yes"``, ``1:`` is ``"1"``): in these files a
    key is a name. A key given twice in one mapping is an error; ``<<: *defaults`` merges.
    """
    lines.setdefault(path, (file, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, _ in node.value:
            key = str(key_node.value)
            if key_node.tag != _MERGE_TAG and key in seen:
                raise error(
                    f"{file}, line {key_node.start_mark.line + 1}, key {dotted((*path, key))}: "
                    f"the key appears twice under {dotted(path) or 'the top level'}; keep one."
                )
            seen.add(key)
        loader.flatten_mapping(node)  # merged keys first, so the mapping's own keys win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = (file, key_node.start_mark.line + 1)
            out[str(key_node.value)] = _construct(value_node, child, file, lines, loader, error)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), file, lines, loader, error)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def compose_yaml(
    text: str, file: str, error: type[ChurnError] = ChurnError
) -> tuple[Any, dict[KeyPath, Location]]:
    """The values of YAML ``text`` plus the ``(file, line)`` of every key path.

    An empty document is ``None``. Errors are ``error`` and name ``file`` and the line.
    """
    lines: dict[KeyPath, Location] = {}
    loader = yaml.SafeLoader("")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, lines
        return _construct(node, (), file, lines, loader, error), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{file} is not valid YAML{where}: {problem}. Fix the syntax.") from None
    except RecursionError:
        raise error(f"{file}: an alias refers to itself; write the values out.") from None
    finally:
        loader.dispose()


def locate(lines: dict[KeyPath, Location], path: KeyPath, file: str) -> str:
    """``file, line N, key a.b.c`` for the deepest prefix of ``path`` that has a line."""
    key = dotted(path) or "(top level)"
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            where, line = lines[path[:end]]
            return f"{where}, line {line}, key {key}"
    return f"{file}, key {key}"


# --------------------------------------------------------------------------------------------
# pydantic error locations -> key paths of the file


def data_path(raw: Any, loc: tuple[Any, ...], keep_last: bool = False) -> KeyPath:
    """The key path in the file of a pydantic error location.

    pydantic adds parts that are not keys of the file (the tag of a discriminated union member,
    the name of a union branch); those are dropped where the data does not have them. The last
    part is kept when it is the key the error is about although the file lacks it: a missing
    key (``keep_last``) or a dict key that failed validation (``[key]``).
    """
    out: list[str | int] = []
    node = raw
    for i, part in enumerate(loc):
        if isinstance(node, dict) and any(str(k) == str(part) for k in node):
            node = _child(node, part)
            out.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
        elif i == len(loc) - 1 and (keep_last or part == "[key]"):
            out.append(part)
    return tuple(out)


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: through ``Annotated``, ``X | Y`` and ``Optional``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _fields(kind: Any) -> dict[str, Any]:
    """Key -> annotation of a pydantic model or a dataclass; ``{}`` for anything else."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {(f.alias or name): f.annotation for name, f in kind.model_fields.items()}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = type_hints(kind)
        return {f.name: hints[f.name] for f in dataclasses.fields(kind)}
    return {}


def _fits(kind: Any, node: Any) -> bool:
    """Whether ``node`` can be this member of a union: its literal fields (tags) agree."""
    if not isinstance(node, dict):
        return True
    for key, annotation in _fields(kind).items():
        literal = [m for m in _members(annotation) if get_origin(m) is Literal]
        if key in node and literal and node[key] not in get_args(literal[0]):
            return False
    return True


def keys_at(schema: Any, path: KeyPath, raw: Any = None) -> list[str]:
    """The keys ``schema`` allows in the mapping at ``path`` (for "did you mean").

    With the parsed values ``raw``, a union member whose tag disagrees with the file's is left
    out (``when: {kind: health_below}`` offers the keys of ``health_below`` only).
    """
    kinds, node = _members(schema), raw
    for part in (*path, None):
        fitting = [kind for kind in kinds if _fits(kind, node)]
        kinds = fitting or kinds
        if part is None:
            break
        inner: list[Any] = []
        for kind in kinds:
            origin, args = get_origin(kind), get_args(kind)
            if origin is dict and args:
                inner += _members(args[1])
            elif origin in (list, tuple) and args:
                inner += _members(args[0])
            elif str(part) in (fields := _fields(kind)):
                inner += _members(fields[str(part)])
        kinds = inner
        node = _child(node, part)
    keys: list[str] = []
    for kind in kinds:
        keys += _fields(kind)
        if get_origin(kind) is dict and get_args(kind):
            key_kind = get_args(kind)[0]
            if get_origin(key_kind) is Literal:
                keys += [str(v) for v in get_args(key_kind)]
    return list(dict.fromkeys(keys))


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return next((v for k, v in node.items() if str(k) == str(part)), None)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def describe(schema: Any, raw: Any, errors: list[Any]) -> list[Problem]:
    """pydantic's errors as (key path in the file, message), with "did you mean" for keys."""
    problems: list[Problem] = []
    for error in errors:
        kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
        path = data_path(raw, tuple(error["loc"]), keep_last=kind == "missing")
        if kind in _UNION_TAG:  # point at the tag itself: ``when.kind``, not ``when``
            context = error.get("ctx", {})
            path = (*path, str(context.get("discriminator", "")).strip("'"))
            tags = [t.strip(" '") for t in str(context.get("expected_tags", "")).split(",")]
            message += closest(str(context.get("tag", "")), tags) if "tag" in context else ""
        if kind in _EXTRA and path:
            choices = keys_at(schema, path[:-1], raw)
            message = f"Extra inputs are not permitted{closest(str(path[-1]), choices)}"
            message += f"; valid keys here: {', '.join(choices)}" if choices else ""
        elif path and path[-1] == "[key]" and len(path) >= 2:
            message += closest(str(path[-2]), keys_at(schema, path[:-2], raw))
        problems.append((path, message))
    return problems


def first_repeat(groups: Mapping[str, Iterable[str]]) -> tuple[str, str, str] | None:
    """The first name listed in two groups, as (name, first group, second group), else ``None``:
    the check of every config whose names may belong to one group only."""
    owner: dict[str, str] = {}
    for group, names in groups.items():
        for name in names:
            if name in owner:
                return name, owner[name], group
            owner[name] = group
    return None


# --------------------------------------------------------------------------------------------
# One kind of config file


@dataclass(frozen=True)
class ConfigFile(Generic[Value]):
    """One kind of YAML config: its schema (a pydantic model or a dataclass), what users call it,
    the page that documents its keys, and the error it raises (mapped to exit/HTTP codes)."""

    schema: type[Value]
    what: str  # "playbook", "health-score config", ...
    docs: str  # "docs/scoring.md"
    error: type[ChurnError]

    @cached_property
    def adapter(self) -> TypeAdapter[Value]:
        return TypeAdapter(self.schema)

    def read(
        self,
        path: Path,
        *,
        hint: str = "",
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        checks: Callable[[Value], list[Problem]] | None = None,
    ) -> Value:
        """Read and validate ``path``; ``hint`` says what to do when it cannot be read."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self.error(
                f"The {self.what} file was not found: {path}. {hint}".rstrip()
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise self.error(
                f"Cannot read the {self.what} {path}: {reason}. {hint}".rstrip()
            ) from None
        return self.parse(text, str(path), prepare=prepare, checks=checks)

    def parse(
        self,
        text: str,
        file: str,
        *,
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        checks: Callable[[Value], list[Problem]] | None = None,
    ) -> Value:
        """Validate YAML ``text`` read from ``file`` (the name every message starts with).

        ``prepare`` may rewrite the parsed mapping first (e.g. resolve a relative path);
        ``checks`` returns the problems the schema cannot see alone (duplicates, references),
        as key paths so they are located like pydantic's.
        """
        raw, lines = compose_yaml(text, file, self.error)
        return self.validate(raw, file, lines, prepare=prepare, checks=checks)

    def validate(
        self,
        raw: Any,
        file: str,
        lines: dict[KeyPath, Location] | None = None,
        *,
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        checks: Callable[[Value], list[Problem]] | None = None,
    ) -> Value:
        """Validate parsed values; ``lines`` (from :func:`compose_yaml`) locate each problem."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise self.error(
                f"{file}: the {self.what} must be a mapping of keys to values, got a "
                f"{type(raw).__name__}. See {self.docs} for the keys."
            )
        if prepare is not None:
            raw = prepare(raw)
        try:
            value = self.adapter.validate_python(raw)
        except ValidationError as exc:
            problems = describe(self.schema, raw, exc.errors())
        else:
            problems = checks(value) if checks is not None else []
            if not problems:
                return value
        listed = "\n".join(
            f"  - {locate(lines or {}, tuple(path), file)}: {message}"
            for path, message in dict.fromkeys(problems)
        )
        raise self.error(
            f"{file} is not a valid {self.what}:\n{listed}\nSee {self.docs} for the keys."
        )


__all__ = [
    "ConfigFile",
    "KeyPath",
    "Location",
    "Problem",
    "closest",
    "compose_yaml",
    "data_path",
    "describe",
    "dotted",
    "first_repeat",
    "keys_at",
    "locate",
]
