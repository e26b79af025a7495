"""A tool function's signature read once: its parameters as a pydantic model (the
input schema sent to the model, and the validation of what the model sends back), the
docstring's description, and validation errors worded for the model."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentjobs.errors import ToolDefinitionError

#: The parameter that receives the call's idempotency key instead of model input.
IDEMPOTENCY_PARAM = "idempotency_key"

# A validation message quotes at most this much of the offending value.
_INPUT_PREVIEW = 80


class Signature:
    """A function's parameters as a pydantic model, and how to call it from input."""

    def __init__(self, fn: Callable[..., Any], tool_name: str) -> None:
        self.tool_name = tool_name
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise ToolDefinitionError(f"tool {tool_name}: no signature to read ({exc})") from None
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:  # an annotation naming something not importable
            raise ToolDefinitionError(
                f"tool {tool_name}: cannot resolve its type hints"
                f" ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        self.takes_key = False
        self.key_positional = False
        self.params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                star = "*" if p.kind is p.VAR_POSITIONAL else "**"
                raise ToolDefinitionError(
                    f"tool {tool_name}: {star}{p.name} cannot be described to the model;"
                    " name each parameter"
                )
            if p.name == IDEMPOTENCY_PARAM:
                self.takes_key = True
                self.key_positional = p.kind is p.POSITIONAL_ONLY
                continue
            if p.name not in hints:
                raise ToolDefinitionError(
                    f"tool {tool_name}: parameter {p.name!r} has no type hint"
                    " (the model's input is validated against the hints)"
                )
            self.params.append(p)
        # One pydantic-model parameter: that model is the input, not a field of it.
        self.whole: str | None = None
        if len(self.params) == 1:
            ann = _strip_annotated(hints[self.params[0].name])
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                self.whole = self.params[0].name
                self.model: type[BaseModel] = ann
                return
        fields: dict[str, Any] = {}
        for i, p in enumerate(self.params):
            # Fields under neutral names with the parameter as alias: a parameter may
            # be called ``json`` or ``model_config`` without shadowing BaseModel's own.
            ann = typing.Annotated[hints[p.name], Field(alias=p.name)]
            default = ... if p.default is p.empty else p.default
            fields[f"p{i}"] = (ann, default)
        config = ConfigDict(extra="forbid", populate_by_name=False)
        try:
            self.model = pydantic.create_model(f"{tool_name}_input", __config__=config, **fields)
        except Exception as exc:
            raise ToolDefinitionError(
                f"tool {tool_name}: its parameters cannot be validated ({first_line(exc)})"
            ) from None

    def schema(self) -> dict[str, Any]:
        try:
            raw = self.model.model_json_schema(by_alias=True)
        except Exception as exc:  # a type pydantic cannot describe
            raise ToolDefinitionError(
                f"tool {self.tool_name}: no JSON schema for its parameters"
                f" ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        out = without_titles(raw)
        out.setdefault("properties", {})
        return out

    def arguments(self, data: Any, key: str) -> tuple[list[Any], dict[str, Any]]:
        """The call's positional and keyword arguments; ValidationError on bad input."""
        if not isinstance(data, dict):
            # The API always sends an object; a stored or hand-made call might not.
            data = {} if data is None else data
        validated = self.model.model_validate(data)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        values: dict[str, Any]
        if self.whole is not None:
            values = {self.whole: validated}
        else:
            values = {p.name: getattr(validated, f"p{i}") for i, p in enumerate(self.params)}
        if self.takes_key:
            values[IDEMPOTENCY_PARAM] = key
        for p in [*self.params, *self._key_param()]:
            if p.kind is p.POSITIONAL_ONLY:
                args.append(values[p.name])
            else:
                kwargs[p.name] = values[p.name]
        return args, kwargs

    def _key_param(self) -> list[inspect.Parameter]:
        if not self.takes_key:
            return []
        kind = (
            inspect.Parameter.POSITIONAL_ONLY
            if self.key_positional
            else inspect.Parameter.KEYWORD_ONLY
        )
        return [inspect.Parameter(IDEMPOTENCY_PARAM, kind)]


def _strip_annotated(ann: Any) -> Any:
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


#: Keywords whose value is a schema, a list of schemas, or a map of names to schemas:
#: the only places a ``title`` is a schema's (elsewhere, as in a ``default``, an
#: ``examples`` entry, an ``enum`` or a ``const``, it is data, and kept).
_SUBSCHEMA = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains"}
    | {"propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems"}
)
_SUBSCHEMAS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_MAPS = frozenset(
    {"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"}
)


def without_titles(schema: Any) -> Any:
    """The schema without pydantic's generated ``title`` keys (tokens the model does
    not need; the API accepts them, and the SDK's own conversion keeps them). A
    property called ``title``, and data that holds one (a default, an example),
    stay; ``$defs`` and the ``$ref`` to them stay as they are."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "title" and isinstance(v, str):
            continue
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: without_titles(s) for name, s in v.items()}
        elif k in _SUBSCHEMAS and isinstance(v, list):
            out[k] = [without_titles(s) for s in v]
        elif k in _SUBSCHEMA:
            out[k] = [without_titles(s) for s in v] if isinstance(v, list) else without_titles(v)
        else:
            out[k] = v
    return out


def description(fn: Callable[..., Any]) -> str:
    """The docstring's first paragraph, its lines joined."""
    doc = inspect.getdoc(fn) or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in first.splitlines()).strip()


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def validation_message(tool_name: str, exc: ValidationError) -> str:
    """One line per problem, as the model can act on it."""
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err.get("loc", ())) or "input"
        msg = err.get("msg", "invalid")
        line = f"{where}: {msg}"
        if err.get("type") not in ("missing", "extra_forbidden") and "input" in err:
            shown = repr(err["input"])
            if len(shown) > _INPUT_PREVIEW:
                shown = shown[: _INPUT_PREVIEW - 3] + "..."
            line += f" (got {shown})"
        problems.append(line)
    return f"Invalid input for tool {tool_name}: " + "; ".join(problems)
