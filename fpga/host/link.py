"""The host end of the byte protocol (:mod:`hw.protocol`) over a serial port, to a board or to the
virtual board (its pseudo-terminal): :class:`BoardLink` sends requests and reads responses;
:meth:`BoardLink.generate` streams tokens as they arrive."""

import contextlib
import os
import time

from hw.protocol import Error, FrameReader, Request, Response, frame, generate_frame, prompt_frames

READ_CHUNK = 256


class LinkError(RuntimeError):
    """The board cannot be reached, or the link to it broke."""


class ProtocolError(LinkError):
    """The board did not answer as the protocol says (in time, or with the expected response)."""


def serial_ports() -> list[str]:
    """The serial ports this machine has (pyserial's list)."""
    from serial.tools.list_ports import comports

    return sorted(port.device for port in comports())


@contextlib.contextmanager
def serial_link(port_name: str, baud: int, timeout: float):
    """A :class:`BoardLink` on the serial port ``port_name`` (a board's, or the virtual board's
    pseudo-terminal), closed after; a port that cannot be opened is a LinkError naming the ports
    that exist."""
    import serial

    try:
        port = serial.Serial(port_name, baud, timeout=0.05)
    except (serial.SerialException, OSError) as e:
        reason = os.strerror(e.errno) if getattr(e, "errno", None) else str(e)
        ports = serial_ports()
        raise LinkError(f"cannot open the serial port {port_name} ({reason}); serial ports here: "
                        + (", ".join(ports) if ports else "none")) from None
    with port:
        yield BoardLink(port, timeout=timeout, name=port_name)


class BoardLink:
    """Requests and responses over ``port`` (a pyserial ``Serial`` or anything with ``read`` and
    ``write``); ``timeout`` seconds without the expected response raise ProtocolError, a read or
    write that fails (a board unplugged) LinkError. ``name`` (the port's) goes into their messages."""

    def __init__(self, port, *, timeout: float = 30.0, name: str | None = None):
        self.port, self.timeout = port, timeout
        self.name = name or getattr(port, "port", None) or "the board"
        self.reader = FrameReader()
        self.pending = []

    def _read(self) -> bytes:
        try:
            return self.port.read(READ_CHUNK)
        except OSError as e:          # pyserial's SerialException is an OSError
            raise LinkError(f"reading from {self.name} failed: {e}") from None

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except OSError as e:
            raise LinkError(f"writing to {self.name} failed: {e}") from None

    def _responses(self):
        """Responses as they arrive (waits up to ``timeout`` for each)."""
        deadline = time.monotonic() + self.timeout
        while True:
            if self.pending:
                deadline = time.monotonic() + self.timeout
                yield self.pending.pop(0)
                continue
            data = self._read()
            if data:
                self.pending += self.reader.feed(data)
            elif time.monotonic() > deadline:
                raise ProtocolError(f"no response from the board on {self.name} within "
                                    f"{self.timeout:g} s")

    def request(self, data: bytes, answer: Response):
        """Send ``data``; return the fields of the first ``answer`` (an ERROR raises)."""
        self._write(data)
        for kind, fields in self._responses():
            if kind == Response.ERROR:
                code, request = fields
                raise ProtocolError(f"the board answered error {_error_name(code)} to request "
                                    f"{_request_name(request)}")
            if kind == answer:
                return fields

    def status(self) -> dict:
        position, tokens, flags, vocab, context, cycles = self.request(frame(Request.STATUS),
                                                                        Response.STATUS)
        return dict(position=position, tokens=tokens, flags=flags, vocab=vocab, context=context,
                    cycles=cycles)

    def reset(self) -> None:
        self.request(frame(Request.RESET), Response.OK)

    def prompt(self, tokens) -> int:
        """Send prompt tokens; returns the position after them."""
        position = None
        for data in prompt_frames(tokens):
            (position,) = self.request(data, Response.OK)
        return position

    def generate(self, count: int, *, temperature: float = 0.0, top_k=None, seed: int = 0):
        """Yield each generated token as it arrives; then ``self.done`` holds DONE's fields."""
        self._write(generate_frame(count, temperature=temperature, top_k=top_k, seed=seed))
        for kind, values in self._responses():
            if kind == Response.TOKEN:
                yield values[0]
            elif kind == Response.DONE:
                self.done = dict(zip(("tokens", "position", "flags"), values))
                return
            elif kind == Response.ERROR:
                raise ProtocolError(f"the board answered error {_error_name(values[0])}")


def _error_name(code):
    return Error(code).name if code in Error._value2member_map_ else str(code)


def _request_name(kind):
    return Request(kind).name if kind in Request._value2member_map_ else str(kind)
