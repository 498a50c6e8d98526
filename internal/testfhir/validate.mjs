// Validates FHIR R4 resources against the official StructureDefinitions with
// @medplum/core's validateResource. Input on stdin: one resource or a JSON
// array of resources. Output on stdout: a JSON array with one entry per
// resource, {resourceType, issues: [{severity, code, expression, text}]}.
// Exit status 0 when it ran (issues or not), 2 when the input is unreadable.
import { readFileSync } from 'node:fs';
import { normalizeOperationOutcome, validateResource } from '@medplum/core';
import { loadR4 } from './defs.mjs';

let input;
try {
  input = JSON.parse(readFileSync(0, 'utf8'));
} catch (err) {
  process.stderr.write(`validate: stdin is not JSON: ${err.message}\n`);
  process.exit(2);
}
loadR4();
const resources = Array.isArray(input) ? input : [input];
const out = resources.map((r) => {
  let issues;
  try {
    issues = validateResource(r) ?? [];
  } catch (err) {
    issues = normalizeOperationOutcome(err).issue ?? [];
  }
  return {
    resourceType: r?.resourceType ?? '',
    issues: issues.map((i) => ({
      severity: i.severity,
      code: i.code,
      expression: (i.expression ?? []).join(', '),
      text: i.details?.text ?? i.diagnostics ?? '',
    })),
  };
});
process.stdout.write(JSON.stringify(out));
