/**
 * Issue 13's CLI defects, each as a user meets it: multi-value flags that ate the machine
 * name, input errors found only after a host was contacted (or never), one corrupt record
 * that broke `ls` for every machine, `swarm down --rm` without a confirmation, global flags
 * before the command.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { repoRoot, runCli, tempStore, type CliResult } from '../support/cli.js';
import { genericRecord } from '../support/records.js';

const store = tempStore();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-defects-'));
afterAll(() => {
  store.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});
const cli = (args: string[], env?: Record<string, string>) => runCli(args, { store: store.path, ...(env ? { env } : {}) });

function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code, result.stdout + result.stderr).not.toBe(0);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^Error: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\bat .*\.js:\d+/);
}

function storeIsEmpty(): boolean {
  const dir = path.join(store.path, 'machines');
  return !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;
}

describe('defect 1: a multi-value flag never swallows the machine name', () => {
  it('create --engine-label a=b NAME takes NAME as the machine name', async () => {
    // The name is invalid on purpose: the error proves it reached the name check (before
    // the fix it was eaten as a second label and the command said "Missing 1 required arg").
    const r = await cli(['create', '--driver', 'generic', '--engine-label', 'a=b', 'bad name']);
    expectOneLineError(r, /invalid machine name "bad name"/);
  });

  it("create -d generic --engine-opt dns=8.8.8.8 manager1 (Docker Machine's documented syntax) reaches the driver", async () => {
    const r = await cli(['create', '-d', 'generic', '--engine-opt', 'dns=8.8.8.8', '--engine-env', 'A=1', '--engine-insecure-registry', 'r:5000', 'manager1']);
    expect(r.stderr).not.toMatch(/Missing 1 required arg/);
    expect(r.stderr).toMatch(/--generic-ip-address is required/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('repeated flags keep every value and the names after them', async () => {
    const r = await cli(['create', '--driver', 'generic', '--engine-label', 'a=b', '--engine-label', 'c', 'm1']);
    // "c" is the second label (no k=v): proof that both values were collected, and m1 was not.
    expectOneLineError(r, /--engine-label takes k=v, not "c"/);
  });

  it("a driver's repeatable flag (string[]) does not take the name either", async () => {
    const r = await cli(['create', '--driver', 'amazonec2', '--amazonec2-instance-type', 't3.small', 'bad name']);
    expectOneLineError(r, /invalid machine name "bad name"/);
  });
});

describe('set-up: tmachine runs on Node 22+ whatever Node starts it', () => {
  it('started by the system Node 20, it runs on the project\'s Node 24 and prints no engine warning', () => {
    const systemNode = '/usr/bin/node';
    const major = Number(execFileSync(systemNode, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
    expect(major).toBeLessThan(22); // this machine's Debian 12 Node: the case that matters
    const r = spawnSync(systemNode, [path.join(repoRoot, 'bin', 'run.js'), '--version'], { encoding: 'utf8', env: { ...process.env, TMACHINE_STORAGE_PATH: store.path } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/node-v2[2-9]\./);
    expect(r.stderr).not.toMatch(/Node version must be/);
    expect(r.stderr).toBe('');
    // Exit codes pass through the re-exec.
    const failing = spawnSync(systemNode, [path.join(repoRoot, 'bin', 'run.js'), 'inspect', 'nope'], { encoding: 'utf8', env: { ...process.env, TMACHINE_STORAGE_PATH: store.path } });
    expect(failing.status).toBe(1);
    expect(failing.stderr.trim()).toMatch(/^Error: machine "nope" does not exist/);
  });
});

describe('defect 7: one clear line before anything remote', () => {
  it('ls --timeout -5', async () => {
    expectOneLineError(await cli(['ls', '--timeout', '-5']), /--timeout must be a positive number of seconds, not "-5"/);
  });

  it('--generic-ssh-port 70000', async () => {
    const r = await cli(['create', '--driver', 'generic', '--generic-ip-address', '127.0.0.1', '--generic-ssh-port', '70000', 'g1']);
    expectOneLineError(r, /--generic-ssh-port "70000": a port from 1 to 65535/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('--generic-ip-address 999.1.1.1 is refused, not looked up; a host name is still allowed', async () => {
    const r = await cli(['create', '--driver', 'generic', '--generic-ip-address', '999.1.1.1', 'g1']);
    expectOneLineError(r, /--generic-ip-address "999\.1\.1\.1": not an IP address or host name/);
    const bad = await cli(['create', '--driver', 'generic', '--generic-ip-address', 'under_score.example', 'g1']);
    expectOneLineError(bad, /--generic-ip-address "under_score\.example": not an IP address or host name/);
    // A valid name passes the check and fails later, at the key (not at the address).
    const named = await cli(['create', '--driver', 'generic', '--generic-ip-address', 'db1.example.org', '--generic-ssh-key', path.join(work, 'nokey'), 'g1']);
    expect(named.stderr).toMatch(/SSH key .*nokey does not exist/);
    expect(storeIsEmpty()).toBe(true);
  });

  it('TMACHINE_STORAGE_PATH naming a file', async () => {
    const file = path.join(work, 'a-file');
    fs.writeFileSync(file, 'x');
    const r = await runCli(['ls'], { store: file });
    expectOneLineError(r, /store path .*a-file is a file, not a directory/);
    expect(r.stderr).not.toMatch(/EEXIST/);
  });

  it('an --engine-bundle that is not a bundle, before any host is contacted', async () => {
    const notGzip = path.join(work, 'not-a-bundle.tgz');
    fs.writeFileSync(notGzip, 'hello');
    // Port 1 on 127.0.0.1 answers nobody: checked after contact, this would be "could not reach".
    const base = ['create', '--driver', 'generic', '--generic-ip-address', '127.0.0.1', '--generic-ssh-port', '1', '--generic-ssh-key', '/etc/hostname'];
    expectOneLineError(await cli([...base, '--engine-bundle', notGzip, 'g1']), /not-a-bundle\.tgz is not a readable \.tgz bundle/);
    // A real gzip'd tar without the static-release layout.
    const dir = path.join(work, 'tarball');
    fs.mkdirSync(path.join(dir, 'docker'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'docker', 'docker'), '');
    const tgz = path.join(work, 'partial.tgz');
    execFileSync('tar', ['czf', tgz, '-C', dir, 'docker']);
    expectOneLineError(await cli([...base, '--engine-bundle', tgz, 'g1']), /partial\.tgz is not an engine bundle: missing docker\/dockerd/);
    expectOneLineError(await cli([...base, '--engine-bundle', path.join(work, 'missing.tgz'), 'g1']), /missing\.tgz not found \(check the path given to --engine-bundle\)/);
    expect(storeIsEmpty()).toBe(true);
  });
});

describe('defect 8: a corrupt record does not break ls for the others', () => {
  const s2 = tempStore();
  afterAll(() => s2.cleanup());

  it('lists the good machines and the broken one with its error', async () => {
    const s = await Store.open(s2.path);
    await s.reserve(genericRecord('good1', '127.0.0.1'));
    await s.reserve(genericRecord('good2', '127.0.0.1'));
    fs.mkdirSync(path.join(s2.path, 'machines', 'broken'));
    fs.writeFileSync(path.join(s2.path, 'machines', 'broken', 'config.json'), '{"name": "broken", ');
    const ls = await runCli(['ls', '--timeout', '5'], { store: s2.path });
    expect(ls.code, ls.stderr).toBe(0);
    const lines = ls.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+ACTIVE\s+DRIVER\s+STATE\s+URL\s+SWARM\s+DOCKER\s+ERRORS$/);
    expect(lines.find((l) => l.startsWith('broken '))).toMatch(/ Error .*config\.json is not valid JSON/);
    expect(lines.some((l) => l.startsWith('good1 '))).toBe(true);
    expect(lines.some((l) => l.startsWith('good2 '))).toBe(true);
    const quiet = await runCli(['ls', '-q'], { store: s2.path });
    expect(quiet.stdout.trim().split('\n')).toEqual(['broken', 'good1', 'good2']);
  });
});

describe('swarm down --rm asks first', () => {
  it('without -y and without a terminal: one line saying to pass -y', async () => {
    expectOneLineError(await cli(['swarm', 'down', '--rm']), /swarm down --rm needs confirmation \(pass -y/);
  });

  it('on a terminal it asks, and "n" changes nothing', () => {
    // script(1) gives the command a pseudo-terminal, as a user's shell would.
    const command = `${process.execPath} ${path.join(repoRoot, 'bin', 'run.js')} swarm down --rm`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'n\n', encoding: 'utf8', env: { ...process.env, TMACHINE_STORAGE_PATH: store.path }, timeout: 30_000 });
    expect(r.stdout).toMatch(/About to dissolve the cluster and remove all its machines\. Are you sure\? \(y\/n\)/);
    expect(r.stdout).not.toMatch(/is down/);
    expect(r.status).toBe(0);
  });
});

describe('global flags before the command, as docker-machine took them', () => {
  it('tmachine --storage-path DIR ls and tmachine --debug ls', async () => {
    const other = tempStore();
    try {
      const s = await Store.open(other.path);
      await s.reserve(genericRecord('elsewhere', '127.0.0.1'));
      const r = await runCli(['--storage-path', other.path, 'ls', '-q'], { store: store.path });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('elsewhere');
      const short = await runCli(['-s', other.path, 'ls', '-q'], { store: store.path });
      expect(short.stdout.trim()).toBe('elsewhere');
      const debug = await runCli(['--debug', 'ls', '-q'], { store: other.path });
      expect(debug.stderr).not.toMatch(/command --debug not found/);
      expect(debug.code).toBe(0);
      expect(debug.stdout.trim()).toBe('elsewhere');
    } finally {
      other.cleanup();
    }
  });
});
