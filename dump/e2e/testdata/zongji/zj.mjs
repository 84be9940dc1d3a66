// zj.mjs HOST PORT USER PASSWORD SCHEMA WANT TIMEOUT_MS
// Prints one line per row change of SCHEMA ("insert 5", "update 5",
// "delete 5", keyed by the first column) and exits after WANT changes, or
// with status 2 after TIMEOUT_MS.
import ZongJi from '@vlasky/zongji';
const [host, port, user, password, schema, want, timeout] = process.argv.slice(2);
const zj = new ZongJi({ host, port: Number(port), user, password });
let n = 0;
const done = (code) => { zj.stop(); setTimeout(() => process.exit(code), 200); };
zj.on('binlog', (evt) => {
  const name = evt.getEventName();
  const op = { writerows: 'insert', updaterows: 'update', deleterows: 'delete' }[name];
  if (!op) return;
  for (const row of evt.rows) {
    const r = op === 'update' ? row.after : row;
    const first = Object.values(r)[0];
    process.stdout.write(`${op} ${first}\n`);
    n++;
  }
  if (n >= Number(want)) done(0);
});
zj.on('error', (err) => { process.stderr.write(`zongji error: ${err && (err.stack || err.message || err)}\n`); process.exit(1); });
zj.start({
  serverId: 2001,
  includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows'],
  includeSchema: { [schema]: true },
});
setTimeout(() => { process.stderr.write(`timeout after ${n} changes\n`); process.exit(2); }, Number(timeout));
