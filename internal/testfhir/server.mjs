// A real FHIR R4 server for tests: Medplum's FhirRouter over a MemoryRepository,
// served over HTTP at http://127.0.0.1:PORT/fhir/R4. Transactions are atomic
// (FhirRequestConfig.transactions), conditional create honours ifNoneExist,
// and search runs Medplum's own search over the R4 SearchParameters.
//
// Like the Medplum server (and unlike the bare router), every resource written
// is first validated against the R4 StructureDefinitions; an invalid resource
// is refused with 400 and an OperationOutcome, and nothing of its Bundle is
// stored.
//
// Usage: node server.mjs --port N   (prints "listening PORT" once ready)
import http from 'node:http';
import { badRequest, getStatus, normalizeOperationOutcome, validateResource } from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { loadR4 } from './defs.mjs';

const PREFIX = '/fhir/R4';
const MAX_BODY = 8 << 20;

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

loadR4();
const router = new FhirRouter();
const repo = new MemoryRepository();

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

// written returns the resources a request would write.
function written(method, body) {
  if (!body || typeof body !== 'object') return [];
  if (method === 'POST' && body.resourceType === 'Bundle') {
    return (body.entry ?? []).filter((e) => e.resource && e.request?.method !== 'PATCH').map((e) => e.resource);
  }
  if (method === 'POST' || method === 'PUT') return [body];
  return [];
}

function invalid(resources) {
  const issues = [];
  resources.forEach((r, i) => {
    let found;
    try {
      found = validateResource(r) ?? [];
    } catch (err) {
      found = normalizeOperationOutcome(err).issue ?? [];
    }
    for (const is of found) {
      if (is.severity === 'error' || is.severity === 'fatal') {
        issues.push({ ...is, diagnostics: `resource ${i} (${r?.resourceType ?? 'no resourceType'})` });
      }
    }
  });
  return issues.length ? { resourceType: 'OperationOutcome', issue: issues } : undefined;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (!url.pathname.startsWith(PREFIX)) {
    return send(res, 404, badRequest(`no FHIR base at ${url.pathname}; the base is ${PREFIX}`));
  }
  const path = url.pathname.slice(PREFIX.length).replace(/^\/+/, '');
  let body;
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > MAX_BODY) return send(res, 413, badRequest(`body over ${MAX_BODY} bytes`));
      chunks.push(c);
    }
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      return send(res, 400, badRequest(`body is not JSON: ${err.message}`));
    }
    const bad = invalid(written(req.method, body));
    if (bad) return send(res, 400, bad);
  }
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: path + url.search,
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  const status = getStatus(outcome);
  send(res, status, resource ?? outcome);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 500, normalizeOperationOutcome(err)));
});
server.listen(Number(arg('--port', '0')), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
