import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { SshConnection } from '../../src/ssh/connection.js';
import { fingerprintOfPrivateKey, generateKeyPair, parsePublicKeyLine, type PinnedHostKey } from '../../src/ssh/keys.js';
import { waitForSsh } from '../../src/ssh/wait.js';
import { connectOptionsFor, sshKeygenFingerprint, startSshd, type TestSshd } from '../support/sshd.js';

let sshd: TestSshd;
let target: string;
/** The server's first host key, as OpenSSH's own files and tools describe it. */
let firstPin: PinnedHostKey;

beforeAll(async () => {
  sshd = await startSshd();
  target = `${sshd.host}:${sshd.port}`;
  const [algorithm = '', key = ''] = (await hostPublicKeyLine()).split(' ');
  firstPin = { algorithm, key, fingerprint: await sshKeygenFingerprint(`${sshd.hostKeyPath}.pub`) };
});

afterAll(async () => {
  await sshd?.stop();
});

async function hostPublicKeyLine(): Promise<string> {
  return (await readFile(`${sshd.hostKeyPath}.pub`, 'utf8')).trim();
}

async function connectionError(promise: Promise<SshConnection>): Promise<TmachineError> {
  const outcome = await promise.then(
    (connection) => {
      connection.close();
      return new Error('connected, but should have been refused');
    },
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(TmachineError);
  const error = outcome as TmachineError;
  // One line for the user, no stack.
  expect(error.userLine).not.toContain('\n');
  return error;
}

describe('host key pinning', () => {
  it('pins the host key on first contact, with the fingerprint ssh-keygen reports', async () => {
    const onNewHostKey = vi.fn(async (_pin: PinnedHostKey) => undefined);
    const connection = await SshConnection.connect({ ...connectOptionsFor(sshd), onNewHostKey });
    try {
      expect(onNewHostKey).toHaveBeenCalledTimes(1);
      expect(onNewHostKey).toHaveBeenCalledWith(firstPin);
      expect(firstPin.algorithm).toBe('ssh-ed25519');
      expect(connection.hostKey).toEqual(firstPin);
      expect(await connection.run('echo pinned')).toBe('pinned\n');
    } finally {
      connection.close();
    }
  });

  it('fails the connection when persisting the pin fails', async () => {
    const error = await connectionError(
      SshConnection.connect({
        ...connectOptionsFor(sshd),
        onNewHostKey: async () => {
          throw new Error('disk full');
        },
      }),
    );
    expect(error.message).toBe('could not record the host key of testhost: disk full');
  });

  it('accepts the pinned key on reconnect without asking to pin again', async () => {
    const onNewHostKey = vi.fn(async () => undefined);
    const connection = await SshConnection.connect({ ...connectOptionsFor(sshd), pinnedHostKey: firstPin, onNewHostKey });
    try {
      expect(await connection.run('echo again')).toBe('again\n');
      expect(onNewHostKey).not.toHaveBeenCalled();
    } finally {
      connection.close();
    }
  });

  it('accepts a host key the platform published, and pins it', async () => {
    const onNewHostKey = vi.fn(async (_pin: PinnedHostKey) => undefined);
    const unrelated = generateKeyPair('some-other-host').publicKey;
    const connection = await SshConnection.connect({
      ...connectOptionsFor(sshd),
      publishedHostKeys: [unrelated, await hostPublicKeyLine()],
      onNewHostKey,
    });
    connection.close();
    expect(onNewHostKey).toHaveBeenCalledWith(firstPin);
  });

  it('refuses a host whose key is not among the published ones', async () => {
    const onNewHostKey = vi.fn(async () => undefined);
    const published = generateKeyPair('the-real-host').publicKey;
    const error = await connectionError(
      SshConnection.connect({ ...connectOptionsFor(sshd), publishedHostKeys: [published], onNewHostKey }),
    );
    expect(error.message).toBe(
      `host key of machine testhost (${target}) is not one the platform published: offered ${firstPin.fingerprint}, published ${parsePublicKeyLine(published).fingerprint}`,
    );
    expect(onNewHostKey).not.toHaveBeenCalled();
  });

  it('refuses a client key the host does not know, naming the key and the login', async () => {
    const stranger = generateKeyPair('stranger');
    const error = await connectionError(
      SshConnection.connect({
        ...connectOptionsFor(sshd),
        privateKey: stranger.privateKey,
        privateKeyPath: '/keys/stranger',
        pinnedHostKey: firstPin,
      }),
    );
    expect(error.message).toBe(
      `SSH key ${fingerprintOfPrivateKey(stranger.privateKey)} (/keys/stranger) was refused by ${sshd.user}@${target}`,
    );
    expect(error.hint).toContain('authorized_keys');
  });

  it('does not keep retrying a refused key while waiting for a host', async () => {
    const started = Date.now();
    const error = await connectionError(
      waitForSsh({ ...connectOptionsFor(sshd), privateKey: generateKeyPair('stranger').privateKey, deadlineMs: 20_000 }),
    );
    expect(error.message).toMatch(/was refused by/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  describe('after the host was rebuilt with a new host key', () => {
    beforeAll(async () => {
      await sshd.restartWithNewHostKey();
    });

    it('refuses the changed key, showing both fingerprints and how to re-pin', async () => {
      const newFingerprint = await sshKeygenFingerprint(`${sshd.hostKeyPath}.pub`);
      expect(newFingerprint).not.toBe(firstPin.fingerprint);
      const onNewHostKey = vi.fn(async () => undefined);
      const error = await connectionError(
        SshConnection.connect({ ...connectOptionsFor(sshd), pinnedHostKey: firstPin, onNewHostKey }),
      );
      expect(error.message).toBe(
        `host key of machine testhost (${target}) changed: pinned ${firstPin.fingerprint}, offered ${newFingerprint}`,
      );
      expect(error.hint).toContain('tmachine ssh testhost --repin-host-key');
      expect(onNewHostKey).not.toHaveBeenCalled();
    });

    it('does not keep retrying a changed host key while waiting for a host', async () => {
      const started = Date.now();
      const error = await connectionError(
        waitForSsh({ ...connectOptionsFor(sshd), pinnedHostKey: firstPin, deadlineMs: 20_000 }),
      );
      expect(error.message).toMatch(/changed: pinned/);
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('pins the new key when connecting without the old pin (what --repin-host-key does)', async () => {
      const onNewHostKey = vi.fn(async (_pin: PinnedHostKey) => undefined);
      const connection = await SshConnection.connect({ ...connectOptionsFor(sshd), onNewHostKey });
      connection.close();
      expect(onNewHostKey.mock.calls[0]![0].fingerprint).toBe(await sshKeygenFingerprint(`${sshd.hostKeyPath}.pub`));
    });
  });

  describe('after the host was rebuilt with a host key of another type', () => {
    beforeAll(async () => {
      await sshd.restartWithNewHostKey('ecdsa');
    });

    it('refuses it as a changed key rather than reporting a handshake failure', async () => {
      const error = await connectionError(SshConnection.connect({ ...connectOptionsFor(sshd), pinnedHostKey: firstPin }));
      expect(error.message).toBe(
        `host key of machine testhost (${target}) changed: pinned ${firstPin.fingerprint} (ssh-ed25519), the host no longer offers a key of that type`,
      );
      expect(error.hint).toContain('tmachine ssh testhost --repin-host-key');
    });

    it('pins the ecdsa key on a fresh first contact', async () => {
      const onNewHostKey = vi.fn(async (_pin: PinnedHostKey) => undefined);
      const connection = await SshConnection.connect({ ...connectOptionsFor(sshd), onNewHostKey });
      connection.close();
      expect(onNewHostKey.mock.calls[0]![0]).toMatchObject({
        algorithm: 'ecdsa-sha2-nistp256',
        fingerprint: await sshKeygenFingerprint(`${sshd.hostKeyPath}.pub`),
      });
    });
  });
});
