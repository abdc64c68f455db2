"""Workflows as one spooled DAGMan job: DAG file, node submit files, tracking, rescue.

The DAGMan job is submitted by hand (``Submit.from_dag`` stamps the bindings' version
and copies the host's ``CONDOR_CONFIG``): a scheduler-universe job running the pool's
``condor_dagman`` in its spool directory, which receives the DAG, the node submit
files, the payload and the workflow inputs as its input sandbox. Node jobs run with
that directory as their ``initialdir``, so a node's outputs land next to the DAG and
are the next node's ``transfer_input_files``: data between nodes never leaves the
pool. Retrieving the DAGMan job when it ends brings back every node output, the node
status file, ``*.dagman.out`` and any rescue DAG.

Node submit files are built by :func:`~gproc.wrappers.htcondor.submit.job_description`,
the same code as single tasks (every value quoted or checked there), then adapted:
relative executable and inputs, node-specific stdout/stderr, no ``leave_in_queue``
(node jobs are not spooled), and ``GprocWorkflowId``/``GprocNode``/``GprocMeta``
instead of ``GprocTaskId``. DAG node names are checked against ``DAG_NODE_RE``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import classad2
import htcondor2

from gproc.wrappers.base import JobState, WmsRejected, WmsUnavailable
from gproc.wrappers.dag_base import (
    DAG_NODE_RE,
    DagNode,
    DagRun,
    DagRunner,
    DagSpec,
    NodeJob,
    NodeReport,
    NodeStatus,
)
from gproc.wrappers.htcondor import client
from gproc.wrappers.htcondor.states import STATE_ATTRS, job_info
from gproc.wrappers.htcondor.submit import (
    ACCOUNTING_RE,
    LEAVE_IN_QUEUE,
    SubmitValueError,
    checked_instance,
    checked_path,
    checked_sandbox_name,
    classad_string,
    description_text,
    job_description,
    quote_arguments,
    quote_environment,
)

DAG_FILE = "wf.dag"
PROXY_FILE = "x509up.pem"  # the owner's delegated proxy, shipped with the DAG
STATUS_FILE = "wf.status"
DAGMAN_OUT = "wf.dag.dagman.out"
RESCUE_RE = re.compile(r"^wf\.dag\.rescue([0-9]{3})$")
ATTRS = [
    *STATE_ATTRS,
    "GlobalJobId",
    "ClusterId",
    "ProcId",
    "GprocWorkflowId",
    "GprocAttempt",
    "DAGNodeName",
    "DAGManJobId",
]
_UNREACHABLE = ("connect", "locate", "timed out", "timeout", "refused", "no route", "reset")

# DAGMan's node status codes (NodeStatus in the node status file).
NODE_STATUS_TABLE: dict[int, NodeStatus] = {
    0: NodeStatus.WAITING,  # STATUS_NOT_READY
    1: NodeStatus.READY,
    2: NodeStatus.QUEUED,  # PRERUN
    3: NodeStatus.QUEUED,  # SUBMITTED
    4: NodeStatus.QUEUED,  # POSTRUN
    5: NodeStatus.DONE,
    6: NodeStatus.FAILED,  # STATUS_ERROR
    7: NodeStatus.FUTILE,
}


@contextmanager
def _errors(what: str, rejectable: bool = False) -> Iterator[None]:
    try:
        yield
    except SubmitValueError as exc:
        raise WmsRejected(f"{what}: {exc}") from exc
    except (
        htcondor2.HTCondorException,
        classad2.ClassAdException,
        OSError,
        RuntimeError,
        ValueError,
    ) as exc:
        text = str(exc).lower()
        if rejectable and not any(w in text for w in _UNREACHABLE):
            raise WmsRejected(f"{what} refused by HTCondor: {exc}") from exc
        raise WmsUnavailable(f"{what}: HTCondor unreachable or failing: {exc}") from exc


def _set(values: Iterable[str]) -> str:
    return "{" + ", ".join(classad2.quote(v) for v in values) + "}"


# ---- files ---------------------------------------------------------------------------
def node_description(node: DagNode, instance: str, run_dir: Path) -> dict[str, str]:
    """The submit description of one node (see the module docstring)."""
    if not DAG_NODE_RE.fullmatch(node.name):
        raise SubmitValueError(f"DAG node name {node.name!r} is not allowed")
    desc = job_description(node.job, instance, run_dir)
    for key in ("initialdir", "leave_in_queue", "MY.GprocTaskId"):
        desc.pop(key, None)
    desc["executable"] = checked_sandbox_name(node.job.executable.name)
    names = [checked_sandbox_name(p.name) for p in node.job.input_files]
    if node.job.x509_proxy is not None:
        _proxy_as_file(desc, node)
        names.append(PROXY_FILE)
    if names:
        desc["transfer_input_files"] = ",".join(names)
    desc["output"] = f"{node.name}.out"
    desc["error"] = f"{node.name}.err"
    desc["MY.GprocWorkflowId"] = classad_string(node.job.task_id)
    desc["MY.GprocNode"] = classad_string(node.name)
    desc["MY.GprocMeta"] = classad_string(node.meta_json)
    return desc


def _proxy_as_file(desc: dict[str, str], node: DagNode) -> None:
    """The owner's proxy for a node job: the copy next to the DAG (see
    :meth:`HTCondorDagRunner.write`) as an input file, named by ``X509_USER_PROXY``.

    Not ``x509userproxy``: DAGMan submits node jobs with that path made absolute, and
    then the shadow sends the file by X.509 delegation (FileTransfer delegates the
    file whose name equals the job's ``x509userproxy``; only ``DELEGATE_JOB_GSI_
    CREDENTIALS`` in the pool's configuration turns that off), which fails against
    HTCondor 23.9 daemons ("put_x509_delegation(): delegation failed"), so the job
    would never start. Spooled single tasks escape it because the schedd renames
    their proxy at spooling."""
    for key in ("x509userproxy", "delegate_job_GSI_credentials"):
        desc.pop(key, None)
    desc["environment"] = quote_environment({**node.job.environment, "X509_USER_PROXY": PROXY_FILE})


def dag_text(nodes: Sequence[DagNode], status_interval_s: int) -> str:
    """The DAG file: one JOB per node, RETRY, PARENT/CHILD, the node status file."""
    lines = []
    known = set()
    for node in nodes:
        if not DAG_NODE_RE.fullmatch(node.name) or node.name in known:
            raise SubmitValueError(f"DAG node name {node.name!r} is not allowed or repeated")
        known.add(node.name)
        lines.append(f"JOB {node.name} {node.name}.sub")
        if node.retry:
            lines.append(f"RETRY {node.name} {int(node.retry)}")
    for node in nodes:
        for parent in node.parents:
            if parent not in known:
                raise SubmitValueError(f"node {node.name}: unknown parent {parent!r}")
            lines.append(f"PARENT {parent} CHILD {node.name}")
    lines.append(f"NODE_STATUS_FILE {STATUS_FILE} {int(status_interval_s)} ALWAYS-UPDATE")
    return "\n".join(lines) + "\n"


def dagman_config(scan_interval_s: int) -> dict[str, str]:
    """Per-DAG configuration, as the DAGMan job's environment: short scan intervals make
    chains of small nodes quick. A per-DAG configuration file is not used: with a
    ``CONFIG wf.config`` line in the DAG, or ``-config wf.config`` on condor_dagman's
    command line, the spooled condor_dagman 23.9 started directly (not through
    condor_submit_dag) runs with the defaults (its dagman.out shows
    ``DAGMAN_USER_LOG_SCAN_INTERVAL setting: 5``), and an absolute path into the spool
    directory is only known once the schedd has assigned the cluster, after the
    description is submitted."""
    return {
        "_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL": str(int(scan_interval_s)),
        "_CONDOR_DAGMAN_SUBMIT_DELAY": "0",
        "_CONDOR_DAGMAN_MAX_SUBMITS_PER_INTERVAL": "500",
    }


def parse_node_status(text: str) -> list[NodeReport]:
    """Node lines of a DAGMan node status file (a sequence of ClassAds)."""
    reports = []
    for ad in classad2.parseAds(text):
        if ad.get("Type") != "NodeStatus":
            continue
        code = ad.get("NodeStatus")
        status = NODE_STATUS_TABLE.get(code) if isinstance(code, int) else None
        if status is None:
            continue
        retries = ad.get("RetryCount", 0)
        reports.append(
            NodeReport(
                node=str(ad.get("Node", "")),
                status=status,
                detail=str(ad.get("StatusDetails", "")),
                retries=retries if isinstance(retries, int) else 0,
            )
        )
    return reports


class HTCondorDagRunner(DagRunner):
    """Workflows of one gproc instance as DAGMan jobs on one schedd."""

    def __init__(
        self,
        instance: str,
        *,
        schedd_name: str | None = None,
        collector: str | None = None,
        dagman: Path = Path("/usr/bin/condor_dagman"),
        scan_interval_s: int = 1,
        status_interval_s: int = 5,
        history_limit: int = 20000,
        client_config: Path | None = None,
    ) -> None:
        """``client_config``: the ``CONDOR_CONFIG`` made this process's before each
        collector contact (see :mod:`.client`); ``None``: whatever is active."""
        self.instance = checked_instance(instance)
        self.schedd_name = schedd_name
        self.collector = collector
        self.dagman = Path(checked_path(dagman))
        self.scan_interval_s = scan_interval_s
        self.status_interval_s = status_interval_s
        self.history_limit = history_limit
        self.client_config = client_config
        self._schedd: htcondor2.Schedd | None = None

    # ---- plumbing
    def _get_schedd(self) -> htcondor2.Schedd:
        if self._schedd is None:
            with _errors("locating the schedd"):
                coll = client.collector(self.collector, self.client_config)
                self._schedd = htcondor2.Schedd(
                    coll.locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                )
        return self._schedd

    @contextmanager
    def _call(self, what: str, rejectable: bool = False) -> Iterator[htcondor2.Schedd]:
        schedd = self._get_schedd()
        try:
            with _errors(what, rejectable):
                yield schedd
        except WmsUnavailable:
            self._schedd = None
            raise

    def _mine(self, ids: Sequence[str]) -> str:
        return (
            f"GprocInstance == {classad2.quote(self.instance)} && "
            f"member(GprocWorkflowId, {_set(ids)})"
        )

    # ---- submit
    def write(self, spec: DagSpec) -> list[Path]:
        """The DAG, its configuration and the node submit files in ``spec.run_dir``."""
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        written = self._proxy(spec)
        for node in spec.nodes:
            desc = node_description(node, self.instance, spec.run_dir)
            path = spec.run_dir / f"{node.name}.sub"
            path.write_text(description_text(desc))
            written.append(path)
        (spec.run_dir / DAG_FILE).write_text(dag_text(spec.nodes, self.status_interval_s))
        written.append(spec.run_dir / DAG_FILE)
        return written

    @staticmethod
    def _proxy(spec: DagSpec) -> list[Path]:
        """The owner's delegated proxy, copied (0600) next to the DAG: DAGMan submits the
        node jobs from its spool directory, where this copy arrives with the DAG."""
        proxies = {n.job.x509_proxy for n in spec.nodes if n.job.x509_proxy is not None}
        if not proxies:
            return []
        if len(proxies) > 1:
            raise SubmitValueError("the nodes of one DAG name different proxies")
        target = spec.run_dir / PROXY_FILE
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Path(checked_path(proxies.pop())).read_bytes())
        return [target]

    def dagman_description(self, spec: DagSpec, files: Sequence[Path]) -> dict[str, str]:
        args = [
            "-f",
            "-l",
            ".",
            "-Lockfile",
            f"{DAG_FILE}.lock",
            "-Dag",
            DAG_FILE,
            "-AllowVersionMismatch",
            "-AutoRescue",
            "1",
            "-dagman",
            str(self.dagman),
        ]
        names = [Path(checked_path(f)).name for f in files]
        if len(set(names)) != len(names):
            raise SubmitValueError(f"files of the DAG share a base name: {sorted(names)}")
        desc = {
            "universe": "scheduler",
            "executable": str(self.dagman),
            "transfer_executable": "false",
            "arguments": quote_arguments(args),
            "environment": quote_environment(
                {
                    "_CONDOR_DAGMAN_LOG": DAGMAN_OUT,
                    "_CONDOR_MAX_DAGMAN_LOG": "0",
                    **dagman_config(self.scan_interval_s),
                }
            ),
            "initialdir": checked_path(spec.run_dir),
            "output": "dagman.stdout",
            "error": "dagman.stderr",
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": ",".join(checked_path(f) for f in files),
            "leave_in_queue": LEAVE_IN_QUEUE,
            # as condor_submit_dag does: removing the DAGMan job removes its node jobs
            "MY.OtherJobRemoveRequirements": '"DAGManJobId =?= $(Cluster)"',
            "MY.GprocWorkflowId": classad_string(spec.workflow_id),
            "MY.GprocInstance": classad_string(self.instance),
            "MY.GprocAttempt": str(int(spec.attempt)),
        }
        if spec.accounting_group is not None:
            if not ACCOUNTING_RE.fullmatch(spec.accounting_group):
                raise SubmitValueError(f"accounting group {spec.accounting_group!r} not allowed")
            desc["accounting_group"] = spec.accounting_group
        return desc

    def submit(self, spec: DagSpec) -> str:
        written = self.write(spec)
        desc = self.dagman_description(spec, [*written, *spec.files])
        with self._call("submitting the DAGMan job", rejectable=True) as schedd:
            result = schedd.submit(htcondor2.Submit(desc), count=1, spool=True)
        cluster = result.cluster()
        try:
            with self._call("uploading the DAG") as schedd:
                schedd.spool(result)
        except WmsUnavailable:
            self._drop(cluster)
            raise
        with self._call("reading the DAGMan job id") as schedd:
            ads = schedd.query(f"ClusterId == {int(cluster)}", ["GlobalJobId"])
        if not ads:
            raise WmsUnavailable(f"DAGMan job {cluster} not found after submission")
        return str(ads[0]["GlobalJobId"])

    def _drop(self, cluster: int) -> None:
        try:
            with self._call("removing a half-submitted DAG") as schedd:
                schedd.act(
                    htcondor2.JobAction.Remove,
                    f"ClusterId == {int(cluster)}",
                    ("gproc: DAG upload failed", 0),
                )
        except WmsUnavailable:
            pass

    # ---- lookups
    def _ads(
        self, ids: Sequence[str], extra: str, since: datetime | None
    ) -> list[Mapping[str, Any]]:
        if not ids:
            return []
        constraint = f"{self._mine(ids)} && {extra}"
        with self._call("querying the queue") as schedd:
            queue = list(schedd.query(constraint, ATTRS))
        seen = {ad.get("GlobalJobId") for ad in queue}
        with self._call("querying the job history") as schedd:
            # the history is read newest first: stop at what left the queue before ``since``
            stop = f"EnteredCurrentStatus < {int(since.timestamp())}" if since else None
            history = schedd.history(constraint, ATTRS, match=self.history_limit, since=stop)
            queue += [ad for ad in history if ad.get("GlobalJobId") not in seen]
        return queue

    def find(self, workflow_ids: Iterable[str], since: datetime | None = None) -> dict[str, DagRun]:
        out: dict[str, DagRun] = {}
        ids = list(dict.fromkeys(workflow_ids))
        for ad in self._ads(ids, "DAGManJobId =?= undefined", since):
            wid = str(ad.get("GprocWorkflowId"))
            attempt = int(ad.get("GprocAttempt", 0))
            if wid not in out or attempt > out[wid].attempt:
                out[wid] = DagRun(wid, attempt, job_info(ad))
        return out

    def node_jobs(
        self, workflow_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, list[NodeJob]]:
        out: dict[str, list[NodeJob]] = {}
        ids = list(dict.fromkeys(workflow_ids))
        for ad in self._ads(ids, "DAGManJobId =!= undefined", since):
            wid = str(ad.get("GprocWorkflowId"))
            info = job_info(ad)
            if info.state == JobState.UNKNOWN:
                continue
            out.setdefault(wid, []).append(
                NodeJob(wid, str(ad.get("DAGNodeName", "")), info, str(ad.get("DAGManJobId")))
            )
        for jobs in out.values():
            jobs.sort(key=lambda j: (j.job.submitted_at is None, j.job.submitted_at, j.job.job_id))
        return out

    # ---- results
    def retrieve(self, job_id: str, run_dir: Path) -> list[Path]:
        constraint = f"GlobalJobId == {classad2.quote(job_id)}"
        with self._call(f"retrieving {job_id}", rejectable=True) as schedd:
            schedd.retrieve(constraint)
        return sorted(p for p in run_dir.iterdir() if p.is_file())

    def node_reports(self, run_dir: Path) -> list[NodeReport]:
        path = run_dir / STATUS_FILE
        if not path.is_file():
            return []
        return parse_node_status(path.read_text(errors="replace"))

    def rescue_file(self, run_dir: Path) -> Path | None:
        found = sorted(p for p in run_dir.iterdir() if RESCUE_RE.fullmatch(p.name))
        return found[-1] if found else None

    def log_files(self, run_dir: Path) -> dict[str, Path]:
        logs = {"dagman": run_dir / DAGMAN_OUT}
        for path in sorted(run_dir.glob("n*_*.out")) + sorted(run_dir.glob("n*_*.err")):
            logs[path.name] = path
        return {k: v for k, v in logs.items() if v.is_file()}

    # ---- control
    def _act(
        self, action: Any, job_ids: Sequence[str], reason: str | None, extra: str = ""
    ) -> None:
        if not job_ids:
            return
        constraint = (
            f"GprocInstance == {classad2.quote(self.instance)} && "
            f"member(GlobalJobId, {_set(job_ids)}){extra}"
        )
        with self._call(f"{action.name} of DAGMan jobs", rejectable=True) as schedd:
            schedd.act(action, constraint, None if reason is None else (reason, 0))

    def cancel(self, job_ids: Sequence[str], reason: str) -> None:
        self._act(htcondor2.JobAction.Remove, job_ids, reason)

    def forget(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        constraint = (
            f"GprocInstance == {classad2.quote(self.instance)} && "
            f"member(GlobalJobId, {_set(job_ids)})"
        )
        with self._call("forgetting DAGMan jobs") as schedd:
            schedd.edit(constraint, "GprocRetrieved", classad2.ExprTree("true"))
            schedd.act(
                htcondor2.JobAction.Remove,
                f"({constraint}) && JobStatus == 4",
                ("gproc: output retrieved", 0),
            )
            schedd.act(
                htcondor2.JobAction.RemoveX,
                f"({constraint}) && JobStatus == 3",
                ("gproc: forgotten", 0),
            )
