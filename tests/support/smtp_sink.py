"""A real SMTP server for the integration tests (aiosmtpd).

Usage: python3 smtp_sink.py OUT_DIR

Listens on 127.0.0.1 on a free port and prints that port on the first line of stdout. Each
message received is written to OUT_DIR/NNNN.eml in arrival order (written under a temporary
name, then renamed, so a reader never sees half a message), with the client's address and
port in OUT_DIR/NNNN.peer, so tests can tell which connection a message came over.
"""

import asyncio
import os
import pathlib
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out: pathlib.Path) -> None:
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = self.out / f"{self.count:04d}"
        (stem.with_suffix(".peer")).write_text(f"{session.peer[0]}:{session.peer[1]}\n")
        tmp = stem.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        os.rename(tmp, stem.with_suffix(".eml"))
        return "250 Message accepted"


async def main() -> None:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    handler = Sink(out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test"), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
