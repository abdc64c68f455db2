"""ASN.1 structures and OIDs of RFC 3820 proxies and VOMS ACs (asn1crypto specs).

Shared by the validator and the test-PKI builder so both read and write the same DER."""

from __future__ import annotations

from asn1crypto import cms, core
from asn1crypto import x509 as ax

OID_PROXY_CERT_INFO = "1.3.6.1.5.5.7.1.14"
OID_PROXY_CERT_INFO_OLD = "1.3.6.1.4.1.3536.1.222"  # pre-RFC Globus draft
OID_INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
OID_INDEPENDENT = "1.3.6.1.5.5.7.21.2"
OID_LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"
OID_VOMS_ACSEQ = "1.3.6.1.4.1.8005.100.100.5"
OID_VOMS_FQAN = "1.3.6.1.4.1.8005.100.100.4"
OID_VOMS_CERTS = "1.3.6.1.4.1.8005.100.100.10"
OID_VOMS_TAGS = "1.3.6.1.4.1.8005.100.100.11"
OID_NO_REV_AVAIL = "2.5.29.56"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
OID_TARGET_INFO = "2.5.29.55"


class ProxyPolicy(core.Sequence):
    """RFC 3820 ProxyPolicy."""

    _fields = [
        ("policy_language", core.ObjectIdentifier),
        ("policy", core.OctetString, {"optional": True}),
    ]


class ProxyCertInfo(core.Sequence):
    """RFC 3820 ProxyCertInfo extension value."""

    _fields = [
        ("path_len_constraint", core.Integer, {"optional": True}),
        ("proxy_policy", ProxyPolicy),
    ]


class AttributeCertificates(core.SequenceOf):
    """SEQUENCE OF AttributeCertificate."""

    _child_spec = cms.AttributeCertificateV2


class VomsAcSequence(core.SequenceOf):
    """Value of the proxy extension 1.3.6.1.4.1.8005.100.100.5 (nested twice)."""

    _child_spec = AttributeCertificates


class Certificates(core.SequenceOf):
    """SEQUENCE OF Certificate."""

    _child_spec = ax.Certificate


class VomsAcCerts(core.SequenceOf):
    """Value of the AC extension 1.3.6.1.4.1.8005.100.100.10 (the signer's chain)."""

    _child_spec = Certificates


def proxy_cert_info_der(language_oid: str, path_length: int | None = None) -> bytes:
    """DER of a ProxyCertInfo value."""
    value: dict[str, object] = {"proxy_policy": {"policy_language": language_oid}}
    if path_length is not None:
        value["path_len_constraint"] = path_length
    return ProxyCertInfo(value).dump()


def parse_proxy_cert_info(der: bytes) -> tuple[str, int | None]:
    """(policy language OID, path length or None) from ProxyCertInfo DER."""
    info = ProxyCertInfo.load(der, strict=True)
    plen = info["path_len_constraint"].native
    return info["proxy_policy"]["policy_language"].dotted, plen
