"""Task data through the storage gateway: gateway inputs in, outputs to the owner's area.

Input references. A task input may name a gateway path as ``gateway:///<logical
path>`` (e.g. ``gateway:///public/s2/b04.tif``) or as the gateway HTTPS URL the
service hands out (``<service.output_url_base>/<logical path>``), so a workflow
engine can feed one task's output location straight into the next task. The URL
is percent-decoded exactly once; the path is then validated by the gateway like
any front's. The data is read with the *caller's* validated identity at
registration: a task can only use data its owner may read.

Outputs. When a job completes, the tracker hands the outputs to :meth:`output_sink`,
which stores them in the owner's private area under
``<home>/<gateway.task_outputs>/<task id>/<name>`` (atomic uploads, overwritten on
resubmission). The identity used: the task's delegated proxy when it has one and it
still validates; otherwise the owner as recorded at registration (DN and the FQANs
validated then), which is what private-area membership is decided on. If the
gateway is unreachable the sink raises and the tracker retries at its next cycle;
if the owner has no private area or it is over quota, the task still completes and
its outputs stay retrievable from the service (no ``stored_at``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography import x509

from gproc.domain import InvalidTaskRequest, Owner
from gproc.security.errors import CredentialError
from gproc.security.identity import AcInfo, Fqan, Identity, ProxyType
from gproc.security.wsgi_auth import Validator, validate_with
from gproc.staging import InputResolver
from gproc.storage_gateway import paths
from gproc.storage_gateway.backends.base import BackendUnavailable, StorageError
from gproc.storage_gateway.gateway import StorageGateway

log = logging.getLogger("gproc.gateway.tasks")
SCHEME = "gateway://"


class TaskData:
    """The owner-aware resolver and the output sink the core is given."""

    def __init__(
        self,
        gateway: StorageGateway,
        fallback: InputResolver,
        *,
        url_base: str | None = None,
        outputs_dir: str = "tasks",
        validator: Validator | None = None,
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.url_base = url_base.rstrip("/") if url_base else None
        self.outputs_dir = paths.check_component(outputs_dir)
        self.validator = validator

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
            if not isinstance(identity, Identity):
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
    def output_sink(self, row: Any, outputs: list[dict[str, Any]]) -> dict[str, str]:
        """Store outputs in the owner's private area; {port: logical path}."""
        identity = self.owner_identity(row)
        home = self.gateway.home(identity)
        if home is None:
            log.info("task %s: owner has no private area; outputs stay local", row.id)
            return {}
        folder = f"{home}/{self.outputs_dir}/{paths.check_component(row.id)}"
        stored: dict[str, str] = {}
        try:
            self.gateway.mkdir(identity, folder, parents=True)
            for out in outputs:
                target = f"{folder}/{paths.check_component(out['name'])}"
                self.gateway.write(
                    identity, target, _file_chunks(Path(out["path"])), overwrite=True
                )
                stored[out["port"]] = target
        except BackendUnavailable:
            raise  # the tracker retries at its next cycle
        except StorageError as exc:
            log.warning("task %s: outputs not stored in the gateway: %s", row.id, exc)
        return stored

    def location(self, logical: str) -> str:
        """What RetrieveTaskOutput hands out for a stored output."""
        if self.url_base:
            return self.url_base + logical
        return SCHEME + logical

    def owner_identity(self, row: Any) -> Identity:
        """The delegated proxy's identity when it validates, else the recorded owner."""
        if row.x509_proxy and self.validator is not None:
            try:
                chain = x509.load_pem_x509_certificates(Path(row.x509_proxy).read_bytes())
                return validate_with(self.validator, chain)
            except (OSError, ValueError, CredentialError) as exc:
                log.info(
                    "task %s: delegated proxy unusable (%s); using the recorded owner", row.id, exc
                )
        return recorded_owner(row.owner_dn, json.loads(row.owner_fqans or "[]"))


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


def recorded_owner(dn: str, fqans: list[str]) -> Identity:
    """An Identity for the owner as validated at registration (DN + FQANs then held).

    Used only to store the task's own outputs in the owner's private area."""
    parsed = [Fqan.parse(f) for f in fqans]
    now = datetime.now(UTC)
    vos = list(dict.fromkeys(f.vo for f in parsed))
    acs = tuple(
        AcInfo(
            vo=vo,
            uri="",
            issuer="(recorded at registration)",
            serial=0,
            not_before=now,
            not_after=now + timedelta(minutes=5),
            fqans=tuple(f for f in parsed if f.vo == vo),
        )
        for vo in vos
    )
    return Identity(
        subject="",
        subject_grid=dn,
        issuer="",
        issuer_grid="",
        proxy_type=ProxyType.NONE,
        proxy_depth=0,
        not_after=now + timedelta(minutes=5),
        fingerprint="",
        acs=acs,
    )
