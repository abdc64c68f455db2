"""`pki` command group: build a test PKI, certificates, proxies and VOMS ACs on disk.

Mounted as ``gproc pki ...``; also runnable as ``python -m gproc.services.cli_pki``."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gproc.security import pki as tools
from gproc.security.chain import proxy_language
from gproc.security.identity import ProxyType

_CA_FILES = ("cacert.pem", "cakey.pem", "crl.pem", "revoked.txt")


@click.group("pki")
def pki_group() -> None:
    """Test PKI tooling (CA, CRL, host/user certificates, RFC 3820 proxies, VOMS ACs)."""


@pki_group.command("test-pki")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def test_pki_cmd(directory: Path) -> None:
    """Build a complete test PKI (CA dir, vomsdir, users alice/bob, proxies) in DIRECTORY."""
    made = tools.make_test_pki(directory)
    click.echo(f"X509_CERT_DIR={made.ca_dir}\nX509_VOMS_DIR={made.vomsdir}")
    for label, path in made.proxies.items():
        click.echo(f"proxy {label}: {path}")


@pki_group.group("ca")
def ca_group() -> None:
    """A CA kept in a work directory (cacert.pem, cakey.pem, crl.pem, revoked.txt)."""


@ca_group.command("create")
@click.argument("workdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cn", default="gproc Test CA", show_default=True)
@click.option("--org", default="gproc-test", show_default=True)
def ca_create(workdir: Path, cn: str, org: str) -> None:
    """Create a CA and an empty CRL in WORKDIR."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = tools.make_ca(cn, org)
    ca.write(workdir / "cacert.pem", workdir / "cakey.pem")
    (workdir / "revoked.txt").write_text("")
    _write_crl(workdir, ca)
    click.echo(f"CA {ca.dn} in {workdir}")


@ca_group.command("revoke")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ca_revoke(workdir: Path, cert: Path) -> None:
    """Revoke CERT and re-issue the CRL."""
    serial = x509.load_pem_x509_certificates(cert.read_bytes())[0].serial_number
    with (workdir / "revoked.txt").open("a") as fh:
        fh.write(f"{serial:x}\n")
    _write_crl(workdir, _load_ca(workdir))
    click.echo(f"revoked serial {serial:x}")


def _load_ca(workdir: Path) -> tools.Credential:
    return tools.load_credential(workdir / "cacert.pem", workdir / "cakey.pem")


def _write_crl(workdir: Path, ca: tools.Credential) -> None:
    serials = [int(s, 16) for s in (workdir / "revoked.txt").read_text().split()]
    crl = tools.make_crl(ca, serials)
    (workdir / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


@pki_group.command("cadir")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--hashes",
    "hash_style",
    type=click.Choice(["both", "new", "old"]),
    default="both",
    show_default=True,
)
def cadir_cmd(workdir: Path, out: Path, hash_style: str) -> None:
    """Write the grid CA directory OUT (<hash>.0, .r0, .signing_policy) for WORKDIR's CA."""
    crl = x509.load_pem_x509_crl((workdir / "crl.pem").read_bytes())
    tools.write_ca_dir(out, [(_load_ca(workdir), crl)], hashes_=hash_style)
    click.echo(str(out))


def _issue_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--out-key", type=click.Path(dir_okay=False, path_type=Path), required=True)(
        fn
    )
    fn = click.option("--out-cert", type=click.Path(dir_okay=False, path_type=Path), required=True)(
        fn
    )
    fn = click.option("--days", type=click.IntRange(1, 36500), default=365, show_default=True)(fn)
    return fn


@pki_group.command("host")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("hostname")
@click.option(
    "--san", multiple=True, help="subject alternative names (default vm, localhost, 127.0.0.1)"
)
@_issue_options
def host_cmd(
    workdir: Path, hostname: str, san: tuple[str, ...], days: int, out_cert: Path, out_key: Path
) -> None:
    """Issue a host/service certificate for HOSTNAME."""
    sans = san or ("vm", "localhost", "127.0.0.1")
    cred = tools.make_host_cert(_load_ca(workdir), hostname, sans=sans, days=days)
    cred.write(out_cert, out_key)
    click.echo(cred.dn)


@pki_group.command("user")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("cn")
@_issue_options
def user_cmd(workdir: Path, cn: str, days: int, out_cert: Path, out_key: Path) -> None:
    """Issue a user certificate /C=XX/O=gproc-test/OU=users/CN=CN."""
    cred = tools.make_user_cert(_load_ca(workdir), cn, days=days)
    cred.write(out_cert, out_key)
    click.echo(cred.dn)


@pki_group.command("proxy")
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="issuer certificate, or a proxy file",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="issuer key (omit when --cert is a proxy file)",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["impersonation", "limited", "independent"]),
    default="impersonation",
    show_default=True,
)
@click.option("--path-length", type=click.IntRange(0, 100), default=None)
@click.option("--hours", type=click.FloatRange(0.01, 24 * 365), default=12, show_default=True)
@click.option("--voms-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--voms-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vo", default=None, help="VO of the embedded AC (needs --voms-cert/--voms-key)")
@click.option("--fqan", multiple=True, help="FQAN for the AC, in order")
@click.option("--uri", default="vm:15000", show_default=True, help="VOMS server host:port")
def proxy_cmd(
    cert: Path,
    key: Path | None,
    out: Path,
    kind: str,
    path_length: int | None,
    hours: float,
    voms_cert: Path | None,
    voms_key: Path | None,
    vo: str | None,
    fqan: tuple[str, ...],
    uri: str,
) -> None:
    """Make an RFC 3820 proxy, optionally with a VOMS AC signed by a VOMS host cert."""
    issuer = tools.load_credential(cert, key)
    acs = []
    if vo:
        if not (voms_cert and voms_key):
            raise click.UsageError("--vo needs --voms-cert and --voms-key")
        eec = next((c for c in (issuer.cert, *issuer.chain) if not _is_proxy(c)), issuer.cert)
        signer = tools.load_credential(voms_cert, voms_key)
        acs.append(
            tools.make_voms_ac(eec, signer, vo, list(fqan) or [f"/{vo}"], uri=uri, hours=hours)
        )
    proxy = tools.make_proxy(
        issuer, kind=ProxyType(kind), path_length=path_length, hours=hours, acs=acs
    )
    proxy.write_proxy(out)
    click.echo(f"{proxy.dn} -> {out}")


def _is_proxy(cert: x509.Certificate) -> bool:
    return proxy_language(cert) is not None


@pki_group.command("vomsdir")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--vo", required=True)
@click.option(
    "--voms-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--host", default="vm", show_default=True, help="LSC file name (server host)")
def vomsdir_cmd(out: Path, vo: str, voms_cert: Path, host: str) -> None:
    """Write OUT/<vo>/<host>.lsc trusting the VOMS server certificate."""
    cert = x509.load_pem_x509_certificates(voms_cert.read_bytes())[0]
    try:
        click.echo(str(tools.write_vomsdir(out, vo, cert, host=host)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


pki = pki_group  # mounted as `gproc pki` (services.cli)
main = pki_group

if __name__ == "__main__":
    pki_group()
