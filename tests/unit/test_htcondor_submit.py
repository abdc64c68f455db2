"""Submit descriptions: quoting of arguments/environment/labels and refusal of unsafe values.

Expected texts are checked against the real submit-language expander of the
bindings (``htcondor2.Submit.expand``), so ``$(DOLLAR)`` handling is proven,
not assumed.
"""

from __future__ import annotations

from pathlib import Path

import htcondor2
import pytest

from gproc.wrappers.base import JobSpec
from gproc.wrappers.htcondor.submit import (
    LEAVE_IN_QUEUE,
    SubmitValueError,
    description_text,
    itemdata_groups,
    job_description,
    label_attributes,
    quote_arguments,
    quote_environment,
)

TASK = "0123456789abcdef0123456789abcdef"


def expanded(key: str, value: str) -> str:
    return htcondor2.Submit({key: value}).expand(key)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((), '""'),
        (("plain", "x=1"), '"plain x=1"'),
        (("a b",), "\"'a b'\""),
        (("it's",), "\"'it''s'\""),
        (('say "hi"',), '"\'say ""hi""\'"'),
        (('"q"',), '"""q"""'),
        (('a "b" c',), '"\'a ""b"" c\'"'),
        (("back\\slash",), '"back\\slash"'),
        (("",), "\"''\""),
        (("tab\there",), "\"'tab\there'\""),
        (("50%", "x#y", "a;b|c"), '"50% x#y a;b|c"'),
    ],
)
def test_quote_arguments_new_syntax(args: tuple[str, ...], text: str) -> None:
    assert quote_arguments(args) == text


@pytest.mark.parametrize(
    "value", ["$(Owner)", "$ENV(HOME)", "cost $5", "$RANDOM_INTEGER(1,9)", "a$", "$"]
)
def test_dollar_macros_arrive_verbatim(value: str) -> None:
    quoted = quote_arguments([value])
    assert "$(DOLLAR)" in quoted
    # after submit-language expansion the argument text holds the value itself
    assert expanded("arguments", quoted) == quoted.replace("$(DOLLAR)", "$")
    assert value in expanded("arguments", quoted)


@pytest.mark.parametrize(
    "value", ["two\nlines", "cr\rhere", "nul\x00", "sep\x1f", "$$(Memory)", "a$$b"]
)
def test_unsafe_argument_values_are_refused(value: str) -> None:
    with pytest.raises(SubmitValueError):
        quote_arguments(["ok", value])


def test_environment_quoting_and_names() -> None:
    text = quote_environment({"A": "1", "B": "x y", "C": 'it\'s "q" $(Owner)'})
    assert text == "\"A=1 B='x y' C='it''s \"\"q\"\" $(DOLLAR)(Owner)'\""
    assert "$(Owner)" in expanded("environment", text)
    for bad in ["1A", "A-B", "A B", "", "A=B"]:
        with pytest.raises(SubmitValueError):
            quote_environment({bad: "v"})
    with pytest.raises(SubmitValueError):
        quote_environment({"A": "line\nbreak"})


def test_labels_become_quoted_gproc_attributes() -> None:
    attrs = label_attributes({"Tool": 'ndvi "v2" $(x)', "Run2": "a\\b"})
    assert attrs == {
        "MY.GprocTool": '"ndvi \\"v2\\" $(DOLLAR)(x)"',
        "MY.GprocRun2": '"a\\\\b"',
    }
    for bad in ["2x", "a_b", "a-b", "", "Tool\n"]:
        with pytest.raises(SubmitValueError):
            label_attributes({bad: "v"})


def spec(**kw: object) -> JobSpec:
    base: dict[str, object] = {"task_id": TASK, "executable": Path("/opt/tool/run.sh")}
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_job_description_fields() -> None:
    desc = job_description(
        spec(
            arguments=("in.tif", "out put.tif"),
            input_files=(Path("/data/a/in.tif"), Path("/data/b/aux.xml")),
            output_files=("out.tif",),
            request_cpus=2,
            request_memory_mb=2048,
            request_disk_mb=10,
            accounting_group="group_vo.grid",
            accounting_user="alice",
            x509_proxy=Path("/tmp/x509up_u1"),
            attempt=3,
            labels={"Tool": "ndvi"},
        ),
        "prod-1",
        Path("/srv/gproc/sandboxes") / TASK,
    )
    assert desc["MY.GprocTaskId"] == f'"{TASK}"'
    assert desc["MY.GprocInstance"] == '"prod-1"'
    assert desc["MY.GprocAttempt"] == "3"
    assert desc["MY.GprocTool"] == '"ndvi"'
    assert desc["MY.GprocOutputs"] == '"out.tif"'
    assert "transfer_output_files" not in desc
    assert desc["transfer_input_files"] == "/data/a/in.tif,/data/b/aux.xml"
    assert desc["should_transfer_files"] == "YES"
    assert desc["when_to_transfer_output"] == "ON_EXIT"
    assert desc["leave_in_queue"] == LEAVE_IN_QUEUE
    assert desc["initialdir"] == f"/srv/gproc/sandboxes/{TASK}"
    assert (desc["request_cpus"], desc["request_memory"], desc["request_disk"]) == (
        "2",
        "2048",
        "10240",
    )
    assert desc["accounting_group"] == "group_vo.grid"
    assert desc["accounting_group_user"] == "alice"
    assert desc["x509userproxy"] == "/tmp/x509up_u1"
    assert desc["arguments"] == "\"in.tif 'out put.tif'\""


@pytest.mark.parametrize(
    "kw",
    [
        {"executable": Path("relative/run.sh")},
        {"executable": Path("/opt/a b/run.sh")},
        {"input_files": (Path("/data/a,b.tif"),)},
        {"input_files": (Path("/data/$(x).tif"),)},
        {"input_files": (Path("/d1/in.tif"), Path("/d2/in.tif"))},
        {"input_files": (Path("/data/../etc/passwd"),)},
        {"output_files": ("../escape",)},
        {"output_files": ("a,b",)},
        {"output_files": ("_gproc.out",)},
        {"accounting_group": "grp; rm"},
        {"accounting_user": "a b"},
        {"request_cpus": 0},
        {"request_memory_mb": True},
        {"labels": {"bad name": "x"}},
        {"environment": {"X": "$$(Cpus)"}},
    ],
)
def test_unsafe_specs_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(SubmitValueError):
        job_description(spec(**kw), "inst", Path("/srv/sb") / TASK)


def test_bad_instance_is_refused() -> None:
    with pytest.raises(SubmitValueError):
        job_description(spec(), 'x" || true', Path("/srv/sb") / TASK)


def test_description_text_parses_back() -> None:
    desc = job_description(spec(arguments=("a b", "$(Owner)")), "inst", Path("/srv/sb") / TASK)
    text = description_text(desc)
    parsed = htcondor2.Submit(text)
    assert parsed.expand("arguments") == "\"'a b' $(Owner)\""
    assert parsed["MY.GprocTaskId"] == f'"{TASK}"'
    assert text.rstrip().endswith("queue")


def test_itemdata_groups_vary_only_differing_keys() -> None:
    t2 = "f" * 32
    descs = [
        job_description(spec(arguments=("1",)), "inst", Path("/sb") / TASK),
        job_description(spec(task_id=t2, arguments=("2",)), "inst", Path("/sb") / t2),
        job_description(spec(labels={"Tool": "x"}), "inst", Path("/sb") / TASK),
    ]
    groups = itemdata_groups(descs)
    assert [idx for _, _, idx in groups] == [[0, 1], [2]]
    template, items, _ = groups[0]
    assert template["executable"] == "/opt/tool/run.sh"
    varying = {k for k, v in template.items() if v.startswith("$(gpv")}
    assert varying == {"arguments", "initialdir", "MY.GprocTaskId"}
    var = template["MY.GprocTaskId"][2:-1]
    assert [item[var] for item in items] == [f'"{TASK}"', f'"{t2}"']
    assert groups[1][1] == [{}]


def test_trailing_newline_cannot_slip_through_patterns() -> None:
    with pytest.raises(SubmitValueError):
        label_attributes({"Tool\n": "x"})
    with pytest.raises(SubmitValueError):
        job_description(spec(), "inst\n", Path("/srv/sb") / TASK)
    with pytest.raises(ValueError):
        spec(task_id=TASK + "\n")
