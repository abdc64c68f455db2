"""``HTCondorWMS``: the gproc job life cycle on one HTCondor schedd (htcondor2 bindings).

Two ways to hand files to the schedd:

* spooled (the default): inputs are uploaded to the schedd after submission and
  outputs stay in the schedd's spool until :meth:`HTCondorWMS.retrieve` fetches
  them, which the bindings write into the job's submit-side ``initialdir``
  (``<sandbox_root>/<task id>`` on this host), from where they are moved to the
  caller's ``dest``. The schedd may live elsewhere (even in a chroot): no path
  is shared with it.
* shared filesystem (``shared_filesystem=True``): the schedd sees this host's
  paths (the usual submit node). Nothing is uploaded: the schedd reads the
  inputs where they are and writes the output into the job's ``initialdir``
  (``<sandbox_root>/<task id>.<attempt>``, see :mod:`.shared`) when the job ends;
  the job leaves the queue at once and retrieval is a local move.

``CONDOR_CONFIG`` (security, collector) is the caller's, or ``client_config`` (see
:mod:`.client`).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import classad2
import htcondor2

from gproc.wrappers.base import (
    TASK_ID_RE,
    JobEvent,
    JobInfo,
    JobSpec,
    JobState,
    PoolInfo,
    PoolSummary,
    SubmittedJob,
    WmsRejected,
    WmsUnavailable,
    WorkloadManager,
)
from gproc.wrappers.htcondor import client
from gproc.wrappers.htcondor.events import EventLogReader
from gproc.wrappers.htcondor.pool_summary import JOB_ATTRS, SLOT_ATTRS, job_counts, node_slots
from gproc.wrappers.htcondor.proxies import refresh_proxies
from gproc.wrappers.htcondor.shared import SharedDirs, job_dir
from gproc.wrappers.htcondor.states import STATE_ATTRS, job_info
from gproc.wrappers.htcondor.submit import (
    STDERR_NAME,
    STDOUT_NAME,
    SubmitValueError,
    checked_instance,
    checked_path,
    derived_job_ids,
    description_text,
    itemdata_groups,
    job_description,
)

JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.@:-]+#\d+\.\d+#\d+$")
MAX_LISTED_IDS = 1000  # beyond this, filter client-side instead of a huge constraint
INFO_ATTRS = [*STATE_ATTRS, "GlobalJobId", "GprocTaskId", "GprocAttempt", "ClusterId", "ProcId"]
RETRIEVE_ATTRS = ["GprocTaskId", "GprocAttempt", "GprocOutputs", "GprocShared", "JobStatus"]
_UNREACHABLE = ("connect", "locate", "timed out", "timeout", "refused", "no route", "reset")


def _unreachable(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OSError | TimeoutError) or any(w in text for w in _UNREACHABLE)


@contextmanager
def _errors(what: str, rejectable: bool = False) -> Iterator[None]:
    """Binding failures as ``WmsUnavailable`` (retry later) or ``WmsRejected``."""
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
        if rejectable and not _unreachable(exc):
            raise WmsRejected(f"{what} refused by HTCondor: {exc}") from exc
        raise WmsUnavailable(f"{what}: HTCondor unreachable or failing: {exc}") from exc


def _set(values: Iterable[str]) -> str:
    """A ClassAd list literal of strings, each quoted by classad2."""
    return "{" + ", ".join(classad2.quote(v) for v in values) + "}"


def _chunks(items: Sequence[str], size: int = MAX_LISTED_IDS) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _checked_job_ids(job_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(job_ids))
    for job_id in ids:
        if not JOB_ID_RE.fullmatch(job_id):
            raise WmsRejected(f"{job_id!r} is not an HTCondor global job id")
    return ids


def _reason(text: str | None) -> tuple[str, int] | None:
    """``act`` reason: htcondor2 25.x drops a plain ``str`` and only sends a (text, code) pair."""
    return None if text is None else (text, 0)


def _copy_proxies_on_spool() -> None:
    """Send proxies as files when spooling: the X.509 delegation handshake fails
    against HTCondor 23.9 schedds ("X509Credential::Request() failed")."""
    if str(htcondor2.param.get("DELEGATE_JOB_GSI_CREDENTIALS", "")).lower() not in ("false", "0"):
        htcondor2.param["DELEGATE_JOB_GSI_CREDENTIALS"] = "False"


def _use_prepared(desc: dict[str, str], spec: JobSpec) -> None:
    """Point a shared-filesystem description at the staged executable and proxy."""
    desc["executable"] = checked_path(spec.executable)
    if spec.x509_proxy is not None:
        desc["x509userproxy"] = checked_path(spec.x509_proxy)


def _better(new: JobInfo, old: JobInfo | None) -> bool:
    """Higher attempt wins; on a tie the earlier source (the queue) stays."""
    return old is None or (new.attempt or 0) > (old.attempt or 0)


class HTCondorWMS(WorkloadManager):
    """One gproc instance's jobs on one HTCondor schedd."""

    name = "htcondor"

    def __init__(
        self,
        instance: str,
        schedd_name: str | None = None,
        collector: str | None = None,
        event_log: Path | None = None,
        sandbox_root: Path | None = None,
        itemdata: bool = True,
        shared_filesystem: bool = False,
        job_owner: tuple[int, int] | None = None,
        client_config: Path | None = None,
    ) -> None:
        """``sandbox_root`` holds one submit-side directory per task (default: a temp dir).

        ``itemdata`` submits a batch as one cluster per job shape (``QUEUE FROM``);
        ``False`` makes one cluster per job (kept for comparison in bench/).
        ``shared_filesystem`` submits without spooling (the schedd must see the
        inputs, the executable and ``sandbox_root`` at the same paths);
        ``job_owner`` (uid, gid) is the account the schedd runs the jobs as, when
        it is not this process's (job directories are given to it).
        ``client_config``: the ``CONDOR_CONFIG`` to talk to the pool with, made this
        process's before each collector contact (a missing file is WmsUnavailable,
        so a service may start before its pool); ``None``: whatever is active.
        """
        self.instance = checked_instance(instance)
        self.schedd_name = schedd_name
        self.collector = collector
        self.client_config = client_config
        self.event_log = event_log
        root = sandbox_root or Path(tempfile.gettempdir()) / f"gproc-{instance}-sandboxes"
        self.sandbox_root = root.resolve()
        self.itemdata = itemdata
        self.shared = SharedDirs(self.sandbox_root, job_owner) if shared_filesystem else None
        self._schedd: htcondor2.Schedd | None = None
        self._schedd_id: str | None = None  # the schedd's Name, the first part of job ids
        self._ids_derived: bool | None = None  # None: not yet checked against the queue
        self._events = EventLogReader(event_log, instance) if event_log else None
        # With no cursor yet, follow the log from where it ended now, before this WMS
        # submitted anything: the events before are other jobs' (a shared pool's log
        # holds hundreds of MB; read from its start, the follower would lag behind the
        # schedd query for minutes and miss every detail of this instance's jobs).
        self._events_origin = self._events.end() if self._events else None
        self._job_ids: dict[tuple[int, int], str] = {}  # (cluster, proc) -> GlobalJobId

    # ------------------------------------------------------------ plumbing
    def _collector(self) -> htcondor2.Collector:
        return client.collector(self.collector, self.client_config)

    def _get_schedd(self) -> htcondor2.Schedd:
        if self._schedd is None:
            with _errors("locating the schedd"):
                ad = self._collector().locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                self._schedd = htcondor2.Schedd(ad)
                self._schedd_id = str(ad.get("Name") or "") or None
                self._ids_derived = None
        return self._schedd

    @contextmanager
    def _call(self, what: str, rejectable: bool = False) -> Iterator[htcondor2.Schedd]:
        """The schedd for one call; forget its address if the call cannot reach it."""
        schedd = self._get_schedd()
        try:
            with _errors(what, rejectable):
                yield schedd
        except WmsUnavailable:
            self._schedd = None
            raise

    def _mine(self) -> str:
        return f"GprocInstance == {classad2.quote(self.instance)}"

    def _remember(self, ads: Iterable[Mapping[str, Any]]) -> None:
        """Keep (cluster, proc) -> global id so events can carry job ids; bounded."""
        if len(self._job_ids) > 200_000:
            self._job_ids.clear()
        for ad in ads:
            if "GlobalJobId" in ad and "ClusterId" in ad:
                self._job_ids[(int(ad["ClusterId"]), int(ad.get("ProcId", 0)))] = ad["GlobalJobId"]

    def sandbox_dir(self, task_id: str) -> Path:
        """The submit-side directory (``initialdir``) of a task's job."""
        if not TASK_ID_RE.fullmatch(task_id):
            raise WmsRejected(f"task id {task_id!r} is not a uuid4 hex string")
        return self.sandbox_root / task_id

    # ------------------------------------------------------------ submit
    def _initialdir(self, spec: JobSpec) -> Path:
        if self.shared is not None:
            self.sandbox_dir(spec.task_id)  # validates the id
            return self.shared.job_dir(spec.task_id, spec.attempt)
        return self.sandbox_dir(spec.task_id)

    def _description(self, spec: JobSpec) -> dict[str, str]:
        with _errors(f"job description of task {spec.task_id}"):
            initialdir = self._initialdir(spec)
            return job_description(spec, self.instance, initialdir, spooled=self.shared is None)

    def describe(self, spec: JobSpec) -> str:
        return description_text(self._description(spec))

    def submit(self, specs: Sequence[JobSpec]) -> list[SubmittedJob]:
        if not specs:
            return []
        descs = [self._description(spec) for spec in specs]  # refuse bad specs first
        if self.shared is not None:
            for spec, desc in zip(specs, descs, strict=True):
                _use_prepared(desc, self._prepare(spec))
        else:
            for spec in specs:
                self.sandbox_dir(spec.task_id).mkdir(parents=True, exist_ok=True)
        if self.itemdata:
            batches = [(t, items, idx) for t, items, idx in itemdata_groups(descs)]
        else:
            batches = [(dict(d), [{}], [i]) for i, d in enumerate(descs)]
        submitted: list[tuple[Any, list[int]]] = []
        for template, items, idx in batches:
            submitted.append((self._submit_one(template, items), idx))
        return self._global_ids(specs, submitted)

    def _prepare(self, spec: JobSpec) -> JobSpec:
        assert self.shared is not None
        try:
            return self.shared.prepare(spec)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise WmsRejected(f"task {spec.task_id}: cannot read {exc.filename}") from exc
        except OSError as exc:
            raise WmsUnavailable(f"preparing the job directory of {spec.task_id}: {exc}") from exc

    def _submit_one(self, template: dict[str, str], items: list[dict[str, str]]) -> Any:
        """Submit one cluster and, when spooling, upload its inputs; the submit result."""
        spool = self.shared is None
        with self._call("submitting jobs", rejectable=True) as schedd:
            description = htcondor2.Submit(template)
            if items[0]:
                result = schedd.submit(description, spool=spool, itemdata=iter(items))
            else:
                result = schedd.submit(description, count=1, spool=spool)
        if not spool:
            return result
        if template.get("x509userproxy"):
            _copy_proxies_on_spool()
        try:
            with self._call("uploading job inputs") as schedd:
                schedd.spool(result)
        except WmsUnavailable:
            self._drop_cluster(result.cluster())
            raise
        return result

    def _drop_cluster(self, cluster: int) -> None:
        """Best effort: a cluster whose inputs never arrived would stay held forever."""
        try:
            with self._call("removing a half-submitted cluster") as schedd:
                schedd.act(
                    htcondor2.JobAction.Remove,
                    f"ClusterId == {int(cluster)}",
                    _reason("gproc: input upload failed"),
                )
        except WmsUnavailable:
            pass

    def _global_ids(
        self, specs: Sequence[JobSpec], submitted: list[tuple[Any, list[int]]]
    ) -> list[SubmittedJob]:
        """Job ids from the submit results (``<schedd>#<cluster>.<proc>#<QDate>``).

        The first batch after locating the schedd also reads them from the queue;
        the derivation is used from then on only if it gave the same ids.
        """
        derived = derived_job_ids(self._schedd_id, submitted)
        if derived is not None and self._ids_derived and self._same_qdate(derived):
            self._remember_ids(derived)
            return [SubmittedJob(s.task_id, derived[i][2]) for i, s in enumerate(specs)]
        clusters = [result.cluster() for result, _ in submitted]
        constraint = f"member(ClusterId, {{{', '.join(str(c) for c in clusters)}}})"
        with self._call("reading new job ids") as schedd:
            ads = schedd.query(constraint, ["ClusterId", "ProcId", "GlobalJobId", "GprocTaskId"])
        self._remember(ads)
        by_task = {ad["GprocTaskId"]: ad["GlobalJobId"] for ad in ads if "GprocTaskId" in ad}
        missing = [s.task_id for s in specs if s.task_id not in by_task]
        if missing:
            raise WmsUnavailable(f"submitted jobs not found in the queue for tasks {missing}")
        if derived is not None and self._ids_derived is None:
            self._ids_derived = all(
                by_task[s.task_id] == derived[i][2] for i, s in enumerate(specs)
            )
        return [SubmittedJob(s.task_id, by_task[s.task_id]) for s in specs]

    def _same_qdate(self, derived: Mapping[int, tuple[int, int, str]]) -> bool:
        """Each proc has its own QDate: a cluster whose submission crossed a second
        boundary has later procs with a later one than the cluster ad's. The last
        proc of each cluster is read (one row each) and must have the derived id;
        otherwise every id is read from the queue."""
        last: dict[int, tuple[int, str]] = {}
        for cluster, proc, job_id in derived.values():
            if proc >= last.get(cluster, (-1, ""))[0]:
                last[cluster] = (proc, job_id)
        constraint = " || ".join(
            f"(ClusterId == {c} && ProcId == {p})" for c, (p, _) in last.items()
        )
        try:
            with self._call("checking new job ids") as schedd:
                ads = schedd.query(constraint, ["GlobalJobId"])
        except WmsUnavailable:
            return False
        return {str(ad.get("GlobalJobId")) for ad in ads} == {j for _, j in last.values()}

    def _remember_ids(self, ids: Mapping[int, tuple[int, int, str]]) -> None:
        if len(self._job_ids) > 200_000:
            self._job_ids.clear()
        for cluster, proc, job_id in ids.values():
            self._job_ids[(cluster, proc)] = job_id

    # ------------------------------------------------------------ lookups
    def _lookup(
        self, key: str, wanted: list[str] | None, history_match: int
    ) -> Iterator[tuple[bool, Mapping[str, Any]]]:
        """Ads of this instance with ``key`` in ``wanted``: queue first, then history.

        Exactly one queue query; one history query only for what the queue lacks.
        """
        constraint = self._mine()
        listed = wanted is not None and len(wanted) <= MAX_LISTED_IDS
        if listed:
            constraint += f" && member({key}, {_set(wanted or [])})"
        with self._call("querying the queue") as schedd:
            queue = schedd.query(constraint, INFO_ATTRS)
        wanted_set = set(wanted) if wanted is not None else None
        found = set()
        for ad in queue:
            if wanted_set is None or ad.get(key) in wanted_set:
                found.add(ad.get(key))
                yield True, ad
        if wanted_set is not None and not (wanted_set - found):
            return
        if listed and wanted_set is not None:
            constraint = self._mine() + f" && member({key}, {_set(sorted(wanted_set - found))})"
        with self._call("querying the job history") as schedd:
            history = schedd.history(constraint, INFO_ATTRS, match=history_match)
        for ad in history:
            if wanted_set is None or ad.get(key) in wanted_set:
                yield False, ad

    def find_jobs(
        self, task_ids: Iterable[str] | None = None, history_limit: int = 10000
    ) -> dict[str, JobInfo]:
        wanted = None if task_ids is None else list(dict.fromkeys(task_ids))
        for task_id in wanted or []:
            if not TASK_ID_RE.fullmatch(task_id):
                raise WmsRejected(f"task id {task_id!r} is not a uuid4 hex string")
        if wanted == []:
            return {}
        match = history_limit if wanted is None else min(history_limit, 4 * len(wanted) + 16)
        out: dict[str, JobInfo] = {}
        for _in_queue, ad in self._lookup("GprocTaskId", wanted, match):
            info = job_info(ad)
            if info.task_id and _better(info, out.get(info.task_id)):
                out[info.task_id] = info
        return out

    def query(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        ids = _checked_job_ids(job_ids)
        if not ids:
            return {}
        out: dict[str, JobInfo] = {}
        ads = list(self._lookup("GlobalJobId", ids, len(ids)))
        self._remember(ad for _, ad in ads)
        for _in_queue, ad in ads:
            out.setdefault(str(ad["GlobalJobId"]), job_info(ad))
        for job_id in ids:
            out.setdefault(job_id, JobInfo(job_id=job_id, task_id=None, state=JobState.UNKNOWN))
        return out

    # ------------------------------------------------------------ events
    def read_events(self, cursor: str | None) -> tuple[list[JobEvent], str | None]:
        if self._events is None:
            return [], cursor
        with _errors("reading the event log"):
            return self._events.read(cursor or self._events_origin, self._job_ids)

    # ------------------------------------------------------------ output
    def retrieve(self, job_id: str, dest: Path) -> list[Path]:
        """Spooled jobs: fetch the output from the spool. Shared-filesystem jobs
        (``GprocShared``, in the queue or, once ended, in the history): the output
        is already in their job directory."""
        (job_id,) = _checked_job_ids([job_id])
        constraint = f"GlobalJobId == {classad2.quote(job_id)} && {self._mine()}"
        with self._call("looking up the job to retrieve") as schedd:
            ads = schedd.query(constraint, RETRIEVE_ATTRS)
        if not ads:
            with self._call("looking up the ended job to retrieve") as schedd:
                ads = [ad for ad in schedd.history(constraint, RETRIEVE_ATTRS, match=1)]
            if not ads or ads[0].get("GprocShared") is not True:
                raise WmsRejected(f"job {job_id} is not in the queue (forgotten or never there)")
        ad = ads[0]
        task_id = str(ad.get("GprocTaskId", ""))
        if ad.get("GprocShared") is True:
            try:
                source = job_dir(self.sandbox_root, task_id, ad.get("GprocAttempt"))
            except ValueError as exc:
                raise WmsRejected(f"job {job_id}: {exc}") from exc
            return self._collect(ad, source, dest)
        with self._call(f"retrieving the output of {job_id}", rejectable=True) as schedd:
            schedd.retrieve(constraint)
        return self._collect(ad, self.sandbox_dir(task_id), dest)

    def _collect(self, ad: Mapping[str, Any], source: Path, dest: Path) -> list[Path]:
        """Move the declared outputs from the job's initialdir to ``dest``; drop the rest."""
        names = [n for n in str(ad.get("GprocOutputs") or "").split(",") if n]
        names += [STDOUT_NAME, STDERR_NAME]
        dest.mkdir(parents=True, exist_ok=True)
        same = source.resolve() == dest.resolve()
        present = []
        for name in dict.fromkeys(names):
            if not (source / name).is_file():
                continue
            if not same:
                shutil.move(str(source / name), str(dest / name))
            present.append(dest / name)
        if not same:
            shutil.rmtree(source, ignore_errors=True)
        return present

    # ------------------------------------------------------------ actions
    def _act(self, action: Any, job_ids: Sequence[str], reason: str | None) -> None:
        ids = _checked_job_ids(job_ids)
        for chunk in _chunks(ids):
            constraint = f"{self._mine()} && member(GlobalJobId, {_set(chunk)})"
            with self._call(f"{action.name} of {len(chunk)} jobs", rejectable=True) as schedd:
                schedd.act(action, constraint, _reason(reason))

    def cancel(self, job_ids: Sequence[str], reason: str) -> None:
        self._act(htcondor2.JobAction.Remove, job_ids, reason)

    def hold(self, job_ids: Sequence[str], reason: str) -> None:
        self._act(htcondor2.JobAction.Hold, job_ids, reason)

    def release(self, job_ids: Sequence[str]) -> None:
        self._act(htcondor2.JobAction.Release, job_ids, None)

    def forget(self, job_ids: Sequence[str]) -> None:
        """Mark finished jobs retrieved; completed ones are removed, removed ones purged.

        Jobs no longer in the queue (shared-filesystem jobs leave it when they end)
        are already forgotten."""
        ids = _checked_job_ids(job_ids)
        for chunk in _chunks(ids):
            constraint = f"{self._mine()} && member(GlobalJobId, {_set(chunk)})"
            with self._call(f"forgetting {len(chunk)} jobs") as schedd:
                try:
                    schedd.edit(constraint, "GprocRetrieved", classad2.ExprTree("true"))
                except htcondor2.HTCondorException:
                    # the schedd refuses an edit matching no job: fine if none is left
                    if not schedd.query(constraint, ["ClusterId"], limit=1):
                        continue
                    raise
                schedd.act(
                    htcondor2.JobAction.Remove,
                    f"({constraint}) && JobStatus == 4",
                    _reason("gproc: output retrieved"),
                )
                schedd.act(
                    htcondor2.JobAction.RemoveX,
                    f"({constraint}) && JobStatus == 3",
                    _reason("gproc: forgotten"),
                )

    def refresh_proxy(self, job_ids: Sequence[str], proxy: Path) -> int:
        ids, path = _checked_job_ids(job_ids), Path(checked_path(proxy))
        done = 0
        for chunk in _chunks(ids):
            constraint = f"{self._mine()} && member(GlobalJobId, {_set(chunk)})"
            with self._call(f"refreshing the proxy of {len(chunk)} jobs") as schedd:
                done += refresh_proxies(schedd, constraint, path)
        return done

    # ------------------------------------------------------------ health
    def ping(self) -> PoolInfo:
        try:
            with _errors("pinging the pool"):
                coll = self._collector()
                slots = coll.query(htcondor2.AdType.Startd, projection=["Name"])
                ad = coll.locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                htcondor2.Schedd(ad).query("false", ["ClusterId"], limit=1)
            version = str(ad.get("CondorVersion", ""))
            return PoolInfo(
                True,
                self.name,
                version=version,
                slots=len(slots),
                detail=f"schedd {ad.get('Name', '?')}",
            )
        except Exception as exc:  # ping never raises
            return PoolInfo(False, self.name, detail=str(exc))

    def pool_summary(self) -> PoolSummary:
        with _errors("summarising the pool"):
            slots = self._collector().query(htcondor2.AdType.Startd, projection=SLOT_ATTRS)
        with self._call("querying the queue") as schedd:
            ads = schedd.query("true", JOB_ATTRS)
        jobs, mine = job_counts(ads, self.instance)
        return PoolSummary(node_slots(slots), jobs, mine, schedd=self._schedd_id or "")
