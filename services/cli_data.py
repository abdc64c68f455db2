"""``gproc data``: the data gateway from the shell, over its HTTPS front, and
``gproc gateway serve`` to run the fronts.

The client authenticates with the user's proxy (``--proxy``, else ``X509_USER_PROXY``,
else ``/tmp/x509up_u<uid>``) and trusts the CA directory ``--ca-dir`` (else
``X509_CERT_DIR``, else ``/etc/grid-security/certificates``). The gateway URL comes
from ``--url`` or ``GPROC_GATEWAY_URL``. Transfers show progress bars; errors are one
readable line (``NotFound: /private/x: no such file or directory``) and exit code 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

CHUNK = 1 << 20
_PATH = click.Path(path_type=Path)


class Client:
    """A thin HTTPS client of the gateway front."""

    def __init__(self, url: str, proxy: Path, ca: Path) -> None:
        self.base = url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.cert = str(proxy)
        self.http.verify = str(ca)

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            raise click.UsageError(f"gateway paths are absolute: {path!r}")
        return self.base + quote(path, safe="/")

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        try:
            resp = self.http.request(method, self.url(path), timeout=(15, 300), **kw)
        except requests.exceptions.SSLError as exc:
            raise click.ClickException(f"TLS failed (proxy or CA?): {exc}") from None
        except requests.exceptions.ConnectionError as exc:
            raise click.ClickException(
                f"cannot reach the gateway at {self.base}: {exc.__class__.__name__}"
            ) from None
        if resp.status_code >= 400:
            raise click.ClickException(_error_text(resp))
        return resp


def _error_text(resp: requests.Response) -> str:
    try:
        data = resp.json()
        return f"{data['error']}: {data['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


@click.group("data")
@click.option(
    "--url",
    envvar="GPROC_GATEWAY_URL",
    required=True,
    help="Gateway HTTPS URL [GPROC_GATEWAY_URL].",
)
@click.option("--proxy", type=_PATH, help="Proxy file [X509_USER_PROXY].")
@click.option("--ca-dir", type=_PATH, help="Hashed CA directory [X509_CERT_DIR].")
@click.pass_context
def data_group(ctx: click.Context, url: str, proxy: Path | None, ca_dir: Path | None) -> None:
    """Files in the data gateway (/public, /private/<you>, /groups/...)."""
    default = f"/tmp/x509up_u{os.getuid()}"  # noqa: S108 - the grid-standard proxy path
    proxy = proxy or Path(os.environ.get("X509_USER_PROXY") or default)
    ca = ca_dir or Path(os.environ.get("X509_CERT_DIR") or "/etc/grid-security/certificates")
    if not proxy.is_file():
        raise click.UsageError(f"no proxy at {proxy} (make one, or give --proxy)")
    ctx.obj = Client(url, proxy, ca)


@data_group.command("ls")
@click.argument("path", default="/")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ls_cmd(client: Client, path: str, as_json: bool) -> None:
    """List a directory."""
    data = client.call("GET", path).json()
    if "entries" not in data:
        raise click.ClickException(f"{path} is a file (use stat or get)")
    if as_json:
        click.echo(json.dumps(data["entries"], indent=2))
        return
    table = Table("name", "type", "size", box=None)
    for e in data["entries"]:
        table.add_row(
            e["name"] + ("/" if e["type"] == "directory" else ""),
            e["type"],
            str(e["size"]) if e["type"] == "file" else "",
        )
    Console().print(table)


@data_group.command("stat")
@click.argument("path")
@click.pass_obj
def stat_cmd(client: Client, path: str) -> None:
    """Size, type and checksums (adler32, SHA-256) of a path."""
    click.echo(json.dumps(client.call("GET", path, params={"op": "stat"}).json(), indent=2))


@data_group.command("mkdir")
@click.argument("path")
@click.option("-p", "--parents", is_flag=True, help="Create missing parents.")
@click.pass_obj
def mkdir_cmd(client: Client, path: str, parents: bool) -> None:
    """Create a directory."""
    client.call("POST", path, params={"op": "mkdir", "parents": "1" if parents else "0"})


@data_group.command("rm")
@click.argument("paths", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(client: Client, paths: tuple[str, ...]) -> None:
    """Remove files or empty directories."""
    for path in paths:
        client.call("DELETE", path)


@data_group.command("get")
@click.argument("path")
@click.argument("dest", type=_PATH, required=False)
@click.pass_obj
def get_cmd(client: Client, path: str, dest: Path | None) -> None:
    """Download a file (to DEST, default: its name here); written aside, then renamed."""
    target = dest or Path(path.rsplit("/", 1)[-1])
    if target.is_dir():
        target = target / path.rsplit("/", 1)[-1]
    partial = target.with_name(f".{target.name}.part")
    resp = client.call("GET", path, stream=True)
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        raise click.ClickException(f"{path} is a directory")
    total = int(resp.headers.get("Content-Length", 0))
    try:
        with _progress() as bar, partial.open("wb") as fh:
            task = bar.add_task(target.name, total=total)
            for chunk in resp.iter_content(CHUNK):
                fh.write(chunk)
                bar.advance(task, len(chunk))
        if partial.stat().st_size != total:
            raise click.ClickException(f"download of {path} was cut short")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@data_group.command("put")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("path")
@click.option("-f", "--force", is_flag=True, help="Replace an existing file.")
@click.pass_obj
def put_cmd(client: Client, src: Path, path: str, force: bool) -> None:
    """Upload a file (atomic on the gateway: all of it or nothing)."""
    if path.endswith("/"):
        path = path + src.name
    size = src.stat().st_size
    with _progress() as bar:
        task = bar.add_task(src.name, total=size)
        with src.open("rb") as fh:
            resp = client.call(
                "PUT",
                path,
                params={"overwrite": "1"} if force else None,
                data=_ProgressReader(fh, size, bar, task),
            )
    sums = resp.json()
    click.echo(f"{path}: adler32 {sums['adler32']} sha256 {sums['sha256']}")


class _ProgressReader:
    """A sized file object (so the upload has a Content-Length) that moves the bar."""

    def __init__(self, fh: Any, size: int, bar: Progress, task: Any) -> None:
        self.fh, self.size, self.bar, self.task = fh, size, bar, task

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.fh.read(max(n, CHUNK) if n else CHUNK)
        self.bar.advance(self.task, len(data))
        return data


@data_group.command("ssh-key")
@click.argument(
    "pubkey", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.pass_obj
def sshkey_cmd(client: Client, pubkey: Path | None) -> None:
    """Register an SSH public key for the SFTP front (or list yours)."""
    if pubkey is not None:
        rec = client.call("POST", "/sshkeys", data=pubkey.read_text()).json()
        click.echo(f"registered {rec['fingerprint']} for {rec['dn']}")
        return
    for k in client.call("GET", "/sshkeys").json()["keys"]:
        click.echo(f"{k['fingerprint']}  {k['type']}  {k['comment']}  {k['registered_at']}")


@click.group("gateway")
def gateway_group() -> None:
    """The data gateway service."""


GATEWAY_OVERRIDES = {
    "namespace": "gateway.namespace",
    "host": "gateway.host",
    "port": "gateway.port",
    "sftp_port": "gateway.sftp_port",
    "cert": "service.cert",
    "key": "service.key",
    "ca_dir": "service.ca_dir",
    "vomsdir": "service.vomsdir",
}


@gateway_group.command("serve")
@click.option("--namespace", type=_PATH, help="Namespace TOML [gateway.namespace].")
@click.option("--host", help="Listen address [gateway.host].")
@click.option("--port", type=int, help="HTTPS port [gateway.port].")
@click.option("--sftp-port", type=int, help="SFTP port; -1 disables [gateway.sftp_port].")
@click.option("--cert", type=_PATH, help="Host certificate [service.cert].")
@click.option("--key", type=_PATH, help="Host key [service.key].")
@click.option("--ca-dir", type=_PATH, help="CA directory [service.ca_dir].")
@click.option("--vomsdir", type=_PATH, help="VOMS LSC directory [service.vomsdir].")
def serve_cmd(sftp_port: int | None, **opts: Any) -> None:
    """Serve the HTTPS and SFTP fronts until SIGTERM/SIGINT."""
    from gproc.security.tls import TLSConfig
    from gproc.services.chassis import serve
    from gproc.services.chassis.metrics import metrics_endpoint
    from gproc.services.gateway_app import (
        ACCESS_LOGGER,
        LOGGERS,
        build_parts,
        host_key_path,
        make_https_front,
    )
    from gproc.settings import get_settings
    from gproc.storage_gateway.sftp_front import SftpFront, load_host_key

    off = sftp_port is not None and sftp_port < 0  # -1: no SFTP front
    opts["sftp_port"] = None if off else sftp_port
    settings = serve.apply_overrides(get_settings(), opts, GATEWAY_OVERRIDES)
    if off:
        gw_off = settings.gateway.model_copy(update={"sftp_port": None})
        settings = settings.model_copy(update={"gateway": gw_off})
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    gw, svc = settings.gateway, settings.service
    assert svc.cert and svc.key and svc.ca_dir
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER])
    validator = serve.build_validator(svc.ca_dir, svc.vomsdir)
    parts = build_parts(settings, validator)
    https = make_https_front(
        parts,
        validator,
        TLSConfig(svc.cert, svc.key, svc.ca_dir),
        gw.host,
        gw.port,
        threads=gw.threads,
        metrics=metrics_endpoint(settings),
    )
    fronts: list[serve.Runnable] = [https]
    sftp = None
    if gw.sftp_port is not None:
        sftp = SftpFront(
            parts.gateway,
            parts.keys,
            load_host_key(host_key_path(settings)),
            gw.host,
            gw.sftp_port,
            max_sessions=gw.sftp_sessions,
            admit=parts.admit,
        )
        fronts.append(sftp)
    serve.run(
        fronts,
        banner=lambda: (
            f"gproc gateway: HTTPS {https.url}" + (f", SFTP {gw.host}:{sftp.port}" if sftp else "")
        ),
        name="gproc gateway",
    )
