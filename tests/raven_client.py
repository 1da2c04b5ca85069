"""Drive the real legacy `raven` (raven-python) client against an ErrorCapture DSN,
in its own process, as tests/sdk_client.py does for sentry-sdk.

    python tests/raven_client.py DSN SCENARIO

Prints one JSON line with what the scenario sent (event ids) and exits 0 once
every send was answered (the synchronous HTTP transport waits for each)."""
import json
import logging
import sys

from raven import Client
from raven.handlers.logging import SentryHandler
from raven.transport.http import HTTPTransport


def apply_discount(price, percent):
    factor = 100 / percent  # the bug: percent may be 0
    return price / factor


def checkout(cart):
    return apply_discount(cart['price'], cart['discount'])


def scenario_exception(client, sent):
    try:
        checkout({'price': 120, 'discount': 0})
    except ZeroDivisionError:
        sent['eventIds'] = [client.captureException()]


def scenario_message(client, sent):
    sent['eventIds'] = [client.captureMessage('Nightly export finished late')]


def scenario_logging(client, sent):
    logger = logging.getLogger('legacy.billing')
    logger.propagate = False
    logger.addHandler(SentryHandler(client, level=logging.WARNING))
    logger.warning('Invoice %s is overdue', 'INV-7')
    logger.error('Card for customer %s was declined', 42)
    sent['logged'] = 2


SCENARIOS = {name[len('scenario_'):]: fn for name, fn in globals().items() if name.startswith('scenario_')}


def main(argv):
    dsn, name = argv[1], argv[2]
    errors = []
    client = Client(dsn, transport=HTTPTransport, release='legacy-app@3.1', environment='production',
                    name='legacy-box', raise_send_errors=True)
    client.remote.get_transport()  # fail here, not silently later, if the DSN does not parse
    sent = {}
    try:
        SCENARIOS[name](client, sent)
    except Exception as exc:  # raise_send_errors: an answer other than 2xx
        errors.append('%s: %s' % (type(exc).__name__, exc))
    sent['errors'] = errors
    print(json.dumps(sent))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
