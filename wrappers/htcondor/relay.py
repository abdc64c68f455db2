"""A TCP relay that listens inside a network namespace and connects in the host's.

An execute node in its own network namespace cannot reach the host's 127.0.0.1,
where the personal pool's daemons listen (HTCondor binds one IPv4 address unless it
binds all interfaces, which would expose the pool beyond this machine). The relay
makes the central manager appear at the node's own ``127.0.0.1:<port>``: its
listening socket is created inside the node's namespace (``setns``), then the
process returns to the host's namespace, where every accepted connection is
forwarded to the pool. The central manager reaches the node directly on the node's
veth address. Run as ``python -m gproc.wrappers.htcondor.relay --netns PATH
--listen HOST:PORT --to HOST:PORT``; it prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
BUFFER = 65536


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the block with this thread in the network namespace at ``path``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def listen_in(netns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket bound to ``host:port`` in the namespace ``netns``."""
    with in_netns(netns):
        sock = socket.create_server((host, port), backlog=128)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve(sock: socket.socket, to_host: str, to_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(to_host, to_port), timeout=10
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    server = await asyncio.start_server(handle, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True, help="e.g. /run/netns/NAME")
    parser.add_argument("--listen", required=True, help="HOST:PORT inside the namespace")
    parser.add_argument("--to", required=True, help="HOST:PORT in this process's namespace")
    args = parser.parse_args(argv)
    sock = listen_in(args.netns, *_address(args.listen))
    print("ready", flush=True)
    sys.stdout.close()
    asyncio.run(_serve(sock, *_address(args.to)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
