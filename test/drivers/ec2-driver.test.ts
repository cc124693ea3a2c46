/**
 * The ec2 driver through the kit contract, against the fake EC2 endpoint with real hosts:
 * a cluster's machines made in one RunInstances (each reachable with its own key, host keys
 * from the console), private-address-only and spot launches, the group's rules for the data
 * path port, ESP and extra ports, rules added only where missing, the shared group kept
 * while a member uses it, and a group tmachine did not make left untouched.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { definition, type Ec2Options, type Ec2State } from '../../drivers/ec2/definition.js';
import { DriverError, parseOptions, resolveRawOptions, type ClusterHints, type Driver, type DriverContext, type DriverImplementation, type ResourceEntry } from '../../drivers/kit/index.js';
import { SshConnection } from '../../src/ssh/connection.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { cloudHostBackend } from '../fakes/ec2/cloud-backend.js';
import { FakeEc2 } from '../fakes/ec2/server.js';
import { ensureCloudHostImage } from '../support/cloud-host.js';
import { describeE2E, prepareLab } from '../support/lab.js';

const credentials = { 'ec2-access-key': 'AKIAFAKEDRIVERTEST01', 'ec2-secret-key': 'driver-test-secret-key', 'ec2-region': 'us-east-1' };

interface Machine {
  context: DriverContext<Ec2Options, Ec2State>;
  driver: Driver;
  privateKey: string;
  notes: string[];
  entries: ResourceEntry[];
}

describeE2E('ec2 driver (kit contract) against the fake EC2 endpoint', () => {
  let fake: FakeEc2;
  let implementation: DriverImplementation<Ec2Options, Ec2State>;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-ec2-driver-'));
  const run = Math.random().toString(36).slice(2, 6);

  const machine = (name: string, given: Record<string, unknown>, cluster?: ClusterHints): Machine => {
    const flags = definition.flags;
    const options = parseOptions(definition.optionsSchema, resolveRawOptions(flags, { ...credentials, 'ec2-endpoint': fake.url, 'ec2-ssh-timeout': 90, 'ec2-console-timeout': 30, ...given }), flags);
    const keys = generateKeyPair(`tmachine-${name}`);
    const entries: ResourceEntry[] = [];
    const notes: string[] = [];
    const context: DriverContext<Ec2Options, Ec2State> = {
      machineName: name,
      ...(cluster ? { cluster } : {}),
      machineDir: work,
      cacheDir: work,
      options,
      state: definition.stateSchema.parse({}),
      sshPublicKey: keys.publicKey,
      undo: {
        record: async (entry) => void (entries.some((e) => e.kind === entry.kind && e.id === entry.id) || entries.push(entry)),
        forget: async (kind, id) => void entries.splice(entries.findIndex((e) => e.kind === kind && e.id === id), 1),
        entries: () => entries,
      },
      signal: new AbortController().signal,
      report: () => undefined,
      note: (line) => void notes.push(line),
      saveState: async () => undefined,
    };
    return { context, driver: implementation.open(context), privateKey: keys.privateKey, notes, entries };
  };

  /** What the core does on rm: each logged resource, newest first. */
  const removeAll = async (m: Machine) => {
    for (const entry of [...m.entries].reverse()) await m.driver.removeResource(entry);
  };

  const login = async (m: Machine) => {
    const target = await m.driver.sshTarget();
    const published = await m.driver.publishedHostKeys!();
    const connection = await SshConnection.connect({ label: m.context.machineName, host: target.host, port: target.port, user: target.user, privateKey: m.privateKey, ...(published ? { publishedHostKeys: published } : {}) });
    try {
      return { whoami: (await connection.exec('whoami')).stdout.trim(), hostKey: connection.hostKey.key, published: published ?? [] };
    } finally {
      connection.close();
    }
  };

  beforeAll(async () => {
    const lab = await prepareLab();
    await ensureCloudHostImage(lab.docker);
    fake = await FakeEc2.start({ backend: await cloudHostBackend(lab.docker, { name: `tm-ec2d-${run}`, range: '10.202.0.0/16' }) });
    implementation = await definition.load();
  });

  afterAll(async () => {
    await fake?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const cluster: ClusterHints = { name: `c${run}`, dataPathPort: 4790, encryptedOverlay: true };
  const given = {
    'ec2-private-address-only': true,
    'ec2-request-spot-instance': true,
    'ec2-source-cidr': ['10.0.0.0/8,192.168.0.0/16'],
    'ec2-open-port': ['8080', '9000-9100/udp'],
  };
  let a: Machine;
  let b: Machine;

  it('createMany: one RunInstances for two machines, each reachable on its private address with its own key, host keys pinned from the console', async () => {
    a = machine(`a${run}`, given, cluster);
    b = machine(`b${run}`, given, cluster);
    await a.driver.preCreateCheck();
    await b.driver.preCreateCheck();
    await implementation.createMany!([a.context, b.context]);

    const runs = fake.callsOf('RunInstances').filter((c) => !c.error);
    expect(runs).toHaveLength(1);
    const params = runs[0]!.params as Record<string, unknown>;
    expect([params['MinCount'], params['MaxCount']]).toEqual(['2', '2']);
    expect(String(params['ClientToken'])).toMatch(/^[0-9a-f-]{36}-0-0$/);

    const instances = fake.liveInstances();
    expect(instances).toHaveLength(2);
    for (const instance of instances) {
      expect(instance.spot).toBe(true);
      expect(instance.hasPublicIp).toBe(false);
      expect(instance.httpTokens).toBe('required');
    }
    for (const m of [a, b]) {
      const instance = fake.instances.get(m.context.state.instanceId!)!;
      expect(Object.fromEntries(instance.tags.map((t) => [t.key, t.value]))).toMatchObject({ Name: m.context.machineName, 'tmachine:machine': m.context.machineName, 'tmachine:cluster': cluster.name });
      const volume = fake.volumes.get(instance.volumeIds[0]!)!;
      expect(Object.fromEntries(volume.tags.map((t) => [t.key, t.value]))).toMatchObject({ Name: m.context.machineName, 'tmachine:machine': m.context.machineName, 'tmachine:managed': 'true' });
      expect([volume.volumeType, volume.encrypted, volume.deleteOnTermination]).toEqual(['gp3', true, true]);
      expect(m.context.state.publicIp).toBeUndefined();
      expect(await m.driver.addresses()).toEqual({ public: instance.privateIp, private: instance.privateIp });
      const session = await login(m);
      expect(session.whoami).toBe('admin');
      expect(session.published.map((k) => k.split(' ')[1])).toContain(session.hostKey);
    }
    expect(a.entries.map((e) => e.kind)).toEqual(['key-pair', 'security-group', 'instance']);
    expect(b.entries.map((e) => e.kind)).toEqual(['security-group', 'instance']);
    expect(b.entries[0]!.shared).toBe(true);
  });

  it("the cluster's group: SSH and the engine from each source range, swarm ports with the data path port and ESP from the group only, extra ports", () => {
    const group = [...fake.groups.values()].find((g) => g.groupName === `tmachine-${cluster.name}`)!;
    const rules = group.ingress.map((r) => `${r.protocol} ${r.fromPort ?? ''}-${r.toPort ?? ''} ${r.cidr ?? (r.groupId === group.groupId ? 'self' : r.groupId)}`).sort();
    expect(rules).toEqual(
      [
        'tcp 22-22 10.0.0.0/8',
        'tcp 22-22 192.168.0.0/16',
        'tcp 2376-2376 10.0.0.0/8',
        'tcp 2376-2376 192.168.0.0/16',
        'tcp 2377-2377 self',
        'tcp 7946-7946 self',
        'udp 7946-7946 self',
        'udp 4790-4790 self',
        '50 - self',
        'tcp 8080-8080 10.0.0.0/8',
        'tcp 8080-8080 192.168.0.0/16',
        'udp 9000-9100 10.0.0.0/8',
        'udp 9000-9100 192.168.0.0/16',
      ].sort(),
    );
    // Not open to the world, so no note about 0.0.0.0/0.
    expect(a.notes.filter((n) => n.includes('0.0.0.0/0'))).toEqual([]);
  });

  it('a third member reuses the group without touching its rules; one that never answers SSH fails in one line and is removed; the group stays for the others', async () => {
    const calls = fake.calls.length;
    fake.faults.neverAnswerSsh = true;
    const c = machine(`x${run}`, { ...given, 'ec2-ssh-timeout': 5 }, cluster);
    const failure = await c.driver.create().catch((e: unknown) => e);
    fake.faults.neverAnswerSsh = false;
    expect(failure).toBeInstanceOf(DriverError);
    expect((failure as DriverError).kind).toBe('unreachable');
    expect((failure as DriverError).message).toMatch(/did not answer SSH within 5s/);
    const actions = fake.calls.slice(calls).map((x) => x.action);
    expect(actions).not.toContain('CreateSecurityGroup');
    expect(actions).not.toContain('AuthorizeSecurityGroupIngress');
    await removeAll(c);
    expect(fake.instances.get(c.context.state.instanceId!)!.state).toBe('terminated');
    expect([...fake.groups.values()].some((g) => g.groupName === `tmachine-${cluster.name}`)).toBe(true);
  });

  it('the group goes with its last member; the key pair with its machine', async () => {
    await removeAll(a);
    expect([...fake.groups.values()].some((g) => g.groupName === `tmachine-${cluster.name}`)).toBe(true);
    expect(fake.keyPairs.size).toBe(0);
    await removeAll(b);
    expect(fake.liveInstances()).toEqual([]);
    expect([...fake.groups.values()].filter((g) => g.groupName.startsWith('tmachine-'))).toEqual([]);
  });

  it('a group of the cluster name that tmachine did not make is never edited', async () => {
    const name = `mine${run}`;
    fake.groups.set('sg-0f00000000000001', { groupId: 'sg-0f00000000000001', groupName: `tmachine-${name}`, description: 'the user made this', vpcId: fake.vpcId, tags: [], ingress: [] });
    const m = machine(`y${run}`, {}, { name });
    const failure = await m.driver.create().catch((e: unknown) => e);
    expect((failure as DriverError).kind).toBe('already-exists');
    expect((failure as DriverError).message).toMatch(new RegExp(`security group tmachine-${name} \\(sg-0f00000000000001\\) .* was not made by tmachine`));
    expect(fake.groups.get('sg-0f00000000000001')!.ingress).toEqual([]);
    await removeAll(m);
    expect(fake.groups.has('sg-0f00000000000001')).toBe(true);
    expect(fake.keyPairs.size).toBe(0);
    expect(fake.liveInstances()).toEqual([]);
  });
});
