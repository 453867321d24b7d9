#!/usr/bin/env python3
"""A real SMTP server for wabot's tests (aiosmtpd; `pip install aiosmtpd==1.4.6`).

Usage: smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT, accepts every message and writes it to DIR as one JSON file
(envelope sender and recipients, the raw data as received, and the headers and body as
Python's e-mail parser decodes them: RFC 2047 words, quoted-printable, base64). Each file is
written under a temporary name and renamed, so a reader never sees half of one. Prints
"ready" on stdout once it accepts connections; stops on SIGTERM or SIGINT.
"""

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
    def __init__(self, out):
        self.out = out

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
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()  # returns once the server answers
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
