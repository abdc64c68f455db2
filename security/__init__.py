"""Grid security: trust store, X.509/RFC 3820 proxy validation, VOMS ACs, policy.

Public API: `TrustStore`, `VomsTrust`, `Validator`, `validate_chain`, `Identity`
(with `rejected_acs`: `AcRejection` per ignored AC), `Fqan`, `ProxyType` and the
`CredentialError` hierarchy. Production credential code: `credentials` (load,
make proxies) and `ac_signing` (VOMS ACs); `pki` is test-PKI tooling only."""

from gproc.security.chain import Validator, validate_chain
from gproc.security.errors import CredentialError, Reason, SecurityError
from gproc.security.identity import AcInfo, AcRejection, Fqan, Identity, ProxyType
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust

__all__ = [
    "AcInfo",
    "AcRejection",
    "CredentialError",
    "Fqan",
    "Identity",
    "ProxyType",
    "Reason",
    "SecurityError",
    "TrustStore",
    "Validator",
    "VomsTrust",
    "validate_chain",
]
