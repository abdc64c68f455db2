"""What an SFTP SETSTAT may do on the gateway (a pure table): times are set; a mode
or size already true is accepted; every other change is refused, changing nothing."""

from __future__ import annotations

import pytest
from paramiko import SFTP_OK, SFTP_OP_UNSUPPORTED, SFTPAttributes

from gproc.storage_gateway.backends.base import Entry
from gproc.storage_gateway.sftp_front import plan_setstat

FILE = Entry("f", False, 10, 5.0)
DIR = Entry("d", True, 0, 5.0)


def attrs(**fields: int) -> SFTPAttributes:
    a = SFTPAttributes()
    for name, value in fields.items():
        setattr(a, name, value)
    flags = 0
    if "st_size" in fields:
        flags |= SFTPAttributes.FLAG_SIZE
    if "st_uid" in fields:
        flags |= SFTPAttributes.FLAG_UIDGID
    if "st_mode" in fields:
        flags |= SFTPAttributes.FLAG_PERMISSIONS
    if "st_mtime" in fields:
        flags |= SFTPAttributes.FLAG_AMTIME
    a._flags = flags
    return a


CASES = [
    ("times", FILE, attrs(st_atime=1, st_mtime=2), SFTP_OK, (1.0, 2.0)),
    ("mode as reported", FILE, attrs(st_mode=0o100644), SFTP_OK, None),
    (
        "mode and times (put -p)",
        FILE,
        attrs(st_mode=0o644, st_atime=3, st_mtime=4),
        SFTP_OK,
        (3.0, 4.0),
    ),
    (
        "directory mode and times",
        DIR,
        attrs(st_mode=0o755, st_atime=3, st_mtime=4),
        SFTP_OK,
        (3.0, 4.0),
    ),
    ("other mode", FILE, attrs(st_mode=0o600), SFTP_OP_UNSUPPORTED, None),
    (
        "other mode with times: nothing done",
        FILE,
        attrs(st_mode=0o600, st_atime=1, st_mtime=2),
        SFTP_OP_UNSUPPORTED,
        None,
    ),
    ("file mode on a directory", DIR, attrs(st_mode=0o644), SFTP_OP_UNSUPPORTED, None),
    ("owner", FILE, attrs(st_uid=1000, st_gid=1000), SFTP_OP_UNSUPPORTED, None),
    ("truncate", FILE, attrs(st_size=3), SFTP_OP_UNSUPPORTED, None),
    ("size already true", FILE, attrs(st_size=10), SFTP_OK, None),
    ("size of a directory", DIR, attrs(st_size=0), SFTP_OP_UNSUPPORTED, None),
    ("nothing asked", FILE, attrs(), SFTP_OK, None),
]


@pytest.mark.parametrize("name,entry,attr,code,times", CASES, ids=[c[0] for c in CASES])
def test_plan_setstat(
    name: str, entry: Entry, attr: SFTPAttributes, code: int, times: tuple[float, float] | None
) -> None:
    assert plan_setstat(attr, entry) == (code, times)
