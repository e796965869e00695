// client.js URL - follows an event stream with the `eventsource` package and
// prints one JSON line per event (and per open/error), so a test can check
// what a real EventSource does: reconnect by itself, resume with
// Last-Event-ID, never show an event twice.
'use strict';
const EventSource = require('eventsource');

const es = new EventSource(process.argv[2]);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

es.onopen = () => print({ kind: 'open' });
es.onerror = () => print({ kind: 'error' });
for (const type of ['message', 'presence', 'reset', 'direct']) {
  es.addEventListener(type, (e) => print({ kind: 'event', type, id: e.lastEventId, data: e.data }));
}
process.on('SIGTERM', () => { es.close(); process.exit(0); });
