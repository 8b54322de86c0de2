#!/usr/bin/env python3
"""A local SMTP server for the delivery tests (aiosmtpd, Debian's python3-aiosmtpd).

    smtp_sink.py PORT LOG [TEMPFAILS]

Recipients starting with `tempfail` are answered `451 4.3.0 try later` the first TEMPFAILS
times (default 1) each; `reject…` get `550 5.1.1 no such user`; everyone else is accepted and
each accepted message is appended to LOG as one JSON line {"from", "to", "data"}. Prints
READY once it listens.

While a file LOG.down exists every recipient is answered `421 4.3.2 service not available`
(a server going down for maintenance): the fault tests create and remove it to make an outage
without restarting the sink. Stopping the sink process is the other kind of outage (refused).

Each session's greeting and goodbye are appended to LOG.sessions, one line each:
`EHLO <name>` (or `HELO <name>`) and `QUIT`. While a file LOG.strict exists the sink is a
strict relay: EHLO and HELO are answered `504 5.5.2 … need fully-qualified hostname`.
"""

import json
import os
import sys
import threading
import time
from collections import Counter

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, log_path, tempfails):
        self.log_path = log_path
        self.down_path = log_path + ".down"
        self.sessions_path = log_path + ".sessions"
        self.strict_path = log_path + ".strict"
        self.tempfails = tempfails
        self.seen = Counter()
        self.lock = threading.Lock()

    def note(self, line):
        with self.lock, open(self.sessions_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def refusal(self, hostname):
        return f"504 5.5.2 <{hostname}>: Helo command rejected: need fully-qualified hostname"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.note(f"EHLO {hostname}")
        if os.path.exists(self.strict_path):
            return [self.refusal(hostname)]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.note(f"HELO {hostname}")
        if os.path.exists(self.strict_path):
            return self.refusal(hostname)
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    async def handle_QUIT(self, server, session, envelope):
        self.note("QUIT")
        return "221 Bye"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if os.path.exists(self.down_path):
            return "421 4.3.2 service not available"
        local = address.lower()
        if local.startswith("tempfail"):
            with self.lock:
                self.seen[local] += 1
                if self.seen[local] <= self.tempfails:
                    return "451 4.3.0 try later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.content.decode("utf-8", errors="replace")
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            for rcpt in envelope.rcpt_tos:
                log.write(json.dumps({"from": envelope.mail_from, "to": rcpt, "data": data}))
                log.write("\n")
        return "250 2.0.0 OK queued"


def main():
    port = int(sys.argv[1])
    log_path = sys.argv[2]
    tempfails = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    controller = Controller(Sink(log_path, tempfails), hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
