// Shared by the differential tests: run the CLI in-process and compare partitions.
import assert from 'node:assert/strict';
import { run } from '../../src/cli/main.js';
import type { GroupsJson } from '../../src/cli/groups.js';

/** Run `iommu <args>` expecting exit code 0, and parse its JSON output. */
export async function groupsJson(args: string[]): Promise<GroupsJson> {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  assert.equal(code, 0, `exit code 0 expected; stderr: ${err}`);
  return JSON.parse(out) as GroupsJson;
}

/** A partition as sorted strings, one per group: comparable regardless of group ids. */
export function partition(groups: Iterable<string[]>): string[] {
  return [...groups].map((g) => [...g].sort().join(' ')).sort();
}
