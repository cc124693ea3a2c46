/**
 * Issue 19, one bundle upload per cluster: three existing hosts reached only over SSH
 * (generic driver) become a swarm, and the workstation uploads the engine bundle once; the
 * other hosts fetch it from that host with a one-time, command-restricted key that is gone
 * afterwards, and every host checks it by SHA-256.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { hostContainerSpec } from '../../drivers/docker/container-spec.js';
import { waitForTcp } from '../../drivers/kit/index.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { describeE2E, labSession, ok, prepareLab, type Lab } from '../support/lab.js';

describeE2E('one bundle upload per cluster (generic hosts)', () => {
  vi.setConfig({ testTimeout: 600_000 });
  let lab: Lab;
  const s = labSession('relay');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-relay-'));
  const containers: string[] = [];
  const hosts: Array<{ name: string; ip: string }> = [];
  const key = generateKeyPair('relay-e2e');
  const keyFile = path.join(work, 'id');

  beforeAll(async () => {
    lab = await prepareLab();
    fs.writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    // A network of this test's own, made through tmachine's docker driver code path.
    await lab.docker.createNetwork({ Name: s.network, Driver: 'bridge', Internal: true, Labels: { 'tmachine.test': 'relay' }, IPAM: { Config: [{ Subnet: '10.208.7.0/24' }] } });
    for (const i of [1, 2, 3]) {
      const name = s.name(`h${i}`);
      const ip = `10.208.7.${10 + i}`;
      await lab.docker.createVolume({ Name: `${name}-vol`, Labels: { 'tmachine.test': 'relay' } });
      const c = await lab.docker.createContainer(hostContainerSpec({ name, image: 'tmachine/host:bookworm', network: s.network, ip, volume: `${name}-vol`, labels: { 'tmachine.test': 'relay' }, privileged: false }));
      containers.push(c.id);
      await c.start();
      const exec = await c.exec({
        Cmd: ['sh', '-c', `install -d -m700 -o tmachine -g tmachine /home/tmachine/.ssh && echo "$KEY" > /home/tmachine/.ssh/authorized_keys && chown tmachine /home/tmachine/.ssh/authorized_keys && chmod 600 /home/tmachine/.ssh/authorized_keys`],
        Env: [`KEY=${key.publicKey}`],
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await exec.start({ hijack: true, stdin: false });
      await new Promise((r) => {
        stream.on('end', r);
        stream.resume();
      });
      hosts.push({ name: s.name(`n${i}`), ip });
    }
    for (const h of hosts) expect((await waitForTcp(h.ip, 22, 60_000)).ok).toBe(true);
  });
  afterAll(async () => {
    if (!lab) return;
    const names = fs.existsSync(path.join(s.store, 'machines')) ? fs.readdirSync(path.join(s.store, 'machines')) : [];
    if (names.length > 0) await s.cli(['rm', '-f', '-y', ...names]);
    for (const id of containers) await lab.docker.getContainer(id).remove({ force: true, v: true }).catch(() => undefined);
    for (const i of [1, 2, 3]) await lab.docker.getVolume(`${s.name(`h${i}`)}-vol`).remove().catch(() => undefined);
    await lab.docker.getNetwork(s.network).remove().catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('uploads the bundle once; the others fetch it from that host, check it, and no relay key is left', async () => {
    const file = path.join(work, 'cluster.yml');
    const node = (h: { name: string; ip: string }, role: string) =>
      [`  - name: ${h.name}`, `    role: ${role}`, `    driver: { name: generic, address: ${h.ip}, user: tmachine, ssh-key: ${keyFile} }`].join('\n');
    fs.writeFileSync(file, [`name: ${s.name('c')}`, 'nodes:', node(hosts[0]!, 'manager'), node(hosts[1]!, 'worker'), node(hosts[2]!, 'worker'), ''].join('\n'));
    const r = ok(await s.cli(['swarm', 'bootstrap', '-f', file, '--json']));
    const report = JSON.parse(r.stdout) as { nodes: unknown[]; timings: { uploadedBytes: number; relayed: string[] } };
    expect(report.nodes).toHaveLength(3);
    const bundleBytes = fs.statSync(lab.bundlePath).size;
    // One bundle from this computer (plus small files: certificates, units), not three.
    expect(report.timings.uploadedBytes).toBeGreaterThanOrEqual(bundleBytes);
    expect(report.timings.uploadedBytes).toBeLessThan(bundleBytes * 1.2);
    expect(report.timings.relayed).toHaveLength(2);
    for (const h of hosts) {
      const sum = ok(await s.cli(['ssh', h.name, '--', `sha256sum /var/lib/tmachine/bundles/${lab.bundleSha256}.tgz`])).stdout;
      expect(sum.split(' ')[0]).toBe(lab.bundleSha256);
      expect(ok(await s.cli(['ssh', h.name, '--', 'cat ~/.ssh/authorized_keys'])).stdout).not.toContain('tmachine-relay-');
      expect(ok(await s.cli(['ssh', h.name, '--', 'ls -A ~/.tmachine-staging'])).stdout.trim()).toBe('');
    }
    const nodes = ok(await s.cli(['ssh', hosts[0]!.name, '--', 'docker', 'node', 'ls', '-q'])).stdout.trim().split('\n');
    expect(nodes).toHaveLength(3);
  });
});
