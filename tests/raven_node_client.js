// Drive the real legacy raven-node (npm `raven`, 2.x) against an ErrorCapture DSN:
//   node tests/raven_node_client.js DSN
// It sends its events to /store/ as base64 of zlib-deflated JSON (lib/client.js
// send()). Prints one JSON line: the event ids and any send errors.
const Raven = require('raven');

const dsn = process.argv[2];
const errors = [];
const eventIds = [];

function parseQuantity(text) {
  const value = Number(text);
  if (Number.isNaN(value)) {
    throw new TypeError('quantity is not a number: ' + text);
  }
  return value;
}

function addToCart(item) {
  return { sku: item.sku, quantity: parseQuantity(item.quantity) };
}

Raven.config(dsn, { release: 'legacy-node@2.0', environment: 'staging', name: 'node-box' }).install(() => {});
Raven.on('error', (e) => errors.push(String(e.message || e)));

function sent(resolve) {
  return (err, eventId) => {
    if (err) errors.push(String(err.message || err));
    else eventIds.push(eventId);
    resolve();
  };
}

(async () => {
  await new Promise((resolve) => {
    try {
      addToCart({ sku: 'A-1', quantity: 'three' });
    } catch (e) {
      Raven.captureException(e, sent(resolve));
    }
  });
  await new Promise((resolve) => Raven.captureMessage('Stock sync fell behind', { level: 'warning' }, sent(resolve)));
  console.log(JSON.stringify({ eventIds, errors }));
  process.exit(0);
})();
