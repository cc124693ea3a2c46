/**
 * The hosts behind the cloud and VirtualBox fakes, on the lab engine: cloud-init really
 * applies the NoCloud seed (files or a cidata ISO), each host has its own keys and
 * machine-id, the seed user logs in over SSH with the seed key, and clean-up by label
 * leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SshConnection } from '../../src/ssh/connection.js';
import { generateKeyPair, parsePublicKeyLine } from '../../src/ssh/keys.js';
import {
  CLOUD_HOST_IMAGE,
  ensureCloudHostImage,
  ensureTestNetwork,
  removeByLabel,
  startCloudHost,
  type CloudHost,
  type TestNetwork,
} from './cloud-host.js';
import { describeE2E, prepareLab, type Lab } from './lab.js';

const RANGE = '10.201.0.0/16';
const LABEL = 'tmachine.test';
const runId = Math.random().toString(36).slice(2, 7);
const labelValue = `cloudhost-${runId}`;
const labels = { [LABEL]: labelValue };
const timings: string[] = [];

function seedFor(hostname: string, user: string, publicKey: string) {
  return {
    metaData: `instance-id: i-${runId}-${hostname}\nlocal-hostname: ${hostname}\n`,
    userData: [
      '#cloud-config',
      'users:',
      `  - name: ${user}`,
      '    shell: /bin/bash',
      '    sudo: ALL=(ALL) NOPASSWD:ALL',
      '    ssh_authorized_keys:',
      `      - ${publicKey}`,
      '',
    ].join('\n'),
  };
}

async function login(
  host: CloudHost,
  user: string,
  privateKey: string,
  target = { host: host.ip, port: 22 },
): Promise<{ whoami: string; hostname: string; hostKey: string }> {
  const published = await host.hostKeys();
  const connection = await SshConnection.connect({ label: host.name, ...target, user, privateKey, publishedHostKeys: published });
  try {
    const result = await connection.exec('whoami; hostname');
    const [whoami = '', hostname = ''] = result.stdout.trim().split('\n');
    return { whoami, hostname, hostKey: connection.hostKey.key };
  } finally {
    connection.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describeE2E('cloud hosts: test hosts with cloud-init and a NoCloud seed', () => {
  let lab: Lab;
  let network: TestNetwork;
  const alice = generateKeyPair('alice@cloudhost-test');
  const bob = generateKeyPair('bob@cloudhost-test');
  const hosts: CloudHost[] = [];

  beforeAll(async () => {
    lab = await prepareLab();
    const started = Date.now();
    await ensureCloudHostImage(lab.docker, (m) => process.stderr.write(`[cloud-host] ${m}\n`));
    timings.push(`image ready: ${Date.now() - started} ms`);
    network = await ensureTestNetwork(lab.docker, `cloudhost-${runId}-a`, { range: RANGE, labels });
  });

  afterAll(async () => {
    if (lab) await removeByLabel(lab.docker, LABEL, labelValue);
    process.stderr.write(`[cloud-host] timings:\n  ${timings.join('\n  ')}\n`);
  });

  it('boots two hosts from different seeds in parallel; cloud-init applies each seed', async () => {
    const started = Date.now();
    const [one, two] = await Promise.all([
      startCloudHost(lab.docker, { name: `cloudhost-${runId}-one`, network: network.name, seed: seedFor('alpha-one', 'alice', alice.publicKey), labels }),
      startCloudHost(lab.docker, { name: `cloudhost-${runId}-two`, network: network.name, seed: seedFor('beta-two', 'bob', bob.publicKey), labels }),
    ]);
    hosts.push(one!, two!);
    const ready = await Promise.all([one!.waitReady(90_000), two!.waitReady(90_000)]);
    timings.push(`two hosts in parallel, ready: ${ready.map((r) => `${r.ms} ms`).join(', ')} (${Date.now() - started} ms incl. create)`);
    expect(ready.map((r) => r.cloudInit)).toEqual(['done', 'done']);
    expect(one!.ip).not.toBe(two!.ip);

    for (const [host, user, hostname, key] of [
      [one!, 'alice', 'alpha-one', alice.publicKey],
      [two!, 'bob', 'beta-two', bob.publicKey],
    ] as const) {
      expect((await host.exec(['hostname'])).output.trim()).toBe(hostname);
      expect((await host.exec(['id', '-un', user])).output.trim()).toBe(user);
      expect((await host.exec(['cat', `/home/${user}/.ssh/authorized_keys`])).output).toContain(key);
      const log = await host.exec(['cat', '/var/log/cloud-init.log']);
      expect(log.output).toContain('DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud]');
      // /var/lib/docker on its own volume: a later dockerd must not run overlay on overlay.
      const mounts = (await lab.docker.getContainer(host.id).inspect()).Mounts;
      expect(mounts.find((m) => m.Destination === '/var/lib/docker')?.Type).toBe('volume');
    }

    const machineIds = await Promise.all(hosts.map(async (h) => (await h.exec(['cat', '/etc/machine-id'])).output.trim()));
    expect(machineIds[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(machineIds[1]).toMatch(/^[0-9a-f]{32}$/);
    expect(machineIds[0]).not.toBe(machineIds[1]);

    const [keysOne, keysTwo] = await Promise.all([one!.hostKeys(), two!.hostKeys()]);
    const ed25519 = (keys: string[]) => keys.find((k) => k.startsWith('ssh-ed25519 '))!;
    expect(ed25519(keysOne!)).toMatch(/^ssh-ed25519 AAAA/);
    expect(parsePublicKeyLine(ed25519(keysOne!)).key).not.toBe(parsePublicKeyLine(ed25519(keysTwo!)).key);

    // The seed user logs in with the seed key, and the host offers the key we read.
    const session = await login(one!, 'alice', alice.privateKey);
    expect(session).toMatchObject({ whoami: 'alice', hostname: 'alpha-one' });
    expect(keysOne!.map((k) => parsePublicKeyLine(k).key)).toContain(session.hostKey);
    // bob's key is not alice's: the other host refuses it.
    await expect(login(two!, 'bob', alice.privateKey)).rejects.toThrow(/refused|authentication/i);

    // What cloud-init printed to the console carries this host's real keys and fingerprints.
    const block = await one!.consoleHostKeyBlock();
    const ed = parsePublicKeyLine(ed25519(keysOne!));
    expect(block).toMatch(/^-----BEGIN SSH HOST KEY FINGERPRINTS-----\n/);
    expect(block).toContain(`256 ${ed.fingerprint} root@alpha-one (ED25519)\n`);
    expect(block).toContain('-----END SSH HOST KEY FINGERPRINTS-----\n-----BEGIN SSH HOST KEY KEYS-----\n');
    expect(block).toContain(`ssh-ed25519 ${ed.key} root@alpha-one\n`);
    expect(block).toMatch(/-----END SSH HOST KEY KEYS-----\n$/);
  });

  it('stop and start keep the address, the keys and the seed user', async () => {
    const host = hosts[0]!;
    const keysBefore = await host.hostKeys();
    await host.stop();
    expect((await lab.docker.getContainer(host.id).inspect()).State.Running).toBe(false);
    await host.start();
    const ready = await host.waitReady(90_000);
    timings.push(`restart, ready: ${ready.ms} ms`);
    expect(ready.cloudInit).toBe('done');
    const inspected = await lab.docker.getContainer(host.id).inspect();
    expect(inspected.NetworkSettings.Networks[network.name]?.IPAddress).toBe(host.ip);
    expect(await host.hostKeys()).toEqual(keysBefore);
    expect(await login(host, 'alice', alice.privateKey)).toMatchObject({ whoami: 'alice', hostname: 'alpha-one' });
  });

  it('boots from a cidata ISO on a network with MTU 1460', async () => {
    const gceNetwork = await ensureTestNetwork(lab.docker, `cloudhost-${runId}-mtu`, { range: RANGE, mtu: 1460, labels });
    expect(gceNetwork.mtu).toBe(1460);
    expect(gceNetwork.subnet).not.toBe(network.subnet);

    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudhost-iso-'));
    try {
      const seed = seedFor('gamma-iso', 'carol', alice.publicKey);
      fs.mkdirSync(path.join(work, 'files'));
      fs.writeFileSync(path.join(work, 'files', 'meta-data'), seed.metaData);
      fs.writeFileSync(path.join(work, 'files', 'user-data'), seed.userData);
      const iso = path.join(work, 'seed.iso');
      // The NoCloud ISO as cloud-localds / genisoimage make it: volume id cidata, Joliet + Rock Ridge.
      execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', path.join(work, 'files')], { stdio: 'pipe' });
      const started = Date.now();
      const sshPort = await freePort();
      const host = await startCloudHost(lab.docker, {
        name: `cloudhost-${runId}-iso`,
        network: gceNetwork.name,
        seed: { isoPath: iso },
        labels,
        // The VirtualBox shape: NAT port forward on 127.0.0.1 plus a second (host-only) network.
        publishSsh: { hostIp: '127.0.0.1', hostPort: sshPort },
        extraNetworks: [{ network: network.name }],
      });
      hosts.push(host);
      const ready = await host.waitReady(90_000);
      timings.push(`ISO-seeded host, ready: ${ready.ms} ms (${Date.now() - started} ms incl. create)`);
      expect(ready.cloudInit).toBe('done');
      // Docker orders a host's interfaces itself (not by the options' order): find the one with the address.
      const device = /^\d+:\s+(\S+)\s+inet\s/m.exec((await host.exec(['sh', '-c', `ip -o -4 addr show | grep ' ${host.ip}/'`])).output)?.[1];
      expect(device).toMatch(/^eth\d$/);
      expect((await host.exec(['ip', 'link', 'show', device!])).output).toContain('mtu 1460');
      expect(await login(host, 'carol', alice.privateKey)).toMatchObject({ whoami: 'carol', hostname: 'gamma-iso' });
      expect(await login(host, 'carol', alice.privateKey, { host: '127.0.0.1', port: sshPort })).toMatchObject({ whoami: 'carol' });
      const networks = (await lab.docker.getContainer(host.id).inspect()).NetworkSettings.Networks;
      expect(Object.keys(networks).sort()).toEqual([gceNetwork.name, network.name].sort());
      expect(networks[network.name]?.IPAddress.startsWith(network.subnet.split('.').slice(0, 3).join('.') + '.')).toBe(true);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  it('remove and removeByLabel leave nothing carrying the label', async () => {
    const first = hosts[0]!;
    await first.remove();
    await expect(lab.docker.getContainer(first.id).inspect()).rejects.toThrow(/no such container/i);
    await expect(lab.docker.getVolume(`${first.name}-docker`).inspect()).rejects.toThrow(/no such volume/i);

    await removeByLabel(lab.docker, LABEL, labelValue);
    const filters = { label: [`${LABEL}=${labelValue}`] };
    expect(await lab.docker.listContainers({ all: true, filters })).toEqual([]);
    expect((await lab.docker.listVolumes({ filters })).Volumes ?? []).toEqual([]);
    expect(await lab.docker.listNetworks({ filters })).toEqual([]);
    // The image stays: it is the cache the next run reuses.
    expect((await lab.docker.getImage(CLOUD_HOST_IMAGE).inspect()).Id).toMatch(/^sha256:/);
  });
});
