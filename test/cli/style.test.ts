// When the command colours its text: flags first, then NO_COLOR/FORCE_COLOR, then the terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/cli/main.js';
import { wantColor } from '../../src/cli/style.js';
import { FIXTURES } from '../fixtures.js';

const T07 = `${FIXTURES}oracle/t07-pcie-to-pci-bridge-aliasing/sys.tar.gz`;
const ESC = '\x1b[';

test('wantColor: --color/--no-color win over the environment, NO_COLOR over FORCE_COLOR, else the terminal decides', () => {
  assert.equal(wantColor(true, { NO_COLOR: '1' }, false), true);
  assert.equal(wantColor(false, { FORCE_COLOR: '1' }, true), false);
  assert.equal(wantColor(undefined, { NO_COLOR: '1', FORCE_COLOR: '1' }, true), false);
  assert.equal(wantColor(undefined, { NO_COLOR: '' }, true), true, 'an empty NO_COLOR is unset (no-color.org)');
  assert.equal(wantColor(undefined, { FORCE_COLOR: '1' }, false), true);
  assert.equal(wantColor(undefined, { FORCE_COLOR: '0' }, true), false);
  assert.equal(wantColor(undefined, { CI: 'true' }, false), false, 'a CI environment alone does not colour piped output');
  assert.equal(wantColor(undefined, {}, true), true);
  assert.equal(wantColor(undefined, {}, false), false);
});

async function text(args: string[]): Promise<string> {
  let out = '';
  assert.equal(await run(args, (s) => (out += s)), 0);
  return out;
}

test('captured text output is plain unless --color is given, and JSON is never coloured', async () => {
  const saved = process.env.FORCE_COLOR;
  process.env.FORCE_COLOR = '1'; // applies to standard output only, never to a caller's captured output
  try {
    const plain = await text(['groups', '--sysfs', T07]);
    assert.ok(!plain.includes(ESC), 'no escape sequences in captured output');
    assert.match(plain, /^IOMMU group 5$/m);
    const coloured = await text(['groups', '--color', '--sysfs', T07]);
    assert.ok(coloured.includes(`${ESC}1mIOMMU group 5${ESC}22m`), 'bold group headings with --color');
    assert.equal(coloured.replace(/\x1b\[[0-9;]*m/g, ''), plain, 'colour changes nothing but the escapes');
    const json = await text(['groups', '--color', '--sysfs', T07, '--json']);
    assert.ok(!json.includes(ESC));
    assert.ok(!(await text(['groups', '--sysfs', T07])).includes(ESC), 'a later run without --color is plain again');
  } finally {
    if (saved === undefined) delete process.env.FORCE_COLOR;
    else process.env.FORCE_COLOR = saved;
  }
});
