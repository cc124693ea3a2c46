import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempStore, type CliResult } from '../support/cli.js';

const store = tempStore();
afterAll(() => store.cleanup());

function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code).not.toBe(0);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
}

describe('tmachine CLI', () => {
  it('lists the commands in --help', async () => {
    const r = await runCli(['--help'], { store: store.path });
    expect(r.code).toBe(0);
    for (const cmd of ['create', 'ls', 'inspect', 'status', 'ip', 'url', 'config', 'env', 'active', 'ssh', 'scp', 'rm', 'version']) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\s`, 'm'));
    }
  });

  it('prints its version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version'], { store: store.path });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`tmachine/${pkg.version}`);
  });

  it('lists the engine flags of SPEC §2 in create --help', async () => {
    const r = await runCli(['create', '--help'], { store: store.path });
    expect(r.code).toBe(0);
    for (const flag of [
      'engine-install',
      'engine-version',
      'engine-bundle',
      'engine-install-url',
      'engine-opt',
      'engine-env',
      'engine-label',
      'engine-insecure-registry',
      'engine-registry-mirror',
      'engine-storage-driver',
      'engine-registry-ca',
    ]) {
      expect(r.stdout).toContain(`--${flag}`);
    }
  });

  it("shows a driver's flags with create --driver X --help", async () => {
    const generic = await runCli(['create', '--driver', 'generic', '--help'], { store: store.path });
    expect(generic.stdout).toContain('--generic-ip-address');
    expect(generic.stdout).toContain('--generic-ssh-key');
    const docker = await runCli(['create', '--driver', 'docker', '--help'], { store: store.path });
    expect(docker.stdout).toContain('--docker-image');
    expect(docker.stdout).not.toContain('--generic-ssh-port');
  });

  describe('bad input: one line, non-zero exit', () => {
    it('unknown command', async () => {
      expectOneLineError(await runCli(['frobnicate'], { store: store.path }), /command frobnicate not found/);
    });
    it('unknown flag', async () => {
      expectOneLineError(await runCli(['ls', '--frobnicate'], { store: store.path }), /Nonexistent flag: --frobnicate/);
    });
    it('machine name with a space', async () => {
      expectOneLineError(await runCli(['create', '--driver', 'generic', 'bad name'], { store: store.path }), /invalid machine name "bad name"/);
    });
    it('machine name with a slash', async () => {
      expectOneLineError(await runCli(['inspect', 'a/b'], { store: store.path }), /invalid machine name "a\/b"/);
    });
    it('machine name over 63 characters', async () => {
      expectOneLineError(await runCli(['create', '--driver', 'generic', 'x'.repeat(64)], { store: store.path }), /longer than 63 characters/);
    });
    it('a machine that does not exist', async () => {
      expectOneLineError(await runCli(['ssh', 'nope', '--', 'true'], { store: store.path }), /machine "nope" does not exist/);
    });
    it('unknown driver', async () => {
      expectOneLineError(await runCli(['create', '--driver', 'nosuch', 'm1'], { store: store.path }), /unknown driver "nosuch"/);
    });
    it('generic without an address, and nothing is left in the store', async () => {
      const r = await runCli(['create', '--driver', 'generic', '--generic-ssh-key', '/etc/hostname', 'g0'], { store: store.path });
      expectOneLineError(r, /--generic-ip-address is required/);
      const ls = await runCli(['ls', '-q'], { store: store.path });
      expect(ls.stdout.trim()).toBe('');
    });
  });
});
