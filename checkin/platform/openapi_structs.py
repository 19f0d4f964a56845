"""A msgspec Struct in the OpenAPI documents is described by msgspec itself.

Litestar builds its own schema of a Struct from the field annotations and loses part of what the
decoder enforces: the constraints of list items (``list[Annotated[int, Meta(ge=1)]]``), a bound of 0
(``ge=0`` is dropped as falsy), a large integer bound (``le=2**63-1`` becomes a float that rounds up),
``forbid_unknown_fields`` (``additionalProperties: false``). A schema that accepts what the decoder
refuses makes the document lie, so :class:`MsgspecStructSchemaPlugin` takes the schema msgspec
generates from the same Struct it decodes with (``msgspec.json.schema_components``) and hands it to
Litestar as the Struct's component; nested Structs become components of their own the same way.

A rule across members that the Struct's route checks itself (``phone``, ``challenge_id`` and ``otp``
go together; ``reason`` is required though it defaults to "" so that its absence gets a 400 saying why
it is needed) is added with a class attribute ``__json_schema_extra__`` (JSON-schema keywords merged
into the Struct's schema: ``required`` names are added), written beside the check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

_REF = "#/components/schemas/{name}"
EXTRA = "__json_schema_extra__"
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMAS = frozenset(
    {"items", "not", "if", "then", "else", "additionalProperties", "contains", "propertyNames"}
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_FIELDS = {f.metadata.get("alias") or _camel(f.name): f.name for f in dataclasses.fields(Schema)}
"""JSON-schema keyword -> field of Litestar's :class:`Schema`."""


def _named_types(annotation: Any) -> Iterator[tuple[str, Any]]:
    """(component name, type) of every Struct and Enum msgspec names inside ``annotation``."""
    seen: set[Any] = set()

    def walk(info: msgspec.inspect.Type) -> Iterator[tuple[str, Any]]:
        if isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.EnumType)):
            if info.cls in seen:
                return
            seen.add(info.cls)
            yield info.cls.__name__, info.cls
            if isinstance(info, msgspec.inspect.EnumType):
                return
            for field in info.fields:
                yield from walk(field.type)
            return
        for name in ("item_type", "key_type", "value_type"):
            inner = getattr(info, name, None)
            if isinstance(inner, msgspec.inspect.Type):
                yield from walk(inner)
        for inner in getattr(info, "item_types", ()) or getattr(info, "types", ()):
            yield from walk(inner)
        if isinstance(info, msgspec.inspect.Metadata):
            yield from walk(info.type)

    yield from walk(msgspec.inspect.type_info(annotation))


def ecma_pattern(pattern: str) -> str:
    """A decoder's pattern as the documents write it: the decoder matches with Python's ``re``, whose
    ``$`` also matches before a final line break, so its patterns end with ``\\Z``; the documents'
    patterns are ECMA's, whose ``$`` is the end of the text."""
    return pattern[:-2] + "$" if pattern.endswith("\\Z") else pattern


def _convert(node: dict[str, Any], ref: Callable[[str], Reference | Schema]) -> Schema | Reference:
    """msgspec's JSON schema (a dict) as Litestar's :class:`Schema`, nested components by ``ref``."""
    if "$ref" in node:
        return ref(node["$ref"].rsplit("/", 1)[-1])
    values: dict[str, Any] = {}
    for key, value in node.items():
        name = _FIELDS[key]
        if key in _SCHEMA_MAPS:
            values[name] = {k: _convert(sub, ref) for k, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            values[name] = [_convert(sub, ref) for sub in value]
        elif key in _SCHEMAS and isinstance(value, dict):
            values[name] = _convert(value, ref)
        elif key == "pattern":
            values[name] = ecma_pattern(value)
        elif key == "type":
            values[name] = [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
        else:
            values[name] = value
    return Schema(**values)


def _merged(schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the keywords of ``extra``: ``required`` names are added, a member's keywords
    join that member's schema, any other keyword is set."""
    out = dict(schema)
    for key, value in extra.items():
        if key == "required":
            out[key] = [*out.get(key, []), *(n for n in value if n not in out.get(key, []))]
        elif key == "properties":
            props = dict(out.get(key, {}))
            for name, keywords in value.items():
                props[name] = {**props.get(name, {}), **keywords}
            out[key] = props
        else:
            out[key] = value
    return out


class MsgspecStructSchemaPlugin(OpenAPISchemaPlugin):
    """Documents a msgspec Struct with the schema msgspec generates for it."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        struct = field_definition.type_
        schema = schema_creator.schema_registry.get_schema_for_field_definition(field_definition)
        _, found = msgspec.json.schema_components([struct], ref_template=_REF)
        types = dict(_named_types(struct))

        def ref(name: str) -> Reference | Schema:
            return schema_creator.for_field_definition(FieldDefinition.from_annotation(types[name]))

        converted = _convert(_merged(found[struct.__name__], getattr(struct, EXTRA, None) or {}), ref)
        assert isinstance(converted, Schema)
        for key, value in vars(converted).items():
            setattr(schema, key, value)
        schema.type = OpenAPIType.OBJECT
        return schema
