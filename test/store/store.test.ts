import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { STORE_SCHEMA_VERSION, type MachineRecord } from '../../src/store/machine-record.js';
import { repoRoot, tempStore } from '../support/cli.js';

function record(name: string, host = '192.0.2.1'): MachineRecord {
  return {
    schemaVersion: STORE_SCHEMA_VERSION,
    name,
    createdAt: new Date().toISOString(),
    driver: { name: 'generic', options: {}, state: {}, resources: [] },
    ssh: { user: 'root', host, port: 22, keyPath: 'id_ed25519' },
    addresses: { public: host },
    engine: { install: 'bundle', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
  };
}

/** Runs a small ESM script against the built store module in a separate process. */
function runNode(script: string, env: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const stores: Array<() => void> = [];
afterEach(() => stores.splice(0).forEach((c) => c()));
function newStore() {
  const s = tempStore();
  stores.push(s.cleanup);
  return s.path;
}

describe('machine store', () => {
  it('creates directories 0700 and records and keys 0600', async () => {
    const root = newStore();
    const store = await Store.open(root);
    await store.reserve(record('m1'));
    await store.writeSecretFile(path.join(store.machineDir('m1'), 'id_ed25519'), 'secret');
    const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
    expect(mode(root)).toBe('700');
    expect(mode(store.machinesDir)).toBe('700');
    expect(mode(store.certsDir)).toBe('700');
    expect(mode(store.machineDir('m1'))).toBe('700');
    expect(mode(path.join(store.machineDir('m1'), 'config.json'))).toBe('600');
    expect(mode(path.join(store.machineDir('m1'), 'id_ed25519'))).toBe('600');
  });

  it('keeps every update when two processes write the same machine concurrently', async () => {
    const root = newStore();
    const store = await Store.open(root);
    await store.save(record('shared'));
    // Each process appends 40 labels under the machine lock; a lost update would drop some.
    const script = (who: string) => `
      import { Store } from './dist/src/store/store.js';
      const store = await Store.open(process.env.STORE);
      for (let i = 0; i < 40; i++) {
        await store.update('shared', (r) => { r.engine.labels.push('${who}-' + i); });
      }`;
    const [a, b] = await Promise.all([runNode(script('a'), { STORE: root }), runNode(script('b'), { STORE: root })]);
    expect(a.stderr).toBe('');
    expect(b.stderr).toBe('');
    const final = await store.load('shared');
    expect(final.engine.labels).toHaveLength(80);
    expect(new Set(final.engine.labels).size).toBe(80);
  });

  it('leaves the old record intact when the process dies between write and rename', async () => {
    const root = newStore();
    const store = await Store.open(root);
    await store.save(record('m1', '192.0.2.1'));
    const crash = await runNode(
      `
      import fs from 'node:fs';
      import { Store } from './dist/src/store/store.js';
      const store = await Store.open(process.env.STORE);
      const r = await store.load('m1');
      r.addresses.public = '192.0.2.99';
      fs.rename = () => process.kill(process.pid, 'SIGKILL');
      await store.save(r);`,
      { STORE: root },
    );
    expect(crash.signal).toBe('SIGKILL');
    const reread = await (await Store.open(root)).load('m1');
    expect(reread.addresses.public).toBe('192.0.2.1');
    expect(await store.list()).toEqual(['m1']);
  });

  it('refuses a store written by a newer tmachine with a clear message', async () => {
    const root = newStore();
    fs.writeFileSync(path.join(root, 'store.json'), JSON.stringify({ schemaVersion: STORE_SCHEMA_VERSION + 1 }));
    await expect(Store.open(root)).rejects.toThrow(/written by a newer tmachine/);
  });

  it('refuses a machine record written by a newer tmachine', async () => {
    const root = newStore();
    const store = await Store.open(root);
    await store.save(record('m1'));
    const file = path.join(store.machineDir('m1'), 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...record('m1'), schemaVersion: STORE_SCHEMA_VERSION + 1 }));
    await expect(store.load('m1')).rejects.toThrow(/newer tmachine/);
  });

  it('reserves a name once', async () => {
    const store = await Store.open(newStore());
    await store.reserve(record('m1'));
    await expect(store.reserve(record('m1'))).rejects.toThrow(/already exists/);
  });
});
