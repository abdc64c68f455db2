"""Signing VOMS attribute certificates (RFC 5755 ACs in the VOMS profile).

Production code: the attribute authority issues its ACs with `sign_voms_ac`; the
test-PKI tooling (`security/pki.py`) builds on `voms_ac_info`/`sign_ac_info`. Layout
follows what a VOMS server emits: holder = issuer+serial of the end-entity
certificate, FQANs as OCTET STRINGs in an IetfAttrSyntax whose policyAuthority is
`<vo>://<host:port>`, the signer certificate embedded in extension ...100.100.10."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms, core
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import Encoding

from gproc.security.asn1 import (
    OID_AUTHORITY_KEY_ID,
    OID_NO_REV_AVAIL,
    OID_VOMS_CERTS,
    OID_VOMS_FQAN,
    Certificates,
    VomsAcCerts,
)
from gproc.security.credentials import Credential


def _gn_dir(name: x509.Name) -> ax.GeneralNames:
    return ax.GeneralNames(
        [ax.GeneralName(name="directory_name", value=ax.Name.load(name.public_bytes()))]
    )


def _fqan_attribute(vo: str, uri: str, fqans: Sequence[str]) -> cms.AttCertAttribute:
    authority = ax.GeneralNames(
        [ax.GeneralName(name="uniform_resource_identifier", value=f"{vo}://{uri}")]
    )
    values = cms.IetfAttrValues([cms.IetfAttrValue(name="octets", value=f.encode()) for f in fqans])
    syntax = cms.IetfAttrSyntax({"policy_authority": authority, "values": values})
    attr = cms.AttCertAttribute({"type": OID_VOMS_FQAN, "values": [core.Any(syntax)]})
    return attr


def _extensions(signer: Credential, embed_signer: bool) -> ax.Extensions:
    key_id = x509.SubjectKeyIdentifier.from_public_key(signer.cert.public_key()).digest
    exts: list[dict[str, object]] = [
        {"extn_id": OID_NO_REV_AVAIL, "critical": False, "extn_value": core.Null()},
        {
            "extn_id": OID_AUTHORITY_KEY_ID,
            "critical": False,
            "extn_value": ax.AuthorityKeyIdentifier({"key_identifier": key_id}),
        },
    ]
    if embed_signer:
        chain = [
            ax.Certificate.load(c.public_bytes(Encoding.DER)) for c in (signer.cert, *signer.chain)
        ]
        exts.append(
            {
                "extn_id": OID_VOMS_CERTS,
                "critical": False,
                "extn_value": core.ParsableOctetString(VomsAcCerts([Certificates(chain)]).dump()),
            }
        )
    return ax.Extensions([_ext(e) for e in exts])


def _ext(spec: dict[str, object]) -> ax.Extension:
    ext = ax.Extension()
    ext["extn_id"] = ax.ExtensionId(spec["extn_id"])
    ext["critical"] = spec["critical"]
    value: core.Asn1Value = spec["extn_value"]  # type: ignore[assignment]
    ext["extn_value"] = (
        core.ParsableOctetString(value.dump())
        if not isinstance(value, core.ParsableOctetString)
        else value
    )
    return ext


def voms_ac_info(
    holder: x509.Certificate,
    signer: Credential,
    vo: str,
    fqans: Sequence[str],
    *,
    uri: str,
    not_before: datetime,
    not_after: datetime,
    serial: int,
    embed_signer: bool = True,
    issuer: x509.Name | None = None,
    holder_name: x509.Name | None = None,
) -> cms.AttributeCertificateInfoV2:
    """The to-be-signed part of a VOMS AC for the end-entity certificate `holder`.

    `holder_name` is the holder's directory name (default its issuer, RFC 5755; VOMS
    also accepts its subject); `issuer` is the AC issuer (default the signer)."""
    return cms.AttributeCertificateInfoV2(
        {
            "version": "v2",
            "holder": {
                "base_certificate_id": {
                    "issuer": _gn_dir(holder_name or holder.issuer),
                    "serial": holder.serial_number,
                }
            },
            "issuer": cms.AttCertIssuer(
                name="v2_form", value={"issuer_name": _gn_dir(issuer or signer.cert.subject)}
            ),
            "signature": {"algorithm": "sha256_rsa", "parameters": core.Null()},
            "serial_number": serial,
            "att_cert_validity_period": {
                "not_before_time": core.GeneralizedTime(not_before),
                "not_after_time": core.GeneralizedTime(not_after),
            },
            "attributes": [_fqan_attribute(vo, uri, fqans)],
            "extensions": _extensions(signer, embed_signer),
        }
    )


def sign_ac_info(info: cms.AttributeCertificateInfoV2, key: RSAPrivateKey) -> bytes:
    """DER of the AC: `info` signed with `key` (SHA-256 with RSA)."""
    signature = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA256())
    ac = cms.AttributeCertificateV2(
        {
            "ac_info": info,
            "signature_algorithm": {"algorithm": "sha256_rsa", "parameters": core.Null()},
            "signature": signature,
        }
    )
    return ac.dump()


def sign_voms_ac(
    holder: x509.Certificate,
    signer: Credential,
    vo: str,
    fqans: Sequence[str],
    *,
    uri: str,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> bytes:
    """DER of a VOMS AC for `holder` signed by (and embedding) the `signer` credential."""
    info = voms_ac_info(
        holder,
        signer,
        vo,
        fqans,
        uri=uri,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
    )
    return sign_ac_info(info, signer.key)


__all__ = ["sign_ac_info", "sign_voms_ac", "voms_ac_info"]
