// Paths of the fixtures copied into the project (tests never read ../shared).
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** test/fixtures/ in the source tree (tests run from dist/test/). */
export const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

/** Sub-folders of a fixture folder, sorted. */
export function fixtureCases(sub: string): string[] {
  return readdirSync(FIXTURES + sub, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}
