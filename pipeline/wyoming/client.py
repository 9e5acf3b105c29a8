"""A blocking Wyoming exchange over TCP or a Unix socket: connect, send a request, read
events until the answer is complete, close. One connection per request: a server restarted
between two turns is simply reconnected to, and concurrent calls never share a socket.

Every failure becomes a ``ServiceError`` whose ``kind`` says what happened (``KINDS``), for
the call record and the metrics; the whole exchange, connect included, is bounded by one
timeout.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.breaker import CircuitBreaker
from pipeline.wyoming.messages import ServerError
from pipeline.wyoming.protocol import Event, EventReader, ProtocolError, encode

KINDS = ("refused", "unreachable", "timeout", "closed", "protocol", "server", "circuit_open")
"""refused: nothing listens; unreachable: no route or name; timeout: no complete answer in
time; closed: the server hung up mid-answer; protocol: it sent something that is not a
well-formed answer; server: it answered with an ``error`` event; circuit_open: not asked,
it failed repeatedly (``guarded``)."""


class ServiceError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def speech_breaker() -> CircuitBreaker:
    """A speech server's breaker: after 3 failures in a row, 5 s without requests. Short
    (the LLM's is 20 s): a server is asked several times a turn (partials), and a quick
    restart should not be outlasted."""
    return CircuitBreaker(failures=3, cooldown=5.0)


@contextlib.contextmanager
def guarded(breaker: CircuitBreaker, address: Address,
            clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """The exchanges of one answer, through ``address``'s breaker: refused at once
    (``circuit_open``) while it is open, a ``ServiceError`` inside counts as a failure."""
    if not breaker.allow(clock()):
        raise ServiceError("circuit_open", f"{address.uri} failed repeatedly; next try in "
                                           f"{breaker.retry_in(clock()):.0f} s")
    try:
        yield
    except ServiceError:
        breaker.failed(clock())
        raise
    breaker.succeeded(clock())


@dataclass(frozen=True)
class Address:
    uri: str
    family: int
    target: tuple[str, int] | str


def parse_uri(uri: str) -> Address:
    """``tcp://host:port`` or ``unix:///path``; ValueError saying what is expected."""
    parts = urlsplit(uri)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or port == 0:
            raise ValueError(f"{uri!r}: expected tcp://host:port")
        return Address(uri, socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET,
                       (parts.hostname, port))
    if parts.scheme == "unix" and (parts.netloc + parts.path):
        return Address(uri, socket.AF_UNIX, parts.netloc + parts.path)
    raise ValueError(f"{uri!r}: expected tcp://host:port or unix:///path")


def exchange(address: Address, request: Iterable[Event], done: Callable[[Event], bool],
             timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Send ``request`` and feed each answering event to ``done`` until it returns True.

    Raises ``ServiceError``; ``done`` may raise ``ProtocolError``/``ServerError`` too."""
    deadline = clock() + timeout

    def remaining() -> float:
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError
        return left

    try:
        with _connect(address, remaining()) as sock:
            sock.settimeout(remaining())
            sock.sendall(b"".join(encode(e) for e in request))
            reader = EventReader()
            while True:
                sock.settimeout(remaining())
                data = sock.recv(65536)
                if not data:
                    raise ServiceError("closed", f"{address.uri} closed the connection "
                                       "before the answer was complete")
                for ev in reader.feed(data):
                    if done(ev):
                        return
    except ServiceError:
        raise
    except TimeoutError:  # socket.timeout is TimeoutError
        raise ServiceError("timeout", f"no complete answer from {address.uri} "
                           f"within {timeout:.1f} s") from None
    except ConnectionRefusedError:
        raise ServiceError("refused", f"{address.uri} refused the connection") from None
    except FileNotFoundError:  # a Unix socket that is not there: nobody listens
        raise ServiceError("refused", f"{address.uri}: no such socket") from None
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        raise ServiceError("closed", f"{address.uri}: {e.strerror or e}") from None
    except ProtocolError as e:
        raise ServiceError("protocol", f"{address.uri}: {e}") from None
    except ServerError as e:
        raise ServiceError("server", f"{address.uri}: {e}") from None
    except OSError as e:  # no route, unknown host name...
        raise ServiceError("unreachable", f"{address.uri}: {e.strerror or e}") from None


def _connect(address: Address, timeout: float) -> socket.socket:
    if address.family == socket.AF_UNIX:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address.target)
        except BaseException:
            sock.close()
            raise
        return sock
    host, port = address.target  # type: ignore[misc]
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small events, no batching
    return sock
