// A G-PROC NDVI task round trip through the WSDL with Node's stock `soap` client,
// over HTTPS with an X.509 proxy: register (inline base64 inputs), submit, poll the
// status, read the log, retrieve the output and check its SHA-256. Prints a JSON
// summary on stdout; exits non-zero on any failure.
//
//   node roundtrip.js --url https://127.0.0.1:8443/ --proxy P.pem --ca ca.pem \
//        --red red.tif --nir nir.tif --out ndvi.tif [--timeout 300]
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const soap = require('soap');

const FINAL = new Set(['completed', 'failed', 'cancelled', 'purged']);

function parseArgs(argv) {
  const args = { timeout: '300' };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['url', 'proxy', 'ca', 'red', 'nir', 'out']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  return args;
}

// A proxy file holds the proxy certificate, its key and the chain: split it for TLS.
function proxyAgent(proxyFile, caFile) {
  const pem = fs.readFileSync(proxyFile, 'utf8');
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g);
  const key = pem.match(/-----BEGIN (RSA )?PRIVATE KEY-----[\s\S]+?-----END (RSA )?PRIVATE KEY-----\n?/);
  if (!certs || !key) throw new Error(`${proxyFile} is not a proxy file`);
  return new https.Agent({ cert: certs.join(''), key: key[0], ca: fs.readFileSync(caFile), keepAlive: true });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const one = (v) => (Array.isArray(v) ? v[0] : v);
const many = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const agent = proxyAgent(args.proxy, args.ca);
  const opts = { httpsAgent: agent, timeout: 60000 };
  const url = args.url.replace(/\/?$/, '/');
  const client = await soap.createClientAsync(url + '?wsdl', { wsdl_options: opts });
  const call = async (op, input) => (await client[op + 'Async'](input, opts))[0];

  const info = one((await call('GetServiceInfo', {})).info);
  const spec = {
    tool: 'ndvi',
    client_request_id: 'node-' + crypto.randomUUID(),
    inputs: [
      { name: 'red', content: fs.readFileSync(args.red).toString('base64') },
      { name: 'nir', content: fs.readFileSync(args.nir).toString('base64') },
    ],
  };
  const task = one((await call('RegisterTask', { tasks: [spec] })).task);
  await call('SubmitTask', { task_ids: [task.task_id] });
  const deadline = Date.now() + Number(args.timeout) * 1000;
  let status;
  for (;;) {
    status = one((await call('GetTaskStatus', { task_ids: [task.task_id] })).task);
    if (FINAL.has(status.state)) break;
    if (Date.now() > deadline) throw new Error(`task ${task.task_id} still ${status.state}`);
    await sleep(2000);
  }
  const log = (await call('GetTaskLog', { task_id: task.task_id })).log;
  const summary = {
    caller_dn: info.caller_dn, task_id: task.task_id, accounting_group: task.accounting_group,
    state: status.state, wms_job_id: status.wms_job_id, exit_code: Number(status.exit_code),
    events: many(log.events).map((e) => e.kind), outputs: [],
  };
  if (status.state === 'completed') {
    const result = (await call('RetrieveTaskOutput', { task_id: task.task_id })).result;
    for (const out of many(result.outputs)) {
      const data = Buffer.from(out.content || '', 'base64');
      const sha = crypto.createHash('sha256').update(data).digest('hex');
      if (sha !== out.sha256) throw new Error(`${out.name}: checksum mismatch`);
      if (out.port === 'output') fs.writeFileSync(args.out, data);
      summary.outputs.push({ port: out.port, name: out.name, size: Number(out.size), sha256: sha });
    }
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
  agent.destroy();
}

main().catch((err) => {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  process.stderr.write(`error: ${fault ? JSON.stringify(fault) : (err && err.stack) || err}\n`);
  process.exit(1);
});
