"""Why a broker cannot be reached, said once per outage: shared by the publisher and ``emocam listen``.

paho-mqtt 2 reports a failed connection attempt on its network thread in one of three ways:

- ``on_connect_fail`` when the socket could not be opened: connection refused, unknown host, a
  TLS handshake that failed (TLS against a plain port). paho calls it inside its ``except
  OSError`` block and passes no error, so ``sys.exception()`` there is the reason;
- ``on_connect`` with a failure reason code when the broker answered and said no: bad user name
  or password, not authorized;
- ``on_disconnect`` before any CONNACK when something took the TCP connection but never answered
  in MQTT: an HTTP or SSH server, a TLS port reached over plain TCP.

``BrokerOutage`` turns each into one short reason ("connection refused") and logs it at WARNING
the first time an outage shows it; the same reason on later retries goes to DEBUG, so a broker
that stays down for a day costs one line, not one per back-off step. A different reason within
the outage (the broker came back but now refuses the login) is news, and is logged at WARNING once.
A successful connection ends the outage.
"""

from __future__ import annotations

import logging
import socket
import ssl

from emocam.edge.mqtt.settings import BrokerAddress

_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def broker_name(broker: BrokerAddress) -> str:
    """``host:port`` as users write it (``[::1]:1883`` for an IPv6 address)."""
    host = f"[{broker.host}]" if ":" in broker.host else broker.host
    return f"{host}:{broker.port}"


def describe_socket_error(exc: BaseException | None, broker: BrokerAddress) -> str:
    """An error of opening the connection (``on_connect_fail``) in a few words."""
    if exc is None:
        return "unreachable"
    if isinstance(exc, socket.gaierror):
        if exc.errno in _NO_SUCH_HOST:
            return "unknown host"
        return f"host name lookup failed ({exc.strerror})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({exc.verify_message}; is [mqtt] ca_file the broker's CA?)"
    tls_hint = f"is port {broker.port} a TLS listener?"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({getattr(exc, 'reason', None) or exc.strerror or exc}; {tls_hint})"
    if broker.tls and isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        # What a plain listener does with a TLS ClientHello: it reads garbage and hangs up.
        return f"TLS handshake failed (the server hung up; {tls_hint})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]  # "No route to host" -> "no route to host"
    return str(exc) or type(exc).__name__


def describe_refusal(reason: object) -> str:
    """A CONNACK that says no (``on_connect`` with a failure reason code)."""
    return f"the broker refused the connection ({reason})"


def describe_no_answer(reason: object, broker: BrokerAddress) -> str:
    """A connection that closed before the broker's CONNACK (``on_disconnect`` while connecting)."""
    if str(reason) == "Keep alive timeout":
        return "the server never answered in MQTT (is it an MQTT broker?)"
    detail = "" if str(reason) == "Unspecified error" else f", {reason}"  # paho's word for "it hung up"
    hint = "is it an MQTT broker?" if broker.tls else "is it an MQTT broker? a TLS port needs mqtts://"
    return f"the server hung up without an MQTT answer{detail} ({hint})"


class BrokerOutage:
    """Connection attempts to one broker: the reason of each outage, logged once.

    Call ``attempt`` from ``on_pre_connect``, ``socket_failed`` from ``on_connect_fail``,
    ``refused`` or ``connected`` from ``on_connect`` and ``disconnected`` from ``on_disconnect``;
    all of them run on paho's network thread.
    """

    def __init__(self, logger: logging.Logger, broker: BrokerAddress, retrying: str = "retrying with back-off") -> None:
        self._log = logger
        self._broker = broker
        self._retrying = retrying
        self.name = broker_name(broker)
        self.reason: str | None = "no connection yet"  # why there is no connection now; None while connected
        self._warned: set[str] = set()
        self._up = False
        self._answered = False  # the broker answered this attempt's CONNECT (accepted or refused)

    def attempt(self) -> None:
        self._answered = False

    def socket_failed(self, exc: BaseException | None) -> None:
        self._failed(describe_socket_error(exc, self._broker))

    def refused(self, reason: object) -> None:
        self._answered = True
        self._failed(describe_refusal(reason))

    def connected(self) -> None:
        self._answered = self._up = True
        self.reason = None
        self._warned.clear()

    def disconnected(self, reason: object) -> bool:
        """True when an established connection was lost (the caller says so in its own words);
        False when an attempt failed before the broker answered, which is logged here."""
        if self._up:
            self._up = False
            self.reason = f"lost the connection ({reason})"
            return True
        if not self._answered:
            self._failed(describe_no_answer(reason, self._broker))
        return False

    def _failed(self, reason: str) -> None:
        self.reason = reason
        report = self._log.debug if reason in self._warned else self._log.warning
        self._warned.add(reason)
        report("cannot connect to MQTT broker %s: %s; %s", self.name, reason, self._retrying)
