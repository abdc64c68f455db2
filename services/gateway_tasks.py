"""Task data through the storage gateway: gateway inputs in, outputs to the owner's area.

Input references. A task input may name a gateway path as ``gateway:///<logical
path>`` (e.g. ``gateway:///public/s2/b04.tif``) or as the gateway HTTPS URL the
service hands out (``<service.output_url_base>/<logical path>``), so a workflow
engine can feed one task's output location straight into the next task. The URL
is percent-decoded exactly once; the path is then validated by the gateway like
any front's. The data is read with the *caller's* validated identity at
registration: a task can only use data its owner may read.

Outputs. When a job completes, the tracker hands the outputs to
:meth:`GatewayTaskData.store_outputs`, which stores them in the owner's private area
under ``<home>/<gateway.task_outputs>/<task id>/<name>`` (atomic uploads, overwritten
on resubmission; ``<name>`` is the output's label when the request gave one, see
:meth:`gproc.domain.TaskPlan.output_name`). The principal used: the task's delegated
proxy when it has one and it still validates (the owner's own credential); otherwise
the service acts for the owner with an :class:`ActingForOwner` principal (the DN and
FQANs validated at registration, vouched for by this service), which the gateway lets
create directories and write and read files in that task's output folder only
(``storage_gateway/access.py``). If the gateway is unreachable the sink raises and the
tracker retries at its next cycle; if the owner has no private area or it is over
quota, the task still completes and its outputs stay retrievable from the service (no
``stored_at``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509

from gproc.domain import InvalidTaskRequest, OutputFile, Owner
from gproc.security.errors import CredentialError
from gproc.security.identity import Fqan, Identity
from gproc.security.wsgi_auth import Validator, validate_with
from gproc.staging import InputResolver
from gproc.storage_gateway import paths
from gproc.storage_gateway.access import ActingForOwner, Principal
from gproc.storage_gateway.backends.base import BackendUnavailable, StorageError
from gproc.storage_gateway.gateway import StorageGateway
from gproc.task_data import TaskData, TaskOwner

log = logging.getLogger("gproc.gateway.tasks")
SCHEME = "gateway://"


SERVICE = "the gproc processing service"


class GatewayTaskData(TaskData):
    """Task inputs from, and outputs to, the storage gateway (given to the core)."""

    def __init__(
        self,
        gateway: StorageGateway,
        fallback: InputResolver,
        *,
        url_base: str | None = None,
        outputs_dir: str = "tasks",
        validator: Validator | None = None,
        service: str = SERVICE,
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.url_base = url_base.rstrip("/") if url_base else None
        self.outputs_dir = paths.check_component(outputs_dir)
        self.validator = validator
        self.service = service

    # -- inputs --------------------------------------------------------------------
    def logical_path(self, ref: str) -> str | None:
        """The gateway path a reference names (None: not a gateway reference)."""
        if ref.startswith(SCHEME):
            rest = ref[len(SCHEME) :]
            if not rest.startswith("/"):
                raise InvalidTaskRequest(
                    "inputs", f"gateway reference {ref!r} must look like gateway:///area/path"
                )
        elif self.url_base and ref.startswith(self.url_base + "/"):
            rest = ref[len(self.url_base) :]
        else:
            return None
        try:
            return paths.normalise(unquote(rest, errors="strict"))
        except (StorageError, UnicodeDecodeError) as exc:
            raise InvalidTaskRequest("inputs", f"bad gateway path in {ref!r}: {exc}") from None

    def resolver_for(self, owner: Owner) -> InputResolver:
        """Resolve gateway references as ``owner``; anything else goes to the fallback."""

        def resolve(ref: str, dest: Path) -> None:
            path = self.logical_path(ref)
            if path is None:
                self.fallback(ref, dest)
                return
            identity = owner.credential
            if not isinstance(identity, Identity):  # the caller's own, validated
                raise InvalidTaskRequest("inputs", "gateway inputs need an authenticated owner")
            try:
                self._copy(identity, path, dest)
            except StorageError as exc:
                dest.unlink(missing_ok=True)
                raise InvalidTaskRequest("inputs", f"{path}: {exc}") from None

        return resolve

    def _copy(self, identity: Identity, path: str, dest: Path) -> None:
        if self.gateway.stat(identity, path).is_dir:
            raise InvalidTaskRequest("inputs", f"{path} is a directory, not a file")
        with dest.open("wb") as fh:
            for chunk in self.gateway.open_read(identity, path):
                fh.write(chunk)

    # -- outputs -------------------------------------------------------------------
    def store_outputs(self, owner: TaskOwner, outputs: Sequence[OutputFile]) -> Mapping[str, str]:
        """Store outputs in the owner's private area; {port: logical path}."""
        folder = self.output_folder(owner)
        if folder is None:
            log.info("task %s: owner has no private area; outputs stay local", owner.task_id)
            return {}
        principal = self.principal_for(owner, folder)
        stored: dict[str, str] = {}
        try:
            self.gateway.mkdir(principal, folder, parents=True)
            for out in outputs:
                target = f"{folder}/{paths.check_component(out.name)}"
                self.gateway.write(principal, target, _file_chunks(Path(out.path)), overwrite=True)
                stored[out.port] = target
        except BackendUnavailable:
            raise  # the tracker retries at its next cycle
        except StorageError as exc:
            log.warning("task %s: outputs not stored in the gateway: %s", owner.task_id, exc)
        return stored

    def output_principal(self, owner: TaskOwner) -> Principal:
        """Who outputs of ``owner``'s task are written (and read back) as."""
        return self.principal_for(owner, self.output_folder(owner) or "")

    def output_folder(self, owner: TaskOwner) -> str | None:
        """``<home>/<outputs_dir>/<task id>`` of the owner (None: no private area)."""
        home = self.gateway.home(self._recorded(owner, scope=""))
        if home is None:
            return None
        return f"{home}/{self.outputs_dir}/{paths.check_component(owner.task_id)}"

    def location(self, stored_at: str) -> str:
        """What RetrieveTaskOutput hands out for a stored output."""
        if self.url_base:
            return self.url_base + stored_at
        return SCHEME + stored_at

    def principal_for(self, owner: TaskOwner, folder: str) -> Principal:
        """The delegated proxy's identity when it validates, else this service acting
        for the recorded owner within ``folder``."""
        if owner.x509_proxy and self.validator is not None:
            try:
                chain = x509.load_pem_x509_certificates(owner.x509_proxy.read_bytes())
                return validate_with(self.validator, chain)
            except (OSError, ValueError, CredentialError) as exc:
                log.info(
                    "task %s: delegated proxy unusable (%s); acting for the recorded owner",
                    owner.task_id,
                    exc,
                )
        return self._recorded(owner, scope=folder)

    def _recorded(self, owner: TaskOwner, scope: str) -> ActingForOwner:
        fqans = tuple(Fqan.parse(f) for f in owner.fqans)
        return ActingForOwner(owner.dn, fqans, self.service, scope)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk
