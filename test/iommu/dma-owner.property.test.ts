// State-machine property test of DMA ownership across a three-device group:
// random binds, unbinds, claims, releases, attaches and detaches, checked
// after every step against an independent model of the rules, with the
// invariants: never owned while a kernel-DMA driver is bound; never on the
// default domain while owned; owner count = bound kernel-DMA drivers + claims;
// every refusal carries Linux's errno and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IommuError } from '../../src/base/errno.js';
import { deviceBindDriver, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { iommuAttachGroup, iommuDetachGroup, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuDeviceClaimDmaOwner, iommuDeviceReleaseDmaOwner, iommuGroupClaimDmaOwner, iommuGroupReleaseDmaOwner } from '../../src/iommu/dma-owner.js';
import type { IommuDomain } from '../../src/iommu/domain.js';
import { bootSmall } from './helpers.js';

type Cmd =
  | { c: 'bind'; dev: number; drv: 'e1000e' | 'vfio-pci' | 'pci-stub' }
  | { c: 'unbind'; dev: number }
  | { c: 'claimGroup'; owner: number }
  | { c: 'releaseGroup' }
  | { c: 'claimDevice'; dev: number; owner: number }
  | { c: 'releaseDevice'; dev: number }
  | { c: 'attach'; dom: number }
  | { c: 'detach' };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ c: fc.constant('bind' as const), dev: fc.integer({ min: 0, max: 2 }), drv: fc.constantFrom('e1000e' as const, 'vfio-pci' as const, 'pci-stub' as const) }),
  fc.record({ c: fc.constant('unbind' as const), dev: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ c: fc.constant('claimGroup' as const), owner: fc.integer({ min: 0, max: 1 }) }),
  fc.constant({ c: 'releaseGroup' as const }),
  fc.record({ c: fc.constant('claimDevice' as const), dev: fc.integer({ min: 0, max: 2 }), owner: fc.integer({ min: 0, max: 1 }) }),
  fc.record({ c: fc.constant('releaseDevice' as const), dev: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ c: fc.constant('attach' as const), dom: fc.integer({ min: 0, max: 1 }) }),
  fc.constant({ c: 'detach' as const }),
);

test('DMA ownership state machine: invariants and errnos after every step', () => {
  fc.assert(
    fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 50 }), (cmds) => {
      const b = bootSmall('intel_iommu=on');
      // The group {00:02.0 (root port without ACS), 02:00.0, 02:00.1}.
      const devs = ['0000:00:02.0', '0000:02:00.0', '0000:02:00.1'].map((x) => b.dev(x));
      const g = b.core.groups.get(devs[1]!)!;
      b.core.groups.put(g);
      const owners = [{ name: 'ctx0' }, { name: 'ctx1' }];
      const doms = [iommuPagingDomainAlloc(devs[1]!), iommuPagingDomainAlloc(devs[1]!)];
      // Independent model of the state.
      const kernelBound = new Set<number>(); // devices bound to a kernel-DMA driver
      const bound = new Map<number, string>();
      let owner: object | null = null;
      let groupClaim = false;
      const deviceClaims = new Map<number, number>(); // device → claims
      let userDomain: IommuDomain | null = null; // the attached non-core domain
      const claims = () => (groupClaim ? 1 : 0) + [...deviceClaims.values()].reduce((a, b) => a + b, 0);
      for (const cmd of cmds) {
        const snapshot = { cnt: g.ownerCnt, owner: g.owner, domain: g.domain };
        let want: string | null = null; // expected errno, null = success
        const onDefault = userDomain === null && owner === null;
        switch (cmd.c) {
          case 'bind': {
            if (bound.has(cmd.dev)) want = 'EBUSY';
            else if (cmd.drv === 'e1000e' && g.ownerCnt > 0 && (owner !== null || !onDefault)) want = 'EBUSY';
            break;
          }
          case 'claimGroup':
            if (g.ownerCnt !== 0) want = 'EPERM';
            else if (userDomain !== null) want = 'EBUSY';
            break;
          case 'claimDevice':
            if (g.ownerCnt !== 0 && owner !== owners[cmd.owner]) want = 'EPERM';
            else if (g.ownerCnt === 0 && userDomain !== null) want = 'EBUSY';
            break;
          case 'attach':
            if (userDomain !== null) want = 'EBUSY';
            break;
          default:
            break;
        }
        // Skip calls outside the API's contract (Linux WARNs): releasing what was not claimed.
        if (cmd.c === 'releaseGroup' && !groupClaim) continue;
        if (cmd.c === 'releaseDevice' && !deviceClaims.get(cmd.dev)) continue;
        if (cmd.c === 'unbind' && !bound.has(cmd.dev)) continue;
        if (cmd.c === 'detach' && userDomain === null) continue;
        let got: string | null = null;
        try {
          const dev = 'dev' in cmd ? devs[cmd.dev]! : devs[0]!;
          switch (cmd.c) {
            case 'bind':
              deviceBindDriver(dev, driverByName(cmd.drv));
              break;
            case 'unbind':
              deviceReleaseDriver(dev);
              break;
            case 'claimGroup':
              iommuGroupClaimDmaOwner(b.core, g, owners[cmd.owner]!);
              break;
            case 'releaseGroup':
              iommuGroupReleaseDmaOwner(b.core, g);
              break;
            case 'claimDevice':
              iommuDeviceClaimDmaOwner(b.core, dev, owners[cmd.owner]!);
              break;
            case 'releaseDevice':
              iommuDeviceReleaseDmaOwner(b.core, dev);
              break;
            case 'attach':
              iommuAttachGroup(b.core, doms[cmd.dom]!, g);
              break;
            case 'detach':
              iommuDetachGroup(b.core, userDomain!, g);
              break;
          }
        } catch (e) {
          if (!(e instanceof IommuError)) throw e;
          got = e.errno;
        }
        assert.equal(got, want, `${JSON.stringify(cmd)}`);
        if (got !== null) {
          // A refusal changes nothing.
          assert.deepEqual({ cnt: g.ownerCnt, owner: g.owner, domain: g.domain }, snapshot, `unchanged after ${JSON.stringify(cmd)}`);
        } else {
          switch (cmd.c) {
            case 'bind':
              bound.set(cmd.dev, cmd.drv);
              if (cmd.drv === 'e1000e') kernelBound.add(cmd.dev);
              break;
            case 'unbind':
              bound.delete(cmd.dev);
              kernelBound.delete(cmd.dev);
              break;
            case 'claimGroup':
              owner = owners[cmd.owner]!;
              groupClaim = true;
              break;
            case 'releaseGroup':
              owner = null;
              groupClaim = false;
              deviceClaims.clear();
              break;
            case 'claimDevice':
              owner = owners[cmd.owner]!;
              deviceClaims.set(cmd.dev, (deviceClaims.get(cmd.dev) ?? 0) + 1);
              break;
            case 'releaseDevice': {
              const n = deviceClaims.get(cmd.dev)! - 1;
              if (n === 0) deviceClaims.delete(cmd.dev);
              else deviceClaims.set(cmd.dev, n);
              if (claims() === 0 && !groupClaim) owner = null;
              break;
            }
            case 'attach':
              userDomain = doms[cmd.dom]!;
              break;
            case 'detach':
              userDomain = null;
              break;
          }
          if (owner === null) {
            // The last release puts the group back on its default domain, whatever the owner had attached.
            if (groupClaim || deviceClaims.size > 0 || cmd.c === 'releaseGroup' || cmd.c === 'releaseDevice') userDomain = null;
            groupClaim = false;
            deviceClaims.clear();
          }
        }
        // Invariants.
        if (g.owner !== null) assert.equal(kernelBound.size, 0, 'owned while a kernel-DMA driver is bound');
        if (g.owner !== null) assert.notEqual(g.domain, g.defaultDomain, 'owned but on the default domain');
        assert.equal(g.ownerCnt, kernelBound.size + claims(), 'owner_cnt = kernel-DMA drivers + claims');
        assert.equal(g.owner, owner);
        const expectDomain: unknown = userDomain ?? (owner !== null ? g.blockingDomain : g.defaultDomain);
        assert.equal(g.domain, expectDomain);
      }
    }),
    { numRuns: 300 },
  );
});
