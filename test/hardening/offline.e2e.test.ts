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
    // A listener outside the internal network (a container on an ordinary bridge): this
    // machine reaches it, the host on the internal network does not (nothing is routed out).
    const { image } = await busyboxImageTarball(lab);
    const outside = `${s.network}-out`;
    const outsideSubnet = s.subnet.replace(/^10\.207\.(\d+)\./, (_m, o: string) => `10.207.${Number(o) + 120}.`);
    await lab.docker.createNetwork({ Name: outside, Driver: 'bridge', Labels: { 'tmachine.test': 'hoff' }, IPAM: { Driver: 'default', Config: [{ Subnet: outsideSubnet }] } });
    const listenerIp = outsideSubnet.replace(/0\/24$/, '20');
    const listener = await lab.docker.createContainer({
      name: `${s.network}-listener`,
      Image: image,
      Cmd: ['sh', '-c', 'while true; do echo hi | nc -l -p 8080; done'],
      Labels: { 'tmachine.test': 'hoff' },
      NetworkingConfig: { EndpointsConfig: { [outside]: { IPAMConfig: { IPv4Address: listenerIp } } } },
    });
    try {
      await listener.start();
      await eventually('the listener answers this machine', async () => {
        const net = await import('node:net');
        return new Promise<true | undefined>((resolve) => {
          const socket = net.connect({ host: listenerIp, port: 8080 }, () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(undefined));
        });
      });
      const out = await execIn(lab.docker, manager.driver.state.containerId!, `timeout 5 bash -c "exec 3<>/dev/tcp/${listenerIp}/8080" && echo reached || echo unreachable`);
      expect(out.output).toContain('unreachable');
    } finally {
      await listener.remove({ force: true });
      await lab.docker.getNetwork(outside).remove();
    }
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
