/**
 * `iommu sim <scenario.json>`: run a scenario (domains, attach, map, DMA,
 * unmaps, invalidations, time) against a topology and print the trace.
 * Refused steps and faults are part of the trace (exit 0); a scenario that
 * cannot be read or does not validate is a failure (exit 1).
 */
import { readFileSync } from 'node:fs';
import { pc } from './style.js';
import { IommuError } from '../base/errno.js';
import { Scenario } from '../sim/scenario-schema.js';
import { runScenario, type SimTrace } from '../sim/run.js';
import type { Machine } from '../machine/machine.js';

/**
 * Read and validate a scenario file.
 * @throws IommuError ENOENT (unreadable), EINVAL (not JSON, or not a valid scenario: the message lists each problem with its JSON path).
 */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    throw new IommuError('ENOENT', `cannot read the scenario: ${(e as Error).message}`, { input: path, cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new IommuError('EINVAL', `not JSON: ${(e as Error).message}`, { input: path });
  }
  const r = Scenario.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => `  at ${i.path.length ? i.path.join('.') : '(top)'}${stepOf(json, i.path)}: ${describeIssue(json, i.path, i.message)}`);
    throw new IommuError('EINVAL', `not a valid scenario:\n${lines.join('\n')}`, { input: path });
  }
  return r.data;
}

/** The value at `path` in `json`, or undefined. */
function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let v = json;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** ` (step N, "op")` for an issue inside `steps[N]`, naming the step's op when it has one. */
function stepOf(json: unknown, path: readonly PropertyKey[]): string {
  if (path[0] !== 'steps' || typeof path[1] !== 'number') return '';
  const op = valueAt(json, ['steps', path[1], 'op']);
  return ` (step ${path[1]}${typeof op === 'string' ? `, "${op}"` : ''})`;
}

/** The issue's message, saying "missing" for an absent field (zod says only "Invalid input" for unions). */
function describeIssue(json: unknown, path: readonly PropertyKey[], message: string): string {
  const parent = path.length ? valueAt(json, path.slice(0, -1)) : undefined;
  const absent = path.length > 0 && parent !== null && typeof parent === 'object' && valueAt(json, path) === undefined;
  return absent && /^Invalid input$/.test(message) ? 'missing (required)' : message;
}

/** Run the scenario file on `machine` (or its own topology). */
export function simulate(path: string, machine: Machine | null): SimTrace {
  return runScenario(loadScenario(path), machine);
}

/** Text rendering of a trace. */
export function formatSimText(t: SimTrace): string {
  const out: string[] = [];
  out.push(pc.bold(`${t.iommu.driver} (${t.iommu.unit}), default domain ${t.iommu.defaultDomainType}, ${t.iommu.strict ? 'strict' : 'lazy'} invalidation`));
  out.push('');
  for (const e of t.events) {
    const mark = e.ok ? pc.green('✓') : e.fault ? pc.red('✗') : pc.yellow('!');
    out.push(`${String(e.step).padStart(3)} ${mark} ${e.text}`);
    if (e.fault) out.push(pc.dim(`        fault: ${e.fault.access} ${e.fault.iova} by ${e.fault.device}, ${e.fault.reason}, domain ${e.fault.domain}${e.fault.handled ? ', handled by the domain\'s fault handler' : ', no handler: counted and logged'}`));
    for (const n of e.notifications ?? []) out.push(pc.cyan(`        → ${n.subscriber}: ${n.cmd.toUpperCase()} IOASID ${n.id} (set ${n.set}, pdata ${JSON.stringify(n.pdata)})`));
  }
  out.push('');
  // The groups as they are after the steps (hot-plug, VFs and subdevices change them).
  out.push(pc.bold('IOMMU groups after the steps:'));
  for (const g of t.groups) out.push(`  group ${g.id} [${g.type}]: ${g.devices.join(', ')}`);
  if (t.groups.length === 0) out.push('  (none)');
  out.push('');
  out.push(`faults: ${t.faults.length}; IOTLB: ${t.iotlb['hits']} hits, ${t.iotlb['misses']} misses, ${t.iotlb['evictions']} evictions`);
  return out.join('\n') + '\n';
}
