#!/usr/bin/env python3
"""Signs a webhook request the way Twilio does, with Twilio's own Python library
(`pip install twilio==9.13.0`; only `twilio.request_validator` is used, which needs nothing
but the standard library).

Usage: twilio_sign.py < request.json

request.json: {"key": "...", "algorithm": "HMAC_SHA256", "url": "https://...",
               "params": [["Name", "value"], ...]}

Prints the X-Twilio-Signature value, after checking that the library's own validator
accepts it with the algorithm it reads from the settings header Twilio would send.
"""

import json
import sys

from twilio.request_validator import RequestValidator, get_signature_algorithm


def main():
    request = json.load(sys.stdin)
    params = dict(request["params"])
    header = "key=webhooks_sharedkey_test,algorithm=%s" % request["algorithm"]
    algorithm = get_signature_algorithm(header)
    validator = RequestValidator(request["key"])
    signature = validator.compute_signature(request["url"], params, algorithm)
    assert validator.validate(request["url"], params, signature, algorithm)
    print(signature)


if __name__ == "__main__":
    main()
