"""Campaign specs: the contract document (YAML or JSON), parsed through one narrow door into checked values.

Everything that can be checked without the database or the filesystem is checked here, with one message naming every
faulty field. The service that accepts a campaign adds what needs them: the input datasets exist and the submitter may
read them, the script or program exists inside the submitter's workspace, the output dataset is new or already the
submitter's (`check_output_owner`).

Command processors (`processor: {command: [...]}`) never go through a shell. Their arguments may hold placeholders,
substituted per task by `render_command` (`{{` and `}}` stand for literal braces):

- `{input.ALIAS}`: the path of the task's granule of input ALIAS. An argument that is only this placeholder becomes one
  argument per granule (none when the alias matched nothing); inside a longer argument it needs exactly one granule.
- `{output}`: the path the task must write its output to.
- `{parameters.NAME}`: the spec parameter NAME, as is for text, as JSON for anything else.
"""

from __future__ import annotations

import json
import keyword
import re
import string
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from nephelae.accounts.registry import check_identifier
from nephelae.catalog.query import BBox, Interval, parse_bbox, parse_interval
from nephelae.errors import Conflict, InvalidInput

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 32  # nesting of mappings and lists, parameters included
MAX_INPUTS = 16
MAX_ARGUMENTS = 256
MAX_SECONDS = 48 * 3600
MAX_MEMORY_MB = 64 * 1024
BUILTIN_PACKAGE = "nephelae.processors"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PYTHON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # no hidden files, no leading '-', no '..'
PROGRAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
P = ParamSpec("P")
T = TypeVar("T")


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is ours, collected with the others into one `InvalidInput`."""
    return PydanticCustomError("nephelae", "{detail}", {"detail": message})


@dataclass(frozen=True)
class ProcessorRef:
    """What a task runs: a built-in `module:function`, a workspace script `path.py:function`, or a command line."""

    kind: Literal["builtin", "script", "command"]
    target: str = ""  # the module (builtin) or the workspace-relative path (script)
    function: str = ""
    argv: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """A stable text naming the processor; the service appends its version or file hash for task keys."""
        if self.kind == "command":
            return "command:" + json.dumps(list(self.argv), ensure_ascii=False)
        return f"{self.kind}:{self.target}:{self.function}"

    @property
    def workspace_path(self) -> PurePosixPath | None:
        """The file the service must find inside the submitter's workspace, if any."""
        if self.kind == "script":
            return PurePosixPath(self.target)
        if self.kind == "command" and "/" in self.argv[0]:
            return PurePosixPath(self.argv[0])
        return None

    def document(self) -> str | dict[str, list[str]]:
        """The processor as written in a spec."""
        if self.kind == "command":
            return {"command": list(self.argv)}
        return f"{self.target}:{self.function}"


def parse_processor(value: object) -> ProcessorRef:
    """`nephelae.processors...:function`, `relative/path.py:function` or `{command: [program, arg, ...]}`."""
    if isinstance(value, ProcessorRef):
        value = value.document()  # checked again: an instance may have been built by hand
    if isinstance(value, Mapping):
        return _parse_command(value)
    if not isinstance(value, str) or ":" not in value:
        raise _invalid("expected 'nephelae.processors.MODULE:function', 'path.py:function' or {command: [...]}")
    target, _, function = value.rpartition(":")
    if not PYTHON_NAME.fullmatch(function) or keyword.iskeyword(function) or function.startswith("_"):
        raise _invalid(f"{function!r} is not a public Python function name")
    if target.endswith(".py"):
        return ProcessorRef("script", _workspace_relative(target, "script"), function)
    if target != BUILTIN_PACKAGE and not target.startswith(BUILTIN_PACKAGE + "."):
        raise _invalid(
            f"{target!r} is not a built-in processor module: built-ins live under {BUILTIN_PACKAGE}; "
            "for your own code give a script of your workspace, such as 'scripts/anomaly.py:process'"
        )
    if not all(PYTHON_NAME.fullmatch(part) and not part.startswith("_") for part in target.split(".")):
        raise _invalid(f"{target!r} is not a dotted module name")
    return ProcessorRef("builtin", target, function)


def _workspace_relative(path: str, what: str) -> str:
    """A path inside the workspace: relative, '/'-separated, no '..', no hidden or option-like parts."""
    parts = path.removeprefix("./").split("/")
    if path.startswith("/") or not all(PATH_PART.fullmatch(part) for part in parts):
        raise _invalid(
            f"{what} path {path!r} must be relative to your workspace, such as 'scripts/anomaly.py', using letters, "
            "digits, '.', '-' or '_' (no '..', no absolute path, no part starting with '.' or '-')"
        )
    return "/".join(parts)


def _parse_command(value: Mapping[Any, Any]) -> ProcessorRef:
    argv = value.get("command")
    if set(value) != {"command"} or not isinstance(argv, list) or not argv:
        raise _invalid("a command processor is {command: [program, argument, ...]}, a non-empty list of strings")
    if len(argv) > MAX_ARGUMENTS or not all(isinstance(arg, str) and "\x00" not in arg for arg in argv):
        raise _invalid(f"command must be at most {MAX_ARGUMENTS} strings without NUL characters")
    program = argv[0]
    if "/" in program:  # kept as ./PATH: run from the workspace, never looked up on PATH
        program = "./" + _workspace_relative(program, "program")
    elif not PROGRAM.fullmatch(program):
        raise _invalid(f"program {program!r} must be a program name (found on PATH) or a path in your workspace")
    for arg in argv[1:]:
        placeholders(arg)
    return ProcessorRef("command", argv=(program, *argv[1:]))


def placeholders(argument: str) -> list[str]:
    """The placeholder names of one command argument, checking that its braces are well formed."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(argument)]
    except ValueError:
        raise _invalid(f"argument {argument!r} has unbalanced braces; write {{{{ and }}}} for literal ones") from None
    names = []
    for name, spec, conversion in fields:
        if name is None:
            continue
        if spec or conversion or not re.fullmatch(r"output|(input|parameters)\.[A-Za-z0-9_-]+", name):
            raise _invalid(f"{{{name}}} in {argument!r} is not {{input.ALIAS}}, {{output}} or {{parameters.NAME}}")
        names.append(name)
    return names


def render_command(
    processor: ProcessorRef, inputs: Mapping[str, Sequence[str]], output: str, parameters: Mapping[str, Any]
) -> list[str]:
    """The argv of one task: placeholders replaced by plain substitution (never `str.format` on objects)."""
    argv = [processor.argv[0]]
    for argument in processor.argv[1:]:
        pieces = list(string.Formatter().parse(argument))
        if len(pieces) == 1 and not pieces[0][0] and pieces[0][1] and pieces[0][1].startswith("input."):
            argv.extend(inputs.get(pieces[0][1].removeprefix("input."), ()))
            continue
        text = []
        for literal, name, _, _ in pieces:
            text.append(literal)
            if name is not None:
                text.append(_substitute(name, inputs, output, parameters))
        argv.append("".join(text))
    return argv


def _substitute(name: str, inputs: Mapping[str, Sequence[str]], output: str, parameters: Mapping[str, Any]) -> str:
    if name == "output":
        return output
    kind, _, key = name.partition(".")
    if kind == "parameters":
        value = parameters[key]
        return value if isinstance(value, str) else json.dumps(value)
    paths = inputs.get(key, ())
    if len(paths) != 1:
        raise InvalidInput(f"{{{name}}} is inside a longer argument but input {key!r} has {len(paths)} granules here")
    return paths[0]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class InputSpec(_Strict):
    """One input: a dataset, optionally narrowed to a time interval and a box."""

    dataset: str
    time: str | None = Field(None, description="INSTANT, START/END, START/.. or ../END (RFC 3339), kept canonical")
    bbox: tuple[float, float, float, float] | None = Field(None, description="W,S,E,N in degrees")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _checked(check_identifier, "dataset", value)

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid("expected a time interval such as 2020-01-01/2020-12-31")
        interval = _checked(parse_interval, value)
        if interval is None:
            return None
        return "/".join(moment.isoformat() if moment else ".." for moment in (interval.start, interval.end))

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox(cls, value: object) -> tuple[float, float, float, float] | None:
        numbers = isinstance(value, list | tuple) and all(
            isinstance(item, int | float) and not isinstance(item, bool) for item in value
        )
        if value is not None and not isinstance(value, str) and not numbers:
            raise _invalid("expected [W, S, E, N] or 'W,S,E,N' in degrees")
        box = _checked(parse_bbox, value)  # type: ignore[arg-type]  # str or numbers, checked just above
        return None if box is None else (box.west, box.south, box.east, box.north)

    @property
    def interval(self) -> Interval | None:
        return parse_interval(self.time)

    @property
    def box(self) -> BBox | None:
        return None if self.bbox is None else BBox(*self.bbox)


class OutputSpec(_Strict):
    """The derived dataset the campaign creates: a plain identifier owned by the submitter."""

    dataset: str
    format: Literal["netcdf", "zarr"] = "netcdf"

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _checked(check_identifier, "output dataset", value)


class Resources(_Strict):
    """Per-task limits; None leaves the platform's default."""

    memory_mb: int | None = Field(None, ge=64, le=MAX_MEMORY_MB)
    cpu_seconds: int | None = Field(None, ge=1, le=MAX_SECONDS)
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_SECONDS)


ProcessorField = Annotated[
    ProcessorRef,
    PlainValidator(parse_processor),
    PlainSerializer(lambda processor: processor.document()),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "nephelae.processors.MODULE:function or path.py:function"},
                {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}},
            ]
        }
    ),
]


class CampaignSpec(_Strict):
    """A campaign as submitted (the contract). The first input is the primary one: it drives the tasks."""

    name: str
    inputs: dict[str, InputSpec] = Field(min_length=1, max_length=MAX_INPUTS)
    group_by: Literal["granule", "day", "month"] = "granule"
    processor: ProcessorField
    parameters: dict[str, Any] = Field(default_factory=dict)
    output: OutputSpec
    retries: int = Field(2, ge=0, le=10)
    resources: Resources = Field(default_factory=Resources)
    follow: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise _invalid("expected 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit")
        return value

    @field_validator("inputs")
    @classmethod
    def _aliases(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for alias in value:
            if not ALIAS.fullmatch(alias) or keyword.iskeyword(alias):
                raise _invalid(f"input name {alias!r} must be a Python identifier (letters, digits, '_')")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise _invalid(f"must be plain JSON values (quote dates, no NaN): {error}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        if self.output.dataset in self.datasets:
            raise _invalid(f"output.dataset {self.output.dataset!r} is also an input; choose a new name")
        for name in (name for argument in self.processor.argv[1:] for name in placeholders(argument)):
            kind, _, key = name.partition(".")
            known = self.inputs if kind == "input" else self.parameters if kind == "parameters" else {key: None}
            if key not in known:
                raise _invalid(f"processor: {{{name}}} names no {kind} of this spec (known: {', '.join(known)})")
        return self

    @property
    def primary(self) -> str:
        """The alias of the first input, whose granules (or groups) become the tasks."""
        return next(iter(self.inputs))

    @property
    def datasets(self) -> list[str]:
        """The input dataset ids, for the service's existence and access checks."""
        return [item.dataset for item in self.inputs.values()]

    def document(self) -> dict[str, Any]:
        """The spec as JSON-ready data in the contract's shape; `validate_spec` reads it back to an equal spec."""
        return self.model_dump(mode="json")


def _checked(check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a domain check, turning its `InvalidInput` into a field error."""
    try:
        return check(*args, **kwargs)
    except InvalidInput as error:
        raise _invalid(error.detail) from None


def check_output_owner(dataset_id: str, *, existing_owner: str | None, exists: bool, submitter: str) -> None:
    """The output dataset must be new, or a derived dataset the submitter already owns (a rerun adds to it)."""
    if exists and existing_owner != submitter:
        raise Conflict(
            f"dataset {dataset_id!r} already exists and is not yours; choose another output dataset name, "
            f"such as '{submitter}-{dataset_id}'"
        )


def parse_spec(text: str | bytes, *, filename: str = "spec.yaml") -> CampaignSpec:
    """Read a spec document (JSON when `filename` ends in .json, YAML otherwise) and check it."""
    if (
        len(text) > MAX_SPEC_BYTES
        or len(text if isinstance(text, bytes) else text.encode(errors="replace")) > MAX_SPEC_BYTES
    ):
        raise InvalidInput(f"{filename} is larger than {MAX_SPEC_BYTES // 1024} kB; a campaign spec is a short file")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{filename} is not UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys) if filename.endswith(".json") else _load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        kind = "JSON" if filename.endswith(".json") else "YAML"
        detail = " ".join(str(error).split()) if not isinstance(error, RecursionError) else "nested too deeply"
        raise InvalidInput(f"{filename} is not valid {kind}: {detail}") from None
    return validate_spec(data, source=filename)


def validate_spec(data: object, *, source: str = "spec") -> CampaignSpec:
    """Check already-parsed spec data (such as the JSON body of `POST /api/v1/campaigns`)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} must be a mapping with name, inputs, processor and output")
    if _depth(data) > MAX_DEPTH:
        raise InvalidInput(f"{source} is nested more than {MAX_DEPTH} levels deep")
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(f"{source} is not a valid campaign spec: {_describe(error)}") from None


class _SpecLoader(yaml.SafeLoader):
    """Safe YAML without aliases (no 'billion laughs') and without silently repeated keys."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in a campaign spec; write the value out")
        return super().compose_node(parent, index)  # type: ignore[arg-type]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.YAMLError(f"key {repeated[0]!r} appears twice in one mapping")
        return super().construct_mapping(node, deep)


# Dates stay text, read by `parse_interval` with a message naming the field (YAML's own would name none).
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(text: str) -> object:
    return yaml.load(text, Loader=_SpecLoader)  # noqa: S506  # a SafeLoader, stricter still


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return result


def _depth(value: object) -> int:
    """How deeply mappings and lists nest (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in children)
    return deepest


_SECTIONS: dict[str, type[BaseModel]] = {"output": OutputSpec, "resources": Resources}


def _describe(error: ValidationError) -> str:
    """Every problem, as `field.path: what is wrong (got ...)`, in one line."""
    return "; ".join(_where(item["loc"]) + _message(item) for item in error.errors())


def _where(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) + ": " if location else ""


def _message(item: Mapping[str, Any]) -> str:
    location, kind = item["loc"], item["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return f"unknown field; expected one of {', '.join(_model_at(location[:-1]).model_fields)}"
    message = str(item["msg"])
    value = item.get("input")
    if kind != "nephelae" and isinstance(value, str | int | float) and not isinstance(value, bool):
        message += f" (got {repr(value)[:80]})"
    return message


def _model_at(location: tuple[int | str, ...]) -> type[BaseModel]:
    if len(location) == 2 and location[0] == "inputs":
        return InputSpec
    if len(location) == 1 and str(location[0]) in _SECTIONS:
        return _SECTIONS[str(location[0])]
    return CampaignSpec
