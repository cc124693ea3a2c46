import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fingerprintOf,
  fingerprintOfPrivateKey,
  generateKeyPair,
  parsePublicKeyLine,
  pinFromKey,
} from '../../src/ssh/keys.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tmachine-keys-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('generateKeyPair', () => {
  it('makes an ed25519 key pair OpenSSH accepts, with the comment on the public line', async () => {
    const pair = generateKeyPair('tmachine-m1');
    expect(pair.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(pair.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ tmachine-m1$/);

    // ssh-keygen derives the same public key from the private key file.
    const keyPath = path.join(dir, 'id_m1');
    await writeFile(keyPath, pair.privateKey, { mode: 0o600 });
    const { stdout } = await run('ssh-keygen', ['-y', '-f', keyPath]);
    expect(stdout.trim().split(' ').slice(0, 2)).toEqual(pair.publicKey.split(' ').slice(0, 2));
  });
});

describe('fingerprints', () => {
  it('match what ssh-keygen -lf prints', async () => {
    const pair = generateKeyPair('fp-test');
    const publicPath = path.join(dir, 'fp.pub');
    await writeFile(publicPath, `${pair.publicKey}\n`);
    const { stdout } = await run('ssh-keygen', ['-l', '-f', publicPath]);
    const expected = stdout.split(' ')[1];

    const parsed = parsePublicKeyLine(pair.publicKey);
    expect(parsed.fingerprint).toBe(expected);
    expect(fingerprintOf(Buffer.from(parsed.key, 'base64'))).toBe(expected);
    expect(fingerprintOfPrivateKey(pair.privateKey)).toBe(expected);
    expect(expected).not.toContain('=');
  });
});

describe('parsePublicKeyLine / pinFromKey', () => {
  it('reads type, key and comment', () => {
    const pair = generateKeyPair('root@web 1');
    const parsed = parsePublicKeyLine(`  ${pair.publicKey}\n`);
    expect(parsed.algorithm).toBe('ssh-ed25519');
    expect(parsed.comment).toBe('root@web 1');
    expect(pinFromKey(Buffer.from(parsed.key, 'base64'))).toEqual({
      algorithm: parsed.algorithm,
      key: parsed.key,
      fingerprint: parsed.fingerprint,
    });
  });

  it('rejects lines that are not public keys', () => {
    const [, base64] = generateKeyPair('x').publicKey.split(' ');
    expect(() => parsePublicKeyLine('hello world')).toThrow(/not an OpenSSH public key line/);
    expect(() => parsePublicKeyLine('')).toThrow(/not an OpenSSH public key line/);
    // A key whose declared type does not match the type inside it (a mangled line).
    expect(() => parsePublicKeyLine(`ssh-rsa ${base64}`)).toThrow(/does not match its type ssh-rsa/);
    expect(() => pinFromKey(Buffer.from('nonsense'))).toThrow(/not an SSH public key/);
  });
});

describe('generateKeyPair, many times', () => {
  it('always returns a private key that parses (ssh2 alone fails about 1 in 300)', () => {
    for (let i = 0; i < 1500; i++) {
      const pair = generateKeyPair(`k${i}`);
      expect(ssh2.utils.parseKey(pair.privateKey)).not.toBeInstanceOf(Error);
    }
  });
});
