"""Campaign specs: the contract example, every field's checks, the document door (YAML, JSON, bombs), placeholders."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import PurePosixPath
from typing import Any

import pydantic
import pytest
import yaml

from nephelae.campaigns.spec import (
    MAX_SPEC_BYTES,
    CampaignSpec,
    ProcessorRef,
    check_output_owner,
    parse_processor,
    parse_spec,
    render_command,
    validate_spec,
)
from nephelae.catalog.query import BBox, Interval
from nephelae.errors import Conflict, InvalidInput

CONTRACT = """\
name: sst-anomaly-2020
inputs:                          # one or more datasets, matched by time when several
  sst: {dataset: odyssea-l4-sst, time: 2020-01-01/2020-12-31, bbox: [-80, 0, 0, 60]}
group_by: granule                # granule | day | month
processor: nephelae.processors:sst_anomaly
parameters: {}
output: {dataset: alice-sst-anomaly-2020, format: netcdf}
retries: 2
resources: {memory_mb: 2048, cpu_seconds: 600, timeout_seconds: 900}
follow: false
"""


def spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "run",
        "inputs": {"sst": {"dataset": "odyssea-l4-sst"}},
        "processor": "nephelae.processors:sst_anomaly",
        "output": {"dataset": "alice-out"},
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def problem(**changes: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        validate_spec(spec_data(**changes))
    return caught.value.detail


# The contract


def test_the_contract_example_parses() -> None:
    spec = parse_spec(CONTRACT)
    assert spec.name == "sst-anomaly-2020"
    assert spec.primary == "sst" and spec.datasets == ["odyssea-l4-sst"]
    sst = spec.inputs["sst"]
    assert sst.interval == Interval(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2020, 12, 31, tzinfo=dt.UTC))
    assert sst.box == BBox(-80, 0, 0, 60)
    assert spec.processor == ProcessorRef("builtin", "nephelae.processors", "sst_anomaly")
    assert (spec.group_by, spec.retries, spec.follow, spec.parameters) == ("granule", 2, False, {})
    assert (spec.output.dataset, spec.output.format) == ("alice-sst-anomaly-2020", "netcdf")
    assert (spec.resources.memory_mb, spec.resources.cpu_seconds, spec.resources.timeout_seconds) == (2048, 600, 900)


def test_json_gives_the_same_spec_and_the_document_reads_back() -> None:
    spec = parse_spec(CONTRACT)
    document = spec.document()
    assert document["processor"] == "nephelae.processors:sst_anomaly"
    assert document["inputs"]["sst"]["time"] == "2020-01-01T00:00:00+00:00/2020-12-31T00:00:00+00:00"
    assert parse_spec(json.dumps(document), filename="spec.json") == spec
    assert validate_spec(document) == spec
    assert parse_spec(CONTRACT.encode()) == spec


def test_defaults_and_several_inputs() -> None:
    spec = validate_spec(spec_data(inputs={"sst": {"dataset": "a"}, "wind": {"dataset": "b", "time": "2020-01-01/.."}}))
    assert (spec.group_by, spec.retries, spec.follow, spec.output.format) == ("granule", 2, False, "netcdf")
    assert spec.resources.memory_mb is None and spec.inputs["sst"].interval is None
    assert spec.primary == "sst" and spec.datasets == ["a", "b"]
    assert spec.inputs["wind"].interval == Interval(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None)


def test_a_spec_is_immutable() -> None:
    spec = validate_spec(spec_data())
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("time", "canonical"),
    [
        ("2020-01-01", "2020-01-01T00:00:00+00:00/2020-01-01T00:00:00+00:00"),
        ("../2020-06-01T12:00:00Z", "../2020-06-01T12:00:00+00:00"),
        ("2020-01-01T02:00:00+02:00/..", "2020-01-01T00:00:00+00:00/.."),
        ("..", None),
    ],
)
def test_times_are_kept_canonical(time: str, canonical: str | None) -> None:
    assert validate_spec(spec_data(inputs={"sst": {"dataset": "a", "time": time}})).inputs["sst"].time == canonical


def test_a_bbox_may_be_text() -> None:
    spec = validate_spec(spec_data(inputs={"sst": {"dataset": "a", "bbox": "170,-10,-170,10"}}))
    assert spec.inputs["sst"].bbox == (170, -10, -170, 10)


# Every field's checks, named in one message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "no spaces!"}, "name: expected 1 to 64 letters"),
        ({"name": "x" * 65}, "name: expected 1 to 64"),
        ({"name": 2020}, "name: Input should be a valid string"),
        ({"inputs": {}}, "inputs: Dictionary should have at least 1 item"),
        ({"inputs": {"1sst": {"dataset": "a"}}}, "inputs: input name '1sst' must be a Python identifier"),
        ({"inputs": {"class": {"dataset": "a"}}}, "input name 'class'"),
        (
            {"inputs": {"sst": {"dataset": "Odyssea"}}},
            "inputs.sst.dataset: dataset 'Odyssea' is not a plain identifier",
        ),
        (
            {"inputs": {"sst": {"dataset": "a", "time": "2020-13-01"}}},
            "inputs.sst.time: '2020-13-01' is not an RFC 3339",
        ),
        ({"inputs": {"sst": {"dataset": "a", "time": "2021-01-01/2020-01-01"}}}, "the start is after the end"),
        ({"inputs": {"sst": {"dataset": "a", "time": 2020}}}, "inputs.sst.time: expected a time interval"),
        ({"inputs": {"sst": {"dataset": "a", "bbox": [1, 2]}}}, "inputs.sst.bbox: bbox [1, 2] is not four numbers"),
        ({"inputs": {"sst": {"dataset": "a", "bbox": [0, 80, 1, 10]}}}, "latitudes must satisfy"),
        ({"inputs": {"sst": {"dataset": "a", "bbox": [True, 0, 1, 1]}}}, "inputs.sst.bbox: expected [W, S, E, N]"),
        ({"inputs": {"sst": {"dataset": "a", "area": 1}}}, "inputs.sst.area: unknown field; expected one of dataset"),
        ({"group_by": "week"}, "group_by: Input should be 'granule', 'day' or 'month' (got 'week')"),
        ({"output": {"dataset": "Bad Name"}}, "output.dataset: output dataset 'Bad Name' is not a plain identifier"),
        ({"output": {"dataset": "odyssea-l4-sst"}}, "output.dataset 'odyssea-l4-sst' is also an input"),
        ({"output": {"dataset": "x", "format": "geotiff"}}, "output.format: Input should be 'netcdf' or 'zarr'"),
        ({"retries": 11}, "retries: Input should be less than or equal to 10 (got 11)"),
        ({"retries": -1}, "retries: Input should be greater than or equal to 0"),
        ({"retries": "2"}, "retries: Input should be a valid integer"),
        ({"retries": True}, "retries: Input should be a valid integer"),
        ({"resources": {"memory_mb": 100_000}}, "resources.memory_mb: Input should be less than or equal to 65536"),
        ({"resources": {"timeout_seconds": 49 * 3600}}, "resources.timeout_seconds: Input should be less than"),
        ({"resources": {"gpus": 1}}, "resources.gpus: unknown field; expected one of memory_mb, cpu_seconds"),
        ({"parameters": {"threshold": float("nan")}}, "parameters: must be plain JSON values"),
        ({"parameters": {"day": dt.date(2020, 1, 1)}}, "parameters: must be plain JSON values (quote dates"),
        ({"parameters": [1]}, "parameters: Input should be a valid dictionary"),
        ({"follow": "yes"}, "follow: Input should be a valid boolean"),
        ({"colour": "red"}, "colour: unknown field; expected one of name, inputs, group_by, processor"),
        ({"name": None, "output": None}, "name: required; output: required"),
    ],
)
def test_each_field_is_checked_with_a_message_naming_it(changes: dict[str, Any], expected: str) -> None:
    detail = problem(**changes)
    assert detail.startswith("spec is not a valid campaign spec: ")
    assert expected in detail


def test_every_problem_is_reported_at_once() -> None:
    detail = problem(name="bad name", retries=99, group_by="year")
    assert "name:" in detail and "retries:" in detail and "group_by:" in detail


# Processors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nephelae.processors:sst_anomaly", ProcessorRef("builtin", "nephelae.processors", "sst_anomaly")),
        ("nephelae.processors.fluxes:coare", ProcessorRef("builtin", "nephelae.processors.fluxes", "coare")),
        ("anomaly.py:process", ProcessorRef("script", "anomaly.py", "process")),
        ("./scripts/v2.1/anomaly.py:process", ProcessorRef("script", "scripts/v2.1/anomaly.py", "process")),
    ],
)
def test_processor_forms(text: str, expected: ProcessorRef) -> None:
    assert validate_spec(spec_data(processor=text)).processor == expected


@pytest.mark.parametrize(
    ("processor", "expected"),
    [
        ("os:system", "'os' is not a built-in processor module: built-ins live under nephelae.processors"),
        ("nephelae.processorsx:f", "is not a built-in processor module"),
        ("nephelae.db:upgrade", "is not a built-in processor module"),
        ("nephelae.processors._private:f", "is not a dotted module name"),
        ("nephelae.processors:_private", "'_private' is not a public Python function name"),
        ("anomaly.py:not-a-name", "is not a public Python function name"),
        ("anomaly", "expected 'nephelae.processors.MODULE:function'"),
        (42, "expected 'nephelae.processors.MODULE:function'"),
        ("../alice/anomaly.py:process", "script path '../alice/anomaly.py' must be relative to your workspace"),
        ("/etc/anomaly.py:process", "must be relative to your workspace"),
        ("scripts/../../x.py:process", "must be relative to your workspace"),
        (".hidden/x.py:process", "must be relative"),
        ("C:/x.py:process", "must be relative"),
        ({"command": []}, "a command processor is {command: [program, argument, ...]}"),
        ({"command": "run.sh"}, "a command processor is"),
        ({"command": ["run"], "shell": True}, "a command processor is"),
        ({"command": ["run", 3]}, "strings without NUL"),
        ({"command": ["run", "a\x00b"]}, "strings without NUL"),
        ({"command": ["/bin/sh", "-c", "x"]}, "program path '/bin/sh' must be relative to your workspace"),
        ({"command": ["rm -rf", "x"]}, "program 'rm -rf' must be a program name"),
        ({"command": ["run", "{input.sst.__class__}"]}, "is not {input.ALIAS}, {output} or {parameters.NAME}"),
        ({"command": ["run", "{output!r}"]}, "is not {input.ALIAS}"),
        ({"command": ["run", "{output:>10}"]}, "is not {input.ALIAS}"),
        ({"command": ["run", "{home}"]}, "is not {input.ALIAS}"),
        ({"command": ["run", "{output"]}, "has unbalanced braces"),
        ({"command": ["run", "{input.wind}"]}, "processor: {input.wind} names no input of this spec (known: sst)"),
        ({"command": ["run", "{parameters.k}"]}, "{parameters.k} names no parameters of this spec"),
    ],
)
def test_bad_processors_are_refused(processor: object, expected: str) -> None:
    assert expected in problem(processor=processor)


def test_command_processors_keep_their_argv_and_run_workspace_programs_by_path() -> None:
    spec = validate_spec(
        spec_data(
            processor={"command": ["bin/run.sh", "--in", "{input.sst}", "--out={output}", "{{literal}}"]},
            parameters={"k": 1},
        )
    )
    processor = spec.processor
    assert processor.kind == "command"
    assert processor.argv == ("./bin/run.sh", "--in", "{input.sst}", "--out={output}", "{{literal}}")
    assert processor.workspace_path == PurePosixPath("bin/run.sh")
    assert spec.document()["processor"] == {"command": list(processor.argv)}
    assert validate_spec(spec.document()) == spec
    assert parse_processor({"command": ["python3", "x.py"]}).workspace_path is None


def test_processor_identity_and_workspace_path() -> None:
    assert parse_processor("nephelae.processors:f").identity == "builtin:nephelae.processors:f"
    assert parse_processor("nephelae.processors:f").workspace_path is None
    script = parse_processor("s/a.py:process")
    assert script.identity == "script:s/a.py:process" and script.workspace_path == PurePosixPath("s/a.py")
    assert parse_processor({"command": ["run", "é"]}).identity == 'command:["run", "é"]'


def test_a_hand_made_processor_is_checked_again() -> None:
    assert "is not a built-in" in problem(processor=ProcessorRef("builtin", "os", "system"))


# Placeholders


def test_render_command_substitutes_placeholders_without_format() -> None:
    processor = parse_processor(
        {"command": ["run", "{input.sst}", "--wind={input.wind}", "{output}", "-k", "{parameters.k}", "{{x}}"]}
    )
    argv = render_command(processor, {"sst": ["/a/1.nc", "/a/2.nc"], "wind": ["/w/1.nc"]}, "/out/t.nc", {"k": "v"})
    assert argv == ["run", "/a/1.nc", "/a/2.nc", "--wind=/w/1.nc", "/out/t.nc", "-k", "v", "{x}"]


def test_render_command_writes_non_text_parameters_as_json_and_empty_inputs_as_nothing() -> None:
    processor = parse_processor({"command": ["run", "{input.wind}", "{parameters.levels}", "{parameters.on}"]})
    assert render_command(processor, {"wind": []}, "o", {"levels": [1, 2], "on": True}) == ["run", "[1, 2]", "true"]


def test_a_placeholder_inside_an_argument_needs_exactly_one_granule() -> None:
    processor = parse_processor({"command": ["run", "--in={input.sst}"]})
    with pytest.raises(InvalidInput, match="has 2 granules"):
        render_command(processor, {"sst": ["a", "b"]}, "o", {})


# The document door


def test_aliases_are_refused_so_no_billion_laughs() -> None:
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
    with pytest.raises(InvalidInput, match=r"aliases \(\*name\) are not allowed"):
        parse_spec(bomb)


@pytest.mark.parametrize(
    ("text", "filename", "expected"),
    [
        ("name: a\nname: b\n", "spec.yaml", "key 'name' appears twice"),
        ('{"name": "a", "name": "b"}', "spec.json", "a key appears twice"),
        ("name: [unclosed\n", "spec.yaml", "spec.yaml is not valid YAML"),
        ("{name: a}", "spec.json", "spec.json is not valid JSON"),
        ("- a\n- b\n", "spec.yaml", "must be a mapping with name, inputs, processor and output"),
        ("", "spec.yaml", "must be a mapping"),
        ("[" * 5000 + "]" * 5000, "spec.yaml", "not valid YAML"),
        ("name: " + "[" * 40 + "]" * 40, "spec.yaml", "nested more than 32 levels"),
        ('{"parameters": ' + "[" * 5000 + "]" * 5000 + "}", "spec.json", "not valid JSON"),
    ],
)
def test_bad_documents_are_refused_clearly(text: str, filename: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(text, filename=filename)


def test_large_and_non_text_documents_are_refused() -> None:
    with pytest.raises(InvalidInput, match="larger than 256 kB"):
        parse_spec("#" * (MAX_SPEC_BYTES + 1))
    with pytest.raises(InvalidInput, match="not UTF-8"):
        parse_spec(b"name: \xff\xfe")


def test_yaml_dates_stay_text_so_the_field_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"inputs\.sst\.time: '2020-02-30'"):
        parse_spec(CONTRACT.replace("2020-01-01/2020-12-31", "2020-02-30"))
    assert yaml.safe_load("d: 2020-01-01")["d"] == dt.date(2020, 1, 1)  # what plain safe_load would have done


# Checks for the service


def test_the_output_dataset_must_be_new_or_the_submitters() -> None:
    check_output_owner("alice-out", existing_owner=None, exists=False, submitter="alice")
    check_output_owner("alice-out", existing_owner="alice", exists=True, submitter="alice")
    with pytest.raises(Conflict, match="already exists and is not yours"):
        check_output_owner("odyssea", existing_owner=None, exists=True, submitter="alice")


def test_the_spec_model_has_a_json_schema_for_the_api() -> None:
    schema = CampaignSpec.model_json_schema()
    assert {"name", "inputs", "processor", "output"} <= set(schema["required"])
