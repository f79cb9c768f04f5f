"""Bounded network probes and calls for hardware that may not answer.

libfranka blocks about 60 s when the robot is unreachable and forever when a host accepts the TCP
connection but never answers the handshake; name resolution can block too. Everything here returns or
raises within the timeout it is given, so nothing above it can hang on a bad address.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from core.errors import HardwareError

# libfranka opens its command connection to TCP port 1337 on the robot's control unit (the FCI).
FCI_PORT = 1337

T = TypeVar("T")


class ProbeResult(BaseModel):
    host: str
    port: int
    ok: bool
    latency_s: float
    message: str


class DeadlineExceeded(HardwareError):
    """A bounded call did not finish in time (the worker thread is left behind, as a daemon)."""


def call_with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run `fn()` in a daemon thread; return its result, re-raise its exception, or raise
    DeadlineExceeded after `timeout_s`. A call blocked in C code cannot be interrupted from Python,
    so on timeout the thread is abandoned; it ends when the call returns (e.g. the peer closes)."""
    box: dict[str, object] = {}
    done = threading.Event()

    def worker() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            box["error"] = e
        finally:
            done.set()

    thread = threading.Thread(target=worker, name=f"deadline:{what}", daemon=True)
    thread.start()
    # Wait in short slices so Ctrl-C still reaches the main thread promptly.
    deadline = time.monotonic() + timeout_s
    while not done.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"{what}: no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def probe_tcp(host: str, port: int = FCI_PORT, timeout_s: float = 3.0) -> ProbeResult:
    """Open and close one TCP connection to host:port, bounded by `timeout_s` in total (name
    resolution included). Never raises for network reasons: the result says what happened."""
    start = time.monotonic()

    def attempt() -> ProbeResult:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            return ProbeResult(host=host, port=port, ok=False, latency_s=time.monotonic() - start,
                               message=f"cannot resolve {host!r}: {e.strerror or e}")
        last = "no address"
        for family, socktype, proto, _, addr in infos:
            remaining = timeout_s - (time.monotonic() - start)
            if remaining <= 0:
                break
            with socket.socket(family, socktype, proto) as s:
                s.settimeout(remaining)
                try:
                    s.connect(addr)
                except ConnectionRefusedError:
                    last = f"connection refused on {host}:{port} (host is up, nothing listening)"
                    continue
                except TimeoutError:
                    last = f"no answer from {host}:{port} within {timeout_s:g} s (host unreachable or filtered)"
                    continue
                except OSError as e:
                    last = f"cannot connect to {host}:{port}: {e.strerror or e}"
                    continue
                return ProbeResult(host=host, port=port, ok=True, latency_s=time.monotonic() - start,
                                   message=f"{host}:{port} accepts TCP connections")
        return ProbeResult(host=host, port=port, ok=False, latency_s=time.monotonic() - start, message=last)

    try:
        return call_with_deadline(attempt, timeout_s + 0.5, f"probe {host}:{port}")
    except DeadlineExceeded:
        return ProbeResult(host=host, port=port, ok=False, latency_s=time.monotonic() - start,
                           message=f"no answer from {host}:{port} within {timeout_s:g} s (name resolution or "
                                   "connect hung)")
