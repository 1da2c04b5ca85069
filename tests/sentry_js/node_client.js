// @sentry/node (current major) as its quick start configures it, against an
// ErrorCapture DSN: an error, a traced checkout with nested spans (streamed as
// span items, the default of this major), logs and a cron via withMonitor.
// Prints one JSON line with what it sent.
const Sentry = require('@sentry/node');

Sentry.init({
  dsn: process.argv[2],
  release: 'shop-api@3.1.0',
  environment: 'test',
  serverName: 'api-box',
  tracesSampleRate: 1.0,  // tracing on
  enableLogs: true,       // the 9.x/10.x name; 11.x sends logs by default and ignores it
});

function chargeCard(order) {
  return order.payment.card.number;  // the bug: order.payment is undefined
}

function checkout(order) {
  return chargeCard(order);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sent = {};

async function main() {
  await Sentry.startSpan({name: 'POST /checkout', op: 'http.server'}, async (root) => {
    sent.traceId = root.spanContext().traceId;
    await Sentry.startSpan({name: 'SELECT * FROM orders WHERE id = ?', op: 'db.query'}, () => sleep(15));
    await Sentry.startSpan({name: 'POST https://payments.example/charge', op: 'http.client'}, async (charge) => {
      await Sentry.startSpan({name: 'encode body', op: 'serialize'}, () => sleep(2));
      await sleep(10);
      charge.setStatus({code: 2, message: 'deadline_exceeded'});
    });
    try {
      checkout({id: 17});
    } catch (error) {
      sent.eventId = Sentry.captureException(error);
    }
    Sentry.logger.info(Sentry.logger.fmt`order ${17} charged`);
    Sentry.logger.warn('checkout slower than 2 s');
  });
  await Sentry.startSpan({name: 'nightly-batch', op: 'task'}, async (batch) => {
    await sleep(5);
    batch.setStatus({code: 2, message: 'internal_error'});
  });
  await Sentry.withMonitor('nightly-report', () => sleep(20),
                           {schedule: {type: 'crontab', value: '0 3 * * *'}, checkinMargin: 5, maxRuntime: 30});
  sent.flushed = await Sentry.flush(15000);
  console.log(JSON.stringify(sent));
  process.exit(sent.flushed ? 0 : 1);
}

main();
