#!/usr/bin/env python3
"""Record what the real sentry-sdk sends, as bench fixtures for bench/peer_bugsink.py.

    python bench/capture_sdk_envelopes.py      # writes bench/fixtures/sentry_python_envelopes.json

sentry_sdk.init() with default options and a transport that keeps each
envelope's bytes (what the SDK's HTTP transport would compress and POST)
instead of sending it. The errors come from a small order-processing app: an
uncaught-style exception with local variables and breadcrumbs, a chained
exception, a logging.error() with exc_info, and capture_message(). The
peer benchmark rewrites the DSN, key, ids and timestamps per target and run.
"""
import json
import logging
import os
import platform
import sys
import time

import sentry_sdk
from sentry_sdk.transport import Transport

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "sentry_python_envelopes.json")
# A DSN of the shape the peers hand out; the benchmark replaces it per target.
DSN = "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"


class RecordingTransport(Transport):
    """Keeps every envelope the SDK hands over, serialized as it would send it."""
    envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope.serialize().decode("utf-8"))

    def flush(self, timeout, callback=None):
        return None


class OutOfStock(Exception):
    pass


def reserve(cart, stock):
    for sku, quantity in cart.items():
        available = stock.get(sku, 0)
        if available < quantity:
            raise OutOfStock("%s: %d wanted, %d left" % (sku, quantity, available))
        stock[sku] = available - quantity


def checkout(user_id, cart):
    stock = {"sku-1": 3, "sku-2": 0}
    sentry_sdk.add_breadcrumb(category="cart", message="checkout started", data={"items": len(cart)})
    reserve(cart, stock)


def parse_price(text):
    try:
        return float(text)
    except ValueError as exc:
        raise RuntimeError("price %r is not a number" % text) from exc


def main():
    RecordingTransport.envelopes = []
    sentry_sdk.init(dsn=DSN, transport=RecordingTransport, release="shop@1.4.2", environment="production",
                    server_name="web-1")
    sentry_sdk.set_user({"id": "42", "email": "ada@example.com"})
    sentry_sdk.set_tag("region", "eu-west")
    log = logging.getLogger("shop.orders")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    log.info("order service started")  # a breadcrumb (LoggingIntegration, on by default)
    try:
        checkout("42", {"sku-1": 1, "sku-2": 2})
    except OutOfStock:
        sentry_sdk.capture_exception()
    try:
        parse_price("12,50")
    except RuntimeError:
        log.error("could not price the order", exc_info=True)
    try:
        {}["missing"]
    except KeyError:
        sentry_sdk.capture_exception()
    sentry_sdk.capture_message("payment provider answered slowly", level="warning")
    sentry_sdk.flush()
    envelopes = [e for e in RecordingTransport.envelopes if '"type":"event"' in e.split("\n")[1].replace(" ", "")]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"sdk": "sentry.python %s" % sentry_sdk.VERSION, "python": platform.python_version(),
                   "captured": time.strftime("%Y-%m-%d", time.gmtime()), "dsn": DSN,
                   "envelopes": envelopes}, f, indent=1)
    print("wrote %d envelopes (%s bytes) to %s" % (len(envelopes), ", ".join(str(len(e)) for e in envelopes), OUT))


if __name__ == "__main__":
    main()
