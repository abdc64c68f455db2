"""Production credential code: proxies live as long as asked, from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gproc.security import credentials, pki
from gproc.security.chain import Validator
from gproc.security.pki import TestPKI


@pytest.mark.parametrize("make", [credentials.make_proxy, pki.make_proxy])
def test_a_proxy_lives_as_long_as_asked(test_pki: TestPKI, make: object) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    proxy = make(test_pki.users["alice"], hours=1)  # type: ignore[operator]
    after = datetime.now(UTC)
    assert before + timedelta(hours=1) <= proxy.cert.not_valid_after_utc
    assert proxy.cert.not_valid_after_utc <= after + timedelta(hours=1)
    # the start is backdated for clock skew, as grid tools do
    assert proxy.cert.not_valid_before_utc <= before - timedelta(minutes=4)


@pytest.mark.parametrize("make", [credentials.make_proxy, pki.make_proxy])
def test_a_two_minute_proxy_is_valid_now(
    test_pki: TestPKI, pki_validator: Validator, make: object
) -> None:
    proxy = make(test_pki.users["alice"], hours=2 / 60)  # type: ignore[operator]
    ident = pki_validator.validate(proxy.chain_pem())
    assert ident.not_after > datetime.now(UTC) + timedelta(seconds=90)


def test_test_acs_live_as_long_as_asked(test_pki: TestPKI, pki_validator: Validator) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    ac = pki.make_voms_ac(test_pki.users["alice"].cert, test_pki.voms, "testvo", ["/testvo"])
    proxy = credentials.make_proxy(test_pki.users["alice"], hours=24, acs=[ac])
    (info,) = pki_validator.validate(proxy.chain_pem()).acs
    assert info.not_after >= before + timedelta(hours=12)


def test_a_proxy_never_outlives_its_issuer(test_pki: TestPKI) -> None:
    short = pki.make_proxy(test_pki.users["alice"], hours=1)
    child = credentials.make_proxy(short, hours=5)
    assert child.cert.not_valid_after_utc == short.cert.not_valid_after_utc
