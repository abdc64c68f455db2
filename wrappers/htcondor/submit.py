"""Build HTCondor submit descriptions from :class:`JobSpec` without text injection.

The bindings serialise a ``Submit`` dict to submit-language text
(``key = value`` lines) and condor_submit's macro expander then runs over every
value. So each value placed here is either produced by a quoting function
below or checked against a strict pattern:

* newlines, carriage returns, NUL and the item-data separator are refused;
* ``$`` becomes ``$(DOLLAR)`` (expanded once, back to ``$``), so ``$(Owner)``,
  ``$ENV(...)`` and friends arrive verbatim;
* ``$$`` is refused: the schedd expands ``$$(...)`` at match time, in any
  job attribute, and submit offers no escape for it;
* ClassAd strings are quoted by ``classad2.quote``; arguments and environment
  use the new (double-quoted) syntax with ``''`` / ``""`` doubling.

Outputs: ``transfer_output_files`` is deliberately not set. HTCondor holds a
job (code 12) when a listed file is missing, which hides the job's exit code;
without it every file the job creates comes back, and retrieval keeps only the
names recorded in ``GprocOutputs`` (plus stdout/stderr).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import classad2

from gproc.wrappers.base import JobSpec

STDOUT_NAME = "_gproc.out"
STDERR_NAME = "_gproc.err"

INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ACCOUNTING_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$")
# Host paths go into comma- and space-separated lists: keep them plain.
PATH_RE = re.compile(r"^/[A-Za-z0-9_./+@=:-]{0,1023}$")
SANDBOX_NAME_RE = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+=-]{0,254}$")
_FORBIDDEN = ("\n", "\r", "\x00", "\x1f")

# Completed (and removed) jobs stay in the queue until gproc says their output
# is safe (forget sets GprocRetrieved): spooled output lives in the schedd.
LEAVE_IN_QUEUE = "(JobStatus == 4 || JobStatus == 3) && (GprocRetrieved =!= true)"


class SubmitValueError(ValueError):
    """A value cannot be placed safely in a submit description."""


def neutralise(value: str) -> str:
    """``value`` made inert for the submit-language macro expander."""
    for bad in _FORBIDDEN:
        if bad in value:
            raise SubmitValueError(f"control character {bad!r} not allowed in {value!r}")
    if "$$" in value:
        raise SubmitValueError(f"'$$' not allowed (match-time macro) in {value!r}")
    return value.replace("$", "$(DOLLAR)")


def _quote_word(word: str) -> str:
    """One argument / environment value in the new syntax (inside the outer "...")."""
    word = word.replace('"', '""')
    if word == "" or any(c.isspace() or c == "'" for c in word):
        return "'" + word.replace("'", "''") + "'"
    return word


def quote_arguments(args: Sequence[str]) -> str:
    """``arguments`` value in the new syntax; each element arrives as one argv entry."""
    for arg in args:
        if not isinstance(arg, str):
            raise SubmitValueError(f"argument {arg!r} is not a string")
        neutralise(arg)  # refuse before quoting, so messages show the user's value
    return neutralise('"' + " ".join(_quote_word(a) for a in args) + '"')


def quote_environment(env: Mapping[str, str]) -> str:
    """``environment`` value in the new syntax, names validated."""
    parts = []
    for name, value in env.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise SubmitValueError(f"environment variable name {name!r} is not allowed")
        neutralise(value)
        parts.append(f"{name}=" + _quote_word(value))
    return neutralise('"' + " ".join(parts) + '"')


def classad_string(value: str) -> str:
    """A ClassAd string literal for ``value``, safe as a submit value."""
    if "\x00" in value:
        raise SubmitValueError("NUL not allowed in a ClassAd string")
    return neutralise(classad2.quote(value))


def checked_instance(instance: str) -> str:
    if not INSTANCE_RE.fullmatch(instance):
        raise SubmitValueError(f"instance name {instance!r} is not allowed")
    return instance


def checked_path(path: Path) -> str:
    text = str(path)
    if not PATH_RE.fullmatch(text) or "/../" in text + "/":
        raise SubmitValueError(f"path {text!r} is not an absolute plain path")
    return text


def checked_sandbox_name(name: str) -> str:
    if not SANDBOX_NAME_RE.fullmatch(name) or name in (STDOUT_NAME, STDERR_NAME):
        raise SubmitValueError(f"sandbox file name {name!r} is not allowed")
    return name


def label_attributes(labels: Mapping[str, str]) -> dict[str, str]:
    """``MY.Gproc<Name>`` entries for the user's labels."""
    out = {}
    for name, value in labels.items():
        if not LABEL_RE.fullmatch(name):
            raise SubmitValueError(f"label name {name!r} must match {LABEL_RE.pattern}")
        if not isinstance(value, str):
            raise SubmitValueError(f"label {name!r} value must be a string")
        out[f"MY.Gproc{name}"] = classad_string(value)
    return out


def _input_files(spec: JobSpec) -> str:
    paths = [checked_path(p) for p in spec.input_files]
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise SubmitValueError(f"input files share a base name: {names}")
    for name in names:
        checked_sandbox_name(name)
    return ",".join(paths)


def _resources(spec: JobSpec) -> dict[str, str]:
    values = (spec.request_cpus, spec.request_memory_mb, spec.request_disk_mb, spec.attempt)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise SubmitValueError(f"cpus/memory/disk/attempt must be positive integers: {values}")
    return {
        "request_cpus": str(spec.request_cpus),
        "request_memory": str(spec.request_memory_mb),  # MiB
        "request_disk": str(spec.request_disk_mb * 1024),  # KiB
    }


def _optional(spec: JobSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.accounting_group is not None:
        if not ACCOUNTING_RE.fullmatch(spec.accounting_group):
            raise SubmitValueError(f"accounting group {spec.accounting_group!r} is not allowed")
        out["accounting_group"] = spec.accounting_group
    if spec.accounting_user is not None:
        if not ACCOUNTING_RE.fullmatch(spec.accounting_user):
            raise SubmitValueError(f"accounting user {spec.accounting_user!r} is not allowed")
        out["accounting_group_user"] = spec.accounting_user
    if spec.x509_proxy is not None:
        out["x509userproxy"] = checked_path(spec.x509_proxy)
        # copy the proxy file with the sandbox: X.509 delegation on spool fails with
        # HTCondor 23.9 daemons ("X509Credential::Request() failed")
        out["delegate_job_GSI_credentials"] = "False"
    if spec.environment:
        out["environment"] = quote_environment(spec.environment)
    if spec.input_files:
        out["transfer_input_files"] = _input_files(spec)
    if spec.output_files:
        names = [checked_sandbox_name(n) for n in spec.output_files]
        out["MY.GprocOutputs"] = classad_string(",".join(names))
    return out


def job_description(
    spec: JobSpec, instance: str, initialdir: Path, *, spooled: bool = True
) -> dict[str, str]:
    """The submit description of one job, as the dict handed to ``htcondor2.Submit``.

    ``initialdir`` is the host directory where the output lands: retrieved from the
    spool (``spooled``), or written there by the schedd's shadow when the job ends
    (shared-filesystem mode, ``GprocShared``; the job leaves the queue at once).
    """
    desc = {
        "universe": "vanilla",
        "executable": checked_path(spec.executable),
        "arguments": quote_arguments(spec.arguments),
        "initialdir": checked_path(initialdir),
        "output": STDOUT_NAME,
        "error": STDERR_NAME,
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
    }
    if spooled:
        desc["leave_in_queue"] = LEAVE_IN_QUEUE
    else:
        desc["MY.GprocShared"] = "true"
    desc["MY.GprocTaskId"] = classad_string(spec.task_id)
    desc["MY.GprocInstance"] = classad_string(checked_instance(instance))
    desc |= _resources(spec)
    desc["MY.GprocAttempt"] = str(spec.attempt)
    desc |= _optional(spec)
    desc |= label_attributes(spec.labels)
    return desc


def description_text(desc: Mapping[str, str]) -> str:
    """Submit-language text of ``desc`` (what ``describe`` shows)."""
    lines = [f"{key} = {value}" for key, value in desc.items()]
    return "\n".join(lines) + "\nqueue\n"


def itemdata_groups(
    descs: Sequence[Mapping[str, str]],
) -> list[tuple[dict[str, str], list[dict[str, str]], list[int]]]:
    """Group descriptions for ``QUEUE ... FROM`` submission: one cluster per group.

    Descriptions with the same keys share a template; keys whose values
    differ become item variables ``gpv<N>``. Returns (template, items, indexes
    into ``descs``) per group, in order of first appearance.
    """
    by_keys: dict[tuple[str, ...], list[int]] = {}
    for i, desc in enumerate(descs):
        by_keys.setdefault(tuple(desc), []).append(i)
    groups = []
    for keys, idx in by_keys.items():
        template: dict[str, str] = {}
        varying: list[tuple[str, str]] = []
        for key in keys:
            values = {descs[i][key] for i in idx}
            if len(values) == 1:
                template[key] = next(iter(values))
            else:
                var = f"gpv{len(varying)}"
                template[key] = f"$({var})"
                varying.append((var, key))
        items = [{var: descs[i][key] for var, key in varying} for i in idx]
        groups.append((template, items, idx))
    return groups


def derived_job_ids(
    schedd_id: str | None, submitted: list[tuple[Any, list[int]]]
) -> dict[int, tuple[int, int, str]] | None:
    """{spec index: (cluster, proc, global job id)} from submit results, or None."""
    if not schedd_id:
        return None
    out = {}
    for result, idx in submitted:
        qdate = result.clusterad().get("QDate")
        if not isinstance(qdate, int) or result.num_procs() != len(idx):
            return None
        cluster, first = result.cluster(), result.first_proc()
        for n, i in enumerate(idx):
            out[i] = (cluster, first + n, f"{schedd_id}#{cluster}.{first + n}#{qdate}")
    return out
