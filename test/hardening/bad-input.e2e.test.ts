/**
 * Bad input through the CLI, table-driven: commands, flags, names, counts, addresses, ports,
 * CIDRs, cluster files, stack and bundle files, key files, a store of a newer schema, driver
 * flags. Each case: exactly one `Error:` line on stderr holding the expected words, non-zero
 * exit, no stack trace, the store byte-for-byte unchanged (the whole tree hashed before and
 * after), and no container or volume left on the lab engine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import { STORE_SCHEMA_VERSION } from '../../src/store/machine-record.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { runCli, tempStore } from '../support/cli.js';
import { CACHE_DIR, describeE2E, prepareLab, type Lab } from '../support/lab.js';
import { errorLines, resourcesOf, STACK_TRACE, treeHash } from './support.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-badinput-'));
const file = (name: string, content: string | Buffer) => {
  const full = path.join(work, name);
  fs.writeFileSync(full, content);
  return full;
};

interface Case {
  args: string[];
  /** Words the one error line must hold. */
  expect: RegExp;
  /** Run against the store of a newer tmachine instead of the shared one. */
  store?: 'newer';
}

describeE2E('bad input through the CLI', () => {
  vi.setConfig({ testTimeout: 60_000 });
  let lab: Lab;
  const store = tempStore('tmachine-hbad-');
  const newer = tempStore('tmachine-hbadnew-');
  const prefix = `hbad${Math.random().toString(36).slice(2, 6)}`;
  const network = `tm-${prefix}`;
  const dname = `${prefix}d1`;

  // Files the cases point at.
  const missing = path.join(work, 'does-not-exist');
  const goodKey = file('good_ed25519', generateKeyPair('bad-input').privateKey);
  fs.chmodSync(goodKey, 0o600);
  const cluster = (name: string, text: string) => file(`${name}.yml`, text);
  const notYaml = cluster('not-yaml', 'name: [unclosed\nmanagers: {\n');
  const tabs = cluster('tabs', 'name: t\nmanagers:\n\t- 1\n');
  const empty = cluster('empty', '');
  const binary = file('binary.yml', Buffer.from([0, 1, 2, 3, 255, 254, 0, 10, 0]));
  const unknownDriver = cluster('unknown-driver', 'name: u\ndriver: { name: nosuchdriver }\nmanagers: 1\n');
  const unknownField = cluster('unknown-field', 'name: u\ndriver: { name: docker }\nmanagers: 1\ncolour: blue\n');
  const wrongType = cluster('wrong-type', 'name: u\ndriver: { name: docker }\nmanagers: three\n');
  const duplicate = cluster('duplicate', 'name: u\ndriver: { name: docker }\nmanagers: 1\nnodes:\n  - name: db1\n    driver: { name: generic, address: 10.207.99.10 }\n    role: worker\n  - name: db1\n    driver: { name: generic, address: 10.207.99.11 }\n    role: worker\n');
  const evenManagers = cluster('even', 'name: u\ndriver: { name: docker }\nmanagers: 2\n');
  const noName = cluster('no-name', 'driver: { name: docker }\nmanagers: 1\n');
  const badName = cluster('bad-name', 'name: "bad name!"\ndriver: { name: docker }\nmanagers: 1\n');
  const negativeWorkers = cluster('neg-workers', 'name: u\ndriver: { name: docker }\nmanagers: 1\nworkers:\n  - count: -2\n');
  const notATarball = file('bundle.tgz', 'this is not a tarball\n');
  const stackFile = file('stack.yml', 'version: "3.8"\nservices: {}\n');
  const ca = file('registry-ca.crt', 'not a certificate\n');
  const textKey = file('text-key', 'this is not a key\n');
  const publicKey = file('id_pub_only', generateKeyPair('bad-input').publicKey + '\n');
  const protectedKey = path.join(work, 'id_protected');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', protectedKey]);

  const cases: Case[] = [
    // Commands and flags.
    { args: ['nosuchcommand'], expect: /command nosuchcommand not found/ },
    { args: ['create', '--nosuchflag', 'x'], expect: /Nonexistent flag: --nosuchflag/ },
    { args: ['create'], expect: /create needs a machine name/ },
    { args: ['ls', '--format'], expect: /--format expects a value/ },
    { args: ['ssh'], expect: /Missing 1 required arg/ },
    { args: ['scp', 'onlyone'], expect: /Missing 1 required arg/ },
    { args: ['create', '--driver', 'nosuchdriver', 'x1'], expect: /nosuchdriver/ },
    // Machines that do not exist.
    { args: ['upgrade', 'nope'], expect: /upgrade needs --engine-bundle or --engine-version/ },
    ...['inspect', 'ip', 'url', 'config', 'env', 'status', 'start', 'stop', 'kill', 'restart', 'provision'].map((command) => ({ args: [command, 'nope'], expect: /machine "nope" does not exist/ })),
    { args: ['ssh', 'nope', '--', 'true'], expect: /machine "nope" does not exist/ },
    { args: ['regenerate-certs', '-f', 'nope'], expect: /machine "nope" does not exist/ },
    { args: ['scp', 'nope:/etc/hostname', path.join(work, 'x')], expect: /machine "nope" does not exist/ },
    // Names.
    ...['bad_name', 'a b', 'ünïcode', '.dot', 'x'.repeat(64), 'semi;colon', 'slash/name'].map((name) => ({
      args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', name],
      expect: new RegExp(`invalid machine name "${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`),
    })),
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', 'box'], expect: /machine "box" already exists/ },
    // Addresses, ports, users (generic driver).
    { args: ['create', '--driver', 'generic', 'g1'], expect: /--generic-ip-address/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', 'not an address!', 'g1'], expect: /generic-ip-address/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', '0', 'g1'], expect: /a port from 1 to 65535/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', 'abc', 'g1'], expect: /generic-ssh-port/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', '2.5', 'g1'], expect: /generic-ssh-port/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-user', 'bad user', 'g1'], expect: /not a user name/ },
    // Key files.
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', missing, 'g1'], expect: /does-not-exist/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', textKey, 'g1'], expect: /text-key is not a private key tmachine can read/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', publicKey, 'g1'], expect: /id_pub_only is a public key/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', protectedKey, 'g1'], expect: /id_protected is protected by a passphrase/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', work, 'g1'], expect: /cannot be read \(not a file\)/ },
    // Docker driver flags.
    { args: ['create', '--driver', 'docker', '--docker-subnet', 'not-a-cidr', dname], expect: /an IPv4 CIDR such as 10\.77\.0\.0\/24/ },
    { args: ['create', '--driver', 'docker', '--docker-ip', '10.207.300.1', dname], expect: /an IPv4 address/ },
    { args: ['create', '--driver', 'docker', '--docker-privileged', 'sometimes', dname], expect: /auto, always or never/ },
    { args: ['create', '--driver', 'docker', '--docker-network', 'bad name!', dname], expect: /a docker network name/ },
    { args: ['create', '--driver', 'docker', '--docker-network', `${network}-route`, '--docker-subnet', '192.0.2.0/24', dname], expect: /overlaps a route of this machine/ },
    { args: ['create', '--driver', 'docker', '--docker-image', 'nope/none:3', dname], expect: /host image "nope\/none:3" does not exist/ },
    // Engine flags.
    { args: ['create', '--driver', 'docker', '--engine-install', 'sometimes', dname], expect: /engine-install/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-opt', 'novalue'], expect: /engine-opt/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-env', 'novalue'], expect: /engine-env/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-label', 'novalue'], expect: /engine-label/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', 'nofile'], expect: /engine-registry-ca/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', `reg.example:5000=${missing}`], expect: /does-not-exist/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', `reg.example:5000=${ca}`], expect: /registry CA file .*registry-ca\.crt is not a PEM certificate/ },
    { args: ['create', '--driver', 'docker', '--engine-bundle', missing, dname], expect: /does-not-exist/ },
    { args: ['create', '--driver', 'docker', '--engine-bundle', notATarball, dname], expect: /bundle/ },
    { args: ['engine', 'bundle', 'fetch', 'not.a.version'], expect: /not\.a\.version|version/ },
    // Counts and ports of a bootstrap.
    { args: ['swarm', 'bootstrap', '--managers', '0', '--prefix', prefix], expect: /managers/ },
    { args: ['swarm', 'bootstrap', '--managers', '-1', '--prefix', prefix], expect: /managers/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--workers', '-1', '--prefix', prefix], expect: /workers/ },
    { args: ['swarm', 'bootstrap', '--managers', '2', '--strict', '--prefix', prefix], expect: /2 managers/ },
    { args: ['swarm', 'bootstrap', '--managers', '9', '--strict', '--prefix', prefix], expect: /9 managers is more than Docker's recommended maximum of 7/ },
    { args: ['swarm', 'bootstrap', '--managers', '1001', '--prefix', prefix], expect: /1001 machines do not fit on the docker driver here/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--data-path-port', '99999', '--prefix', prefix], expect: /data-path port 99999 is out of range \(Docker takes a data-path port from 1024 to 49151/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--data-path-port', '80', '--prefix', prefix], expect: /data-path port 80 is out of range/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--prefix', 'bad_prefix!'], expect: /prefix|invalid machine name/ },
    // Cluster files.
    { args: ['swarm', 'bootstrap', '-f', missing], expect: /does-not-exist/ },
    { args: ['swarm', 'bootstrap', '-f', notYaml], expect: /not-yaml\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', tabs], expect: /tabs\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', empty], expect: /empty\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', binary], expect: /binary\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', unknownDriver], expect: /unknown-driver\.yml.*nosuchdriver/ },
    { args: ['swarm', 'bootstrap', '-f', unknownField], expect: /unknown-field\.yml:4.*colour/ },
    { args: ['swarm', 'bootstrap', '-f', wrongType], expect: /wrong-type\.yml:3.*managers/ },
    { args: ['swarm', 'bootstrap', '-f', duplicate], expect: /duplicate\.yml.*db1/ },
    { args: ['swarm', 'bootstrap', '-f', evenManagers], expect: /even\.yml:3.*2 managers/ },
    { args: ['swarm', 'bootstrap', '-f', noName], expect: /no-name\.yml.*name/ },
    { args: ['swarm', 'bootstrap', '-f', badName], expect: /bad-name\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', negativeWorkers], expect: /neg-workers\.yml.*count/ },
    // Swarm commands on what does not exist.
    { args: ['swarm', 'join', 'nope', '--role', 'worker'], expect: /nope/ },
    { args: ['swarm', 'status', '--cluster', 'nosuchcluster'], expect: /nosuchcluster/ },
    { args: ['swarm', 'deploy', '-c', missing, 'web', '--cluster', 'nosuchcluster'], expect: /nosuchcluster|does-not-exist/ },
    { args: ['swarm', 'deploy', '-c', stackFile, 'bad stack!'], expect: /stack|cluster/ },
    { args: ['swarm', 'label', 'box', 'novalue'], expect: /no swarm has been bootstrapped in this store/ },
    // A store written by a newer tmachine.
    { args: ['ls'], expect: /newer/, store: 'newer' },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', 'g1'], expect: /newer/, store: 'newer' },
  ];

  beforeAll(async () => {
    lab = await prepareLab();
    // One machine in the store, so "already exists" and commands on a known name mean something.
    const s = await Store.open(store.path);
    await s.reserve({
      schemaVersion: STORE_SCHEMA_VERSION,
      name: 'box',
      createdAt: new Date().toISOString(),
      driver: { name: 'generic', options: { 'generic-ip-address': '10.207.99.10' }, state: {}, resources: [] },
      ssh: { user: 'root', host: '10.207.99.10', port: 22, keyPath: 'id_ed25519' },
      addresses: { public: '10.207.99.10' },
      engine: { install: 'none', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
    });
    await s.writeSecretFile(path.join(s.machineDir('box'), 'id_ed25519'), fs.readFileSync(goodKey, 'utf8'));
    await Store.open(newer.path);
    fs.writeFileSync(path.join(newer.path, 'store.json'), JSON.stringify({ schemaVersion: STORE_SCHEMA_VERSION + 1 }));
  });
  afterAll(async () => {
    store.cleanup();
    newer.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
    // A case that wrongly got as far as making a host must not leave it behind either.
    if (lab) {
      for (const c of await lab.docker.listContainers({ all: true, filters: { label: ['tmachine.machine'] } })) {
        if (c.Labels['tmachine.machine']?.startsWith(prefix)) await lab.docker.getContainer(c.Id).remove({ force: true, v: true });
      }
      for (const v of (await lab.docker.listVolumes({ filters: { label: ['tmachine.machine'] } })).Volumes ?? []) {
        if (v.Labels?.['tmachine.machine']?.startsWith(prefix)) await lab.docker.getVolume(v.Name).remove().catch(() => undefined);
      }
    }
    for (const n of [network, `${network}-route`]) await lab?.docker.getNetwork(n).remove().catch(() => undefined);
  });

  it(`holds at least 60 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of cases) {
    it(`tmachine ${c.args.map((a) => (a.startsWith(work) ? path.basename(a) : a)).join(' ')}`, async () => {
      const root = c.store === 'newer' ? newer.path : store.path;
      const before = treeHash(root);
      const r = await runCli(c.args, { store: root, timeoutMs: 60_000, env: { TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: network, TMACHINE_DOCKER_SUBNET: '10.207.98.0/24' } });
      expect(r.code, r.stderr).not.toBe(0);
      const lines = errorLines(r);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(c.expect);
      expect(r.stderr).not.toMatch(STACK_TRACE);
      expect(treeHash(root)).toBe(before);
      expect(await resourcesOf(lab.docker, prefix)).toEqual([]);
    });
  }
});
