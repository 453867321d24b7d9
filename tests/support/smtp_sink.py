#!/usr/bin/env python3
"""A real SMTP server for wabot's tests (aiosmtpd; `pip install aiosmtpd==1.4.6`).

Usage: smtp_sink.py PORT DIR [--stall-domain DOMAIN] [--reject-domain DOMAIN]

Listens on 127.0.0.1:PORT, accepts every message and writes it to DIR as one JSON file
(envelope sender and recipients, the raw data as received, and the headers and body as
Python's e-mail parser decodes them: RFC 2047 words, quoted-printable, base64). Each file is
written under a temporary name and renamed, so a reader never sees half of one. Prints
"ready" on stdout once it accepts connections; stops on SIGTERM or SIGINT.

--stall-domain: a RCPT TO an address of DOMAIN is never answered (a relay stuck
mid-exchange for one destination; other connections go on). --reject-domain: a RCPT TO
an address of DOMAIN is refused with 550 (a permanent rejection). Each refused or stalled
RCPT is counted in DIR/rcpt-DOMAIN.count.
"""

import asyncio

import email
import email.policy
import json
import os
import signal
import sys
import threading
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, stall=None, reject=None):
        self.out = out
        self.stall = stall
        self.reject = reject

    def count(self, domain):
        path = os.path.join(self.out, "rcpt-%s.count" % domain)
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path + ".tmp", "w") as f:
            f.write(str(n + 1))
        os.rename(path + ".tmp", path)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if domain == self.stall:
            self.count(domain)
            await asyncio.sleep(3600)
        if domain == self.reject:
            self.count(domain)
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = "" if msg.is_multipart() else msg.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "raw": raw.decode("utf-8", "replace"),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "body": body,
        }
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        tmp = os.path.join(self.out, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.out, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    options = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    os.makedirs(out, exist_ok=True)
    sink = Sink(out, stall=options.get("--stall-domain"), reject=options.get("--reject-domain"))
    controller = Controller(sink, hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()  # returns once the server answers
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
