#!/usr/bin/env python3
"""Exits 0 when a CQL server answers on HOST:PORT (default 127.0.0.1:9042), 1 otherwise.

Sends the native protocol's OPTIONS request (protocol v4, stream 0) and waits for SUPPORTED,
the first exchange every driver makes, so "ready" means a client can connect now, not only
that the port is open. Standard library only: services.sh runs it before the project venv exists.
"""
import socket
import struct
import sys

OPCODE_OPTIONS = 0x05
OPCODE_SUPPORTED = 0x06


def main() -> int:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9042
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(2)
            # version (request, v4), flags, stream, opcode, body length
            s.sendall(struct.pack(">BBhBI", 0x04, 0, 0, OPCODE_OPTIONS, 0))
            header = b""
            while len(header) < 9:
                chunk = s.recv(9 - len(header))
                if not chunk:
                    return 1
                header += chunk
    except OSError:
        return 1
    version, _flags, _stream, opcode, _length = struct.unpack(">BBhBI", header)
    return 0 if version == 0x84 and opcode == OPCODE_SUPPORTED else 1


if __name__ == "__main__":
    sys.exit(main())
