/**
 * `tmachine ssh` and `tmachine scp` through a machine record, against a real OpenSSH server
 * the test starts on 127.0.0.1 (the record is written as `create --driver generic` would).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { STORE_SCHEMA_VERSION } from '../../src/store/machine-record.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { runCli, tempStore } from '../support/cli.js';

describe('ssh and scp through a machine record', () => {
  let sshd: TestSshd;
  const store = tempStore();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-scp-'));
  const cli = (args: string[]) => runCli(args, { store: store.path });

  beforeAll(async () => {
    sshd = await startSshd();
    const s = await Store.open(store.path);
    for (const name of ['box', 'nokey']) {
      await s.reserve({
        schemaVersion: STORE_SCHEMA_VERSION,
        name,
        createdAt: new Date().toISOString(),
        driver: { name: 'generic', options: { 'generic-ip-address': sshd.host, 'generic-ssh-port': sshd.port }, state: {}, resources: [] },
        ssh: { user: sshd.user, host: sshd.host, port: sshd.port, keyPath: 'id_ed25519' },
        addresses: { public: sshd.host },
        engine: { install: 'none', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
      });
      await s.writeSecretFile(path.join(s.machineDir(name), 'id_ed25519'), sshd.clientPrivateKey);
    }
    fs.rmSync(path.join(s.machineDir('nokey'), 'id_ed25519'));
  });
  afterAll(async () => {
    await sshd?.stop();
    store.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('runs one command and passes its output and exit code through', async () => {
    const r = await cli(['ssh', 'box', '--', 'uname', '-a']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Linux /);
    const failing = await cli(['ssh', 'box', '--', 'echo to-stderr >&2; exit 42']);
    expect(failing.code).toBe(42);
    expect(failing.stderr).toContain('to-stderr');
  });

  it('pins the host key on first contact', async () => {
    const record = JSON.parse(fs.readFileSync(path.join(store.path, 'machines', 'box', 'config.json'), 'utf8')) as { ssh: { hostKey?: { fingerprint: string } } };
    expect(record.ssh.hostKey?.fingerprint).toMatch(/^SHA256:/);
  });

  it('copies a file there and back, and directories with -r', async () => {
    const local = path.join(work, 'payload.bin');
    fs.writeFileSync(local, crypto.randomBytes(300_000));
    const remoteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-remote-'));
    fs.chmodSync(remoteDir, 0o777);
    expect((await cli(['scp', local, `box:${remoteDir}/payload.bin`])).code).toBe(0);
    const back = path.join(work, 'back.bin');
    expect((await cli(['scp', `box:${remoteDir}/payload.bin`, back])).code).toBe(0);
    expect(fs.readFileSync(back).equals(fs.readFileSync(local))).toBe(true);

    const tree = path.join(work, 'tree');
    fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'A');
    fs.writeFileSync(path.join(tree, 'sub', 'b.txt'), 'B');
    expect((await cli(['scp', '-r', tree, `box:${remoteDir}/tree`])).code).toBe(0);
    const copy = path.join(work, 'copy');
    expect((await cli(['scp', '-r', `box:${remoteDir}/tree`, copy])).code).toBe(0);
    expect(fs.readFileSync(path.join(copy, 'sub', 'b.txt'), 'utf8')).toBe('B');
    const noR = await cli(['scp', tree, `box:${remoteDir}/x`]);
    expect(noR.code).not.toBe(0);
    expect(noR.stderr).toMatch(/is a directory \(pass -r/);
    fs.rmSync(remoteDir, { recursive: true, force: true });
  });

  it('refuses a changed host key with a message that says so', async () => {
    await sshd.restartWithNewHostKey();
    const r = await cli(['ssh', 'box', '--', 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/host key of machine box .* changed/);
    // After a deliberate rebuild the user re-pins and is let in.
    expect((await cli(['ssh', 'box', '--repin-host-key', '--', 'true'])).code).toBe(0);
  });

  it('ssh to a machine whose key file was deleted: one line, non-zero', async () => {
    const r = await cli(['ssh', 'nokey', '--', 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/SSH key of machine "nokey" cannot be read/);
  });
});
