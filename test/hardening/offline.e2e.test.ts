/**
 * Offline, proven: hosts on a docker network created with `internal: true` (no NAT, no
 * forwarding out of the bridge) have no route to anything but each other and this machine.
 * A bootstrap and a stack deploy complete there, so none of their steps leans on the
 * internet unnoticed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { busyboxImageTarball, describeE2E, eventually, ok, prepareLab, type Lab } from '../support/lab.js';
import { errorLines, execIn, hardeningSession, machines, nodeList } from './support.js';

describeE2E('hosts on an internal network (no route out)', () => {
  vi.setConfig({ testTimeout: 420_000 });
  let lab: Lab;
  const s = hardeningSession('hoff', [70, 89]);
  const prefix = s.name('c');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-offline-'));

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('bootstrap on an internal network: the network is internal, the hosts reach nothing outside, the swarm forms', async () => {
    ok(await s.cli(['swarm', 'bootstrap', '--driver', 'docker', '--docker-network-internal', '--managers', '1', '--workers', '1', '--prefix', prefix]));
    const network = await lab.docker.getNetwork(s.network).inspect();
    expect(network.Internal).toBe(true);
    expect(await nodeList(s, `${prefix}-manager-1`)).toEqual([`${prefix}-manager-1 Ready`, `${prefix}-worker-1 Ready`]);
    const manager = (await machines(s)).find((m) => m.name === `${prefix}-manager-1`)!;
    // No default route out of the host: the address of this machine's own uplink is unreachable.
    const route = await execIn(lab.docker, manager.driver.state.containerId!, 'ip -4 route show default; echo end');
    expect(route.output.trim()).toBe('end');
    const out = await execIn(lab.docker, manager.driver.state.containerId!, 'timeout 3 bash -c "exec 3<>/dev/tcp/192.0.2.1/80" && echo reached || echo unreachable');
    expect(out.output).toContain('unreachable');
  });

  it('a stack deploys and runs there, from an image loaded onto the nodes', async () => {
    const { tarball, image } = await busyboxImageTarball(lab);
    ok(await s.cli(['swarm', 'load', tarball, '--cluster', prefix]));
    const stack = path.join(work, 'stack.yml');
    fs.writeFileSync(stack, ['version: "3.8"', 'services:', '  sleeper:', `    image: ${image}`, '    command: ["sleep", "3600"]', '    deploy:', '      replicas: 2', '      endpoint_mode: dnsrr', ''].join('\n'));
    const deployed = await s.cli(['swarm', 'deploy', '-c', stack, 'offline', '--cluster', prefix]);
    expect(errorLines(deployed)).toEqual([]);
    ok(deployed);
    await eventually('both replicas run', async () => {
      const r = await s.cli(['ssh', `${prefix}-manager-1`, '--', 'docker', 'service', 'ls', '--format', "'{{.Name}} {{.Replicas}}'"]);
      return r.code === 0 && r.stdout.includes('offline_sleeper 2/2') ? true : undefined;
    }, 120_000);
  });

  it('asking for an internal network where one with that name exists and is not internal is refused', async () => {
    const plain = `${s.network}-plain`;
    await lab.docker.createNetwork({ Name: plain, Driver: 'bridge', Labels: { 'tmachine.test': 'hoff' }, IPAM: { Driver: 'default', Config: [{ Subnet: s.subnet.replace(/^10\.207\.(\d+)\./, (_m, o: string) => `10.207.${Number(o) + 100}.`) }] } });
    try {
      const r = await s.cli(['create', '--driver', 'docker', '--docker-network', plain, '--docker-network-internal', s.name('x')]);
      expect(r.code).not.toBe(0);
      expect(errorLines(r)).toEqual([expect.stringContaining(`docker network "${plain}" exists and is not internal`)]);
      expect((await machines(s)).map((m) => m.name)).not.toContain(s.name('x'));
    } finally {
      await lab.docker.getNetwork(plain).remove();
    }
  });
});
