/** Existing hosts for the generic benchmarks: host containers with sshd and a key, no engine. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostContainerSpec } from '../../drivers/docker/container-spec.js';
import { waitForSsh } from '../../drivers/kit/index.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import type { Lab } from './common.js';

export interface BareHosts {
  ips: string[];
  keyFile: string;
  network: string;
  cleanup(): Promise<void>;
}

/** N hosts on a network of their own in `subnet` (a /24 free in `ip route`). */
export async function startBareHosts(lab: Lab, n: number, subnet: string): Promise<BareHosts> {
  const d = lab.engine.docker;
  const id = Math.random().toString(36).slice(2, 6);
  const network = `tm-bench-bare-${id}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-bare-'));
  const keys = generateKeyPair('bench');
  const keyFile = path.join(dir, 'id');
  fs.writeFileSync(keyFile, keys.privateKey, { mode: 0o600 });
  await d.createNetwork({ Name: network, Driver: 'bridge', Labels: { 'tmachine.bench': id }, IPAM: { Config: [{ Subnet: subnet }] } });
  const base = subnet.split('.').slice(0, 3).join('.');
  const ids: string[] = [];
  const ips: string[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const name = `bench-bare-${id}-${i + 1}`;
      const ip = `${base}.${11 + i}`;
      await d.createVolume({ Name: `${name}-vol`, Labels: { 'tmachine.bench': id } });
      const c = await d.createContainer(hostContainerSpec({ name, image: 'tmachine/host:bookworm', network, ip, volume: `${name}-vol`, labels: { 'tmachine.bench': id }, privileged: false }));
      ids.push(c.id);
      await c.start();
      const exec = await c.exec({
        Cmd: ['sh', '-c', 'install -d -m700 -o tmachine -g tmachine /home/tmachine/.ssh && echo "$KEY" > /home/tmachine/.ssh/authorized_keys && chown tmachine /home/tmachine/.ssh/authorized_keys && chmod 600 /home/tmachine/.ssh/authorized_keys'],
        Env: [`KEY=${keys.publicKey}`],
        AttachStdout: true,
      });
      const stream = await exec.start({ hijack: true, stdin: false });
      await new Promise((r) => {
        stream.on('end', r);
        stream.resume();
      });
      await waitForSsh(name, ip, 22, 60_000);
      ips[i] = ip;
    }),
  );
  return {
    ips,
    keyFile,
    network,
    cleanup: async () => {
      for (const c of ids) await d.getContainer(c).remove({ force: true, v: true }).catch(() => undefined);
      for (let i = 0; i < n; i++) await d.getVolume(`bench-bare-${id}-${i + 1}-vol`).remove().catch(() => undefined);
      await d.getNetwork(network).remove().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A cluster file over existing generic hosts: the first a manager, the others workers. */
export function genericClusterFile(dir: string, name: string, hosts: BareHosts): string {
  const file = path.join(dir, `${name}.yml`);
  const nodes = hosts.ips.map((ip, i) =>
    [`  - name: ${name}-${i + 1}`, `    role: ${i === 0 ? 'manager' : 'worker'}`, `    driver: { name: generic, address: ${ip}, user: tmachine, ssh-key: ${hosts.keyFile} }`].join('\n'),
  );
  fs.writeFileSync(file, [`name: ${name}`, 'nodes:', ...nodes, ''].join('\n'));
  return file;
}
