import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { SshConnection } from '../../src/ssh/connection.js';
import { connectOptionsFor, startSshd, type TestSshd } from '../support/sshd.js';

let sshd: TestSshd;
let host: SshConnection;
let localDir: string;
/** A fresh directory on the "remote" host, made through the connection itself. */
let remoteDir: string;

beforeAll(async () => {
  sshd = await startSshd();
  host = await SshConnection.connect(connectOptionsFor(sshd));
  localDir = await mkdtemp(path.join(tmpdir(), 'tmachine-sftp-test-'));
  remoteDir = (await host.run('mktemp -d')).trim();
});

afterAll(async () => {
  if (remoteDir) await host.run(`rm -rf ${remoteDir}`).catch(() => undefined);
  host?.close();
  await sshd?.stop();
  if (localDir) await rm(localDir, { recursive: true, force: true });
});

async function remoteListing(): Promise<string[]> {
  return (await host.run(`ls -A ${remoteDir}`)).split('\n').filter(Boolean).sort();
}

async function remoteMode(remotePath: string): Promise<string> {
  return (await host.run(`stat -c %a ${remotePath}`)).trim();
}

/** Writes size random bytes to a local file and returns their sha256. */
async function randomFile(filePath: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(filePath);
  for (let written = 0; written < size; ) {
    const chunk = randomBytes(Math.min(1024 * 1024, size - written));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    written += chunk.length;
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return hash.digest('hex');
}

describe('upload', () => {
  it('uploads a 50 MB file intact, reports progress up to the total and leaves no temp file', async () => {
    const size = 50 * 1024 * 1024;
    const localPath = path.join(localDir, 'big.bin');
    const localSha256 = await randomFile(localPath, size);
    const progress: Array<[number, number]> = [];

    await host.upload(localPath, `${remoteDir}/big.bin`, {
      mode: 0o640,
      onProgress: (transferred, total) => progress.push([transferred, total]),
    });

    const remoteSha256 = (await host.run(`sha256sum ${remoteDir}/big.bin`)).split(' ')[0];
    expect(remoteSha256).toBe(localSha256);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([size, size]);
    expect(progress.every(([, total]) => total === size)).toBe(true);
    expect(progress.map(([transferred]) => transferred)).toEqual([...progress.map(([t]) => t)].sort((a, b) => a - b));
    expect(await remoteMode(`${remoteDir}/big.bin`)).toBe('640');
    expect(await remoteListing()).toEqual(['big.bin']);
  });

  it('replaces an existing file and keeps the local mode when none is given', async () => {
    const localPath = path.join(localDir, 'tool.sh');
    await writeFile(localPath, '#!/bin/sh\necho new version\n');
    await chmod(localPath, 0o755);
    await host.writeFile(`${remoteDir}/tool.sh`, 'old version\n', { mode: 0o600 });

    await host.upload(localPath, `${remoteDir}/tool.sh`);

    expect(await host.run(`${remoteDir}/tool.sh`)).toBe('new version\n');
    expect(await remoteMode(`${remoteDir}/tool.sh`)).toBe('755');
    expect((await remoteListing()).filter((name) => name.includes('tmachine-tmp'))).toEqual([]);
  });

  it('fails with a clear message when the local file is missing', async () => {
    await expect(host.upload(path.join(localDir, 'nope.bin'), `${remoteDir}/nope.bin`)).rejects.toThrow(
      /^cannot read .*nope\.bin to upload it to testhost: /,
    );
  });
});

describe('writeFile', () => {
  it('writes content with the given mode', async () => {
    await host.writeFile(`${remoteDir}/daemon.json`, '{"tls": true}\n', { mode: 0o600 });
    expect(await host.run(`cat ${remoteDir}/daemon.json`)).toBe('{"tls": true}\n');
    expect(await remoteMode(`${remoteDir}/daemon.json`)).toBe('600');
  });

  it('writes binary content and defaults to mode 644', async () => {
    const content = randomBytes(4096);
    await host.writeFile(`${remoteDir}/blob`, content);
    expect((await host.run(`sha256sum ${remoteDir}/blob`)).split(' ')[0]).toBe(
      createHash('sha256').update(content).digest('hex'),
    );
    expect(await remoteMode(`${remoteDir}/blob`)).toBe('644');
  });

  it('fails with a clear message when the directory does not exist, leaving nothing behind', async () => {
    const error = await host.writeFile(`${remoteDir}/missing/file`, 'x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TmachineError);
    expect((error as TmachineError).message).toBe(`writing testhost:${remoteDir}/missing/file failed: No such file`);
    expect((await remoteListing()).filter((name) => name.includes('tmachine-tmp'))).toEqual([]);
  });

  it('fails with a clear message when the login user may not write there', async () => {
    await expect(host.writeFile('/etc/tmachine-test-denied', 'x')).rejects.toThrow(
      'writing testhost:/etc/tmachine-test-denied failed: Permission denied',
    );
  });
});

describe('download', () => {
  it('downloads a remote file', async () => {
    const content = randomBytes(300_000);
    await host.writeFile(`${remoteDir}/cert.pem`, content);
    const localPath = path.join(localDir, 'cert.pem');
    await host.download(`${remoteDir}/cert.pem`, localPath);
    expect((await readFile(localPath)).equals(content)).toBe(true);
  });

  it('fails with a clear message when the remote file is missing', async () => {
    await expect(host.download(`${remoteDir}/absent`, path.join(localDir, 'absent'))).rejects.toThrow(
      `download of testhost:${remoteDir}/absent failed: No such file`,
    );
  });
});
