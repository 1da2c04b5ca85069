"""Drive the real sentry-sdk against an ErrorCapture DSN, in its own process.

    python tests/sdk_client.py DSN SCENARIO [gzip|none|default|default-without-brotli]

The tests run this in a subprocess: inside pytest, the SDK's auto-enabled
integrations would instrument the server under test itself. Prints one JSON
line with what the scenario sent (event ids, trace ids) and exits 0 after
sentry_sdk.flush(). "default" leaves the transport as the SDK sets it up (br
when brotli is installed, as it is beside ErrorCapture); "default-without-brotli"
is an app without brotli: the import fails and the SDK falls back to gzip."""
import json
import logging
import sys

if len(sys.argv) > 3 and sys.argv[3] == 'default-without-brotli':
    sys.modules['brotli'] = None  # "import brotli" raises ImportError, as where it is not installed
    sys.modules['brotlicffi'] = None

import sentry_sdk  # noqa: E402
from sentry_sdk.crons import monitor  # noqa: E402

CRON_CONFIG = {'schedule': {'type': 'crontab', 'value': '0 3 * * *'}, 'checkin_margin': 10, 'max_runtime': 30,
               'timezone': 'Europe/Berlin'}


def divide(total, parts):
    share = total / parts  # the bug: parts may be 0
    return share


def split_bill(order):
    return divide(order['total'], order['people'])


def scenario_error_twice(sent):
    for order in ({'total': 10, 'people': 0}, {'total': 99, 'people': 0}):
        try:
            split_bill(order)
        except ZeroDivisionError:
            sent.setdefault('eventIds', []).append(sentry_sdk.capture_exception())


def scenario_message(sent):
    sent['eventIds'] = [sentry_sdk.capture_message('Deploy finished with warnings', level='warning')]


def scenario_logging(sent):
    logging.getLogger('shop.orders').error('Order %s could not be charged', 17)
    sent['logged'] = True


def scenario_logging_params(sent):
    log = logging.getLogger('shop.customers')
    for name in ('alice', 'bob'):
        log.error('Customer %s has no billing address', name)
    sent['logged'] = 2


def scenario_transaction(sent):
    with sentry_sdk.start_transaction(op='task', name='nightly-batch') as transaction:
        sent['traceId'] = transaction.trace_id
        with sentry_sdk.start_span(op='db.query', name='SELECT * FROM orders'):
            sum(range(10000))
        with sentry_sdk.start_span(op='http.client', name='POST https://payments.example/charge') as outer:
            with outer.start_child(op='serialize', name='encode body'):
                sum(range(10000))


@monitor(monitor_slug='nightly-report', monitor_config=CRON_CONFIG)
def nightly_report(fail):
    if fail:
        raise RuntimeError('report database unreachable')
    return 'done'


def scenario_cron_ok(sent):
    sent['result'] = nightly_report(False)


def scenario_cron_fail(sent):
    try:
        nightly_report(True)
    except RuntimeError:
        sent['raised'] = True


def scenario_logs(sent):
    sentry_sdk.logger.info('User {user} logged in', user='bob')
    sentry_sdk.logger.warning('Disk {disk} almost full', disk='/dev/sda1')
    sent['logs'] = 2


ATTACHED_LOG = b'\n'.join(b'2026-12-01 10:00:%02d INFO step %d of the import' % (i, i) for i in range(40))


def scenario_attachment(sent):
    scope = sentry_sdk.get_isolation_scope()
    scope.add_attachment(bytes=ATTACHED_LOG, filename='import.log', content_type='text/plain')
    scope.add_attachment(bytes=b'{"rows": 1204, "failed": 3}', filename='summary.json',
                         content_type='application/json')
    try:
        split_bill({'total': 5, 'people': 0})
    except ZeroDivisionError:
        sent['eventIds'] = [sentry_sdk.capture_exception()]
    sent['attached'] = {'import.log': len(ATTACHED_LOG)}


SCENARIOS = {name[len('scenario_'):]: fn for name, fn in globals().items() if name.startswith('scenario_')}


def main(argv):
    dsn, name = argv[1], argv[2]
    compression = argv[3] if len(argv) > 3 else 'gzip'
    experiments = {'gzip': {'transport_compression_algo': 'gzip'},
                   'none': {'transport_compression_level': 0}}.get(compression, {})
    sentry_sdk.init(dsn=dsn, traces_sample_rate=1.0, release='sdk-client@1.0', environment='test',
                    server_name='sdk-box', enable_logs=(name == 'logs'), _experiments=experiments)
    sent = {}
    SCENARIOS[name](sent)
    sentry_sdk.flush(timeout=20)
    print(json.dumps(sent))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
