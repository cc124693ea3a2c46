/** The pure parts of the day-2 operations: stack parsing, registry names, credentials on disk, status lines. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { stackBinds } from '../../src/swarm/ops/bind-check.js';
import { dryRunLines } from '../../src/swarm/ops/plan-output.js';
import { recoveryLines } from '../../src/swarm/ops/recover.js';
import { checkRegistryName, imageRegistry, machineCaFileName, registryLogin, removeRegistryLogin, saveRegistryLogin } from '../../src/swarm/ops/registry.js';
import { parseStack, stackImages } from '../../src/swarm/ops/stacks.js';
import { assessHealth, type NodeRow } from '../../src/swarm/status.js';
import { redact } from '../../src/ui/redact.js';

const STACK = `
version: "3.8"
services:
  web:
    image: registry.example.org:5000/team/web:1
    volumes: ["/srv/www:/usr/share/www:ro", "named:/cache", "./rel:/rel"]
    deploy: { placement: { constraints: ["node.role == worker", "node.labels.disk == ssd"] } }
  db:
    image: postgres:16
    volumes:
      - { type: bind, source: /srv/db, target: /var/lib/db }
      - { type: volume, source: dbdata, target: /x }
  plain:
    image: localhost/tool
`;

describe('stack files', () => {
  it('lists images and the absolute bind sources per service with their constraints', () => {
    const doc = parseStack(STACK, 'stack.yml');
    expect(stackImages(doc)).toEqual(['registry.example.org:5000/team/web:1', 'postgres:16', 'localhost/tool']);
    expect(stackBinds(doc)).toEqual([
      { service: 'web', sources: ['/srv/www'], constraints: ['node.role == worker', 'node.labels.disk == ssd'] },
      { service: 'db', sources: ['/srv/db'], constraints: [] },
    ]);
  });

  it('refuses a stack file that is not YAML, naming the file', () => {
    expect(() => parseStack('services: [\n', 'bad.yml')).toThrow(/^stack file bad\.yml is not valid YAML: /);
  });
});

describe('registries', () => {
  it('finds the registry part of an image reference (Docker Hub names have none)', () => {
    expect(imageRegistry('registry.example.org:5000/team/web:1')).toBe('registry.example.org:5000');
    expect(imageRegistry('10.0.0.5:5000/x')).toBe('10.0.0.5:5000');
    expect(imageRegistry('localhost/tool')).toBe('localhost');
    expect(imageRegistry('library/postgres:16')).toBeUndefined();
    expect(imageRegistry('postgres:16')).toBeUndefined();
  });

  it('checks HOST[:PORT] and names the CA copy as create --engine-registry-ca does', () => {
    expect(() => checkRegistryName('registry.example.org:5000')).not.toThrow();
    expect(() => checkRegistryName('https://registry.example.org', 'HOST:PORT')).toThrow('HOST:PORT "https://registry.example.org" is not HOST or HOST:PORT');
    expect(machineCaFileName('registry.example.org:5000')).toBe('registry-ca-registry.example.org_5000.crt');
  });

  it('keeps credentials in a 0600 file, registers the password as a secret, and forgets them on logout', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-day2-unit-'));
    try {
      const store = await Store.open(root);
      const password = 'unit-test-password-93af';
      await saveRegistryLogin(store, 'reg.example:5000', 'deploy', password);
      const file = path.join(root, 'registries', 'credentials.json');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(redact(`login with ${password}`)).toBe('login with ***');
      expect(await registryLogin(store, 'reg.example:5000')).toEqual({ registry: 'reg.example:5000', username: 'deploy', password });
      expect(await removeRegistryLogin(store, 'reg.example:5000')).toBe(true);
      expect(await registryLogin(store, 'reg.example:5000')).toBeUndefined();
      expect(await removeRegistryLogin(store, 'reg.example:5000')).toBe(false);
      await expect(saveRegistryLogin(store, 'reg.example:5000', 'deploy', '')).rejects.toThrow('registry login got an empty password');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('what the commands print', () => {
  it('dry-run lines name the host, or the cluster for cluster-wide steps', () => {
    const lines = dryRunLines(
      {
        results: [
          { phase: 'record', host: undefined, title: 'record 1 stack(s) (a) and 3 manager(s)', outcome: 'would-run', ms: 0 },
          { phase: 'demote', host: 'm2', title: 'demote to worker', outcome: 'would-run', ms: 0 },
          { phase: 'upgrade', host: 'w1', title: 'drain, install', outcome: 'already', ms: 0 },
        ],
        unchanged: false,
        ms: 0,
      },
      'prod',
    );
    expect(lines).toEqual(['prod: would run: record 1 stack(s) (a) and 3 manager(s)', 'm2: would run: demote to worker', 'w1: already done: drain, install']);
  });

  it('recovery lines say what was done and what is still to do', () => {
    const note = { at: 'T', from: 'm1', forcedNewCluster: true, done: ['w1: promoted to manager (cluster wants 3)'], pending: ['m2', 'm3'] };
    expect(recoveryLines(note, new Set(['m3']))).toEqual([
      'recovered at T from m1 (forced a new cluster): w1: promoted to manager (cluster wants 3)',
      'next: m2 did not answer; once started, `tmachine swarm recover` (or `swarm bootstrap`) makes them rejoin',
    ]);
    expect(recoveryLines(note, new Set(['m2', 'm3']))[1]).toBe('next: nothing, every machine is back');
  });
});

describe('swarm status: the state in one line and the next command', () => {
  const node = (machine: string, role: string, status: string, managerStatus: string): NodeRow => ({ machine, nodeId: `id-${machine}`, role, availability: 'active', status, managerStatus, leader: managerStatus === 'leader', engine: '20.10.24', labels: {} });
  const healthy = [node('m1', 'manager', 'ready', 'leader'), node('m2', 'manager', 'ready', 'reachable'), node('m3', 'manager', 'ready', 'reachable'), node('w1', 'worker', 'ready', '')];
  const lose = (host: 'not-found' | 'running' | 'stopped' | 'none') => {
    const nodes = healthy.map((n) => (n.machine === 'm1' ? { ...n, status: 'down', managerStatus: 'unreachable', leader: false } : n.machine === 'm2' ? { ...n, managerStatus: 'leader', leader: true } : n));
    return assessHealth(nodes, 3, new Map([['id-m1', host]]));
  };

  it('all managers reachable: healthy, no next command', () => {
    const h = assessHealth(healthy, 3, new Map());
    expect(h).toMatchObject({ state: 'healthy', quorumHeld: true, managers: { wanted: 3, listed: 3, reachable: 3, quorum: 2 }, problems: [] });
    expect(h.summary).toBe('healthy: 3 of 3 managers reachable (quorum needs 2), every node ready');
    expect(h.next).toBeUndefined();
  });

  it("a manager whose host is gone: quorum held, and swarm recover removes it and promotes the worker", () => {
    const h = lose('not-found');
    expect(h.summary).toBe('degraded: manager m1 is unreachable (its host is gone); quorum held: 2 of 3 managers reachable (quorum needs 2); losing one more manager loses quorum');
    expect(h.next).toBe('`tmachine swarm recover` removes m1 from the swarm and promotes a worker to get back to 3 managers');
    // No worker to promote: recover removes it, a new machine joins as manager.
    const managersOnly = healthy.filter((n) => n.role === 'manager').map((n) => (n.machine === 'm1' ? { ...n, status: 'down', managerStatus: 'unreachable' } : n));
    const alone = assessHealth(managersOnly, 3, new Map([['id-m1', 'not-found']]));
    expect(alone.next).toBe('`tmachine swarm recover` removes m1 from the swarm; `tmachine swarm join NAME --role manager` with a new machine gets back to 3 managers');
  });

  it('a manager cut off (its host runs) or stopped: it comes back by itself, nothing is promoted', () => {
    expect(lose('running').next).toBe('restore the network or the engine of m1 (`tmachine ssh m1 -- docker info`); it rejoins as a manager by itself once the others reach it');
    expect(lose('running').summary).toMatch(/^degraded: manager m1 is unreachable \(its host runs, but the swarm does not reach it \(network cut, or its engine is down\)\); quorum held: 2 of 3/);
    expect(lose('stopped').next).toBe('`tmachine start m1` (it rejoins by itself)');
  });

  it('an older entry of a machine that rejoined goes with swarm recover; a worker a new leader has not heard from yet needs nothing', () => {
    const rejoined = [...healthy, { ...node('w1', 'worker', 'down', ''), nodeId: 'id-w1-old' }];
    const h = assessHealth(rejoined, 3, new Map([['id-w1-old', 'stale']]));
    expect(h.summary).toBe('degraded: worker w1 is down (an older entry of a machine that rejoined); quorum held: 3 of 3 managers reachable (quorum needs 2)');
    expect(h.next).toBe('`tmachine swarm recover` removes w1 from the swarm');
    const settling = assessHealth(healthy.map((n) => (n.machine === 'w1' ? { ...n, status: 'unknown' } : n)), 3, new Map([['id-w1', 'running']]));
    expect(settling.problems[0]?.why).toBe('its state is not known yet (a new leader hears from it within seconds)');
    expect(settling.next).toBeUndefined();
  });

  it('fewer managers than the cluster wants, none unreachable: promote, or join a new machine', () => {
    const two = healthy.filter((n) => n.machine !== 'm3');
    expect(assessHealth(two, 3, new Map()).next).toBe('`tmachine swarm recover` promotes a worker to get back to 3 managers');
    expect(assessHealth(two, 3, new Map()).summary).toBe('degraded: only 2 managers; quorum held: 2 of 2 managers reachable (quorum needs 2), the cluster wants 3; losing one more manager loses quorum');
    expect(assessHealth(two.filter((n) => n.role === 'manager'), 3, new Map()).next).toBe('`tmachine swarm join NAME --role manager` with a new machine gets back to 3 managers');
  });
});

describe('mount units', () => {
  it('are named as systemd-escape --path names them', async () => {
    const { mountUnitName } = await import('../../src/swarm/ops/mounts.js');
    expect(mountUnitName('/srv/my-data/x.y/.hidden')).toBe('srv-my\\x2ddata-x.y-.hidden.mount');
    expect(mountUnitName('/project/')).toBe('project.mount');
    expect(mountUnitName('/')).toBe('-.mount');
  });

  it('an NFS share orders after the network, mounts with _netdev, and is wanted by remote-fs.target', async () => {
    const { clusterMount, renderMountUnit } = await import('../../src/swarm/ops/mounts.js');
    const mount = clusterMount('nfs.example.org:/export/project', '/project', { options: 'vers=4.1,hard' });
    expect(mount.type).toBe('nfs');
    const unit = renderMountUnit(mount);
    expect(unit).toContain('\n[Mount]\nWhat=nfs.example.org:/export/project\nWhere=/project\nType=nfs\nOptions=vers=4.1,hard,_netdev\n');
    expect(unit).toContain('Wants=network-online.target\nAfter=network-online.target\nBefore=docker.service\n');
    expect(unit).toContain('\n[Install]\nWantedBy=remote-fs.target\n');
    expect(() => clusterMount('/local/dir', '/x')).toThrow('mount source "/local/dir" is not server:/path');
    expect(() => clusterMount('nfs:/x', 'relative')).toThrow('mount target "relative" is not an absolute path');
  });
});

describe('published ports', () => {
  it('reads short and long syntax, skipping ports bound to one address or not published', async () => {
    const { publishedPorts, checkCidr } = await import('../../src/swarm/ops/ports.js');
    const doc = parseStack(
      'services:\n  a:\n    ports: ["8080:80", "5353:53/udp", "127.0.0.1:9000:9000", "3000"]\n  b:\n    ports: [{ target: 80, published: 8443, protocol: tcp, mode: host }, { target: 81 }]\n',
      's.yml',
    );
    expect(publishedPorts(doc)).toEqual([
      { service: 'a', port: 8080, protocol: 'tcp', mode: 'ingress' },
      { service: 'a', port: 5353, protocol: 'udp', mode: 'ingress' },
      { service: 'b', port: 8443, protocol: 'tcp', mode: 'host' },
    ]);
    expect(() => checkCidr('203.0.113.0/24')).not.toThrow();
    expect(() => checkCidr('2001:db8::/48')).not.toThrow();
    expect(() => checkCidr('203.0.113.0')).toThrow('--source-cidr "203.0.113.0" is not an address range');
  });
});
