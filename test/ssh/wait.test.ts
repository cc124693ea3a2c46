import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { SshConnection, type SshConnectOptions } from '../../src/ssh/connection.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { waitForSsh } from '../../src/ssh/wait.js';
import { freePort, startSshd, type TestSshd } from '../support/sshd.js';

/** Slack on top of a deadline: one last attempt's teardown, timers, a busy 2-core machine. */
const DEADLINE_SLACK_MS = 1_500;

const servers: TestSshd[] = [];
afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

/** Connect options for a place where no usable SSH server is; the key is never offered. */
function optionsFor(port: number): SshConnectOptions {
  return { label: 'testhost', host: '127.0.0.1', port, user: 'nobody', privateKey: generateKeyPair('t').privateKey };
}

async function failureOf(promise: Promise<SshConnection>): Promise<{ error: TmachineError; elapsedMs: number }> {
  const started = Date.now();
  const outcome = await promise.then(
    (connection) => {
      connection.close();
      return new Error('connected, but should have failed');
    },
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(TmachineError);
  return { error: outcome as TmachineError, elapsedMs: Date.now() - started };
}

/** A TCP server that accepts connections and never says a word (a host whose sshd hangs). */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a closed port', () => {
  it('fails one connection attempt at once with the reason', async () => {
    const port = await freePort();
    const { error, elapsedMs } = await failureOf(SshConnection.connect(optionsFor(port)));
    expect(error.message).toBe(`could not reach testhost at 127.0.0.1:${port} over SSH: connection refused`);
    expect(elapsedMs).toBeLessThan(1_000);
  });

  it('is retried until the deadline, then reported with the last reason', async () => {
    const port = await freePort();
    const { error, elapsedMs } = await failureOf(waitForSsh({ ...optionsFor(port), deadlineMs: 2_000 }));
    expect(error.message).toBe(`testhost (127.0.0.1:${port}) did not answer SSH within 2s: connection refused`);
    expect(elapsedMs).toBeGreaterThanOrEqual(1_800);
    expect(elapsedMs).toBeLessThan(2_000 + DEADLINE_SLACK_MS);
  });
});

describe('a server that accepts TCP but never speaks SSH', () => {
  let silent: { port: number; close: () => Promise<void> } | undefined;
  afterEach(async () => {
    await silent?.close();
    silent = undefined;
  });

  it('fails one connection attempt after its ready timeout', async () => {
    silent = await silentServer();
    const { error, elapsedMs } = await failureOf(SshConnection.connect({ ...optionsFor(silent.port), readyTimeoutMs: 1_000 }));
    expect(error.message).toBe(`could not reach testhost at 127.0.0.1:${silent.port} over SSH: no SSH answer within 1s`);
    expect(elapsedMs).toBeLessThan(1_000 + DEADLINE_SLACK_MS);
  });

  it('gives up at the deadline even though one attempt alone would wait longer', async () => {
    silent = await silentServer();
    const { error, elapsedMs } = await failureOf(
      waitForSsh({ ...optionsFor(silent.port), readyTimeoutMs: 60_000, deadlineMs: 2_500 }),
    );
    expect(error.message).toBe(`testhost (127.0.0.1:${silent.port}) did not answer SSH within 2.5s: no SSH answer`);
    expect(elapsedMs).toBeLessThan(2_500 + DEADLINE_SLACK_MS);
  });
});

describe('a host that is still booting', () => {
  it('connects as soon as sshd comes up', async () => {
    const port = await freePort();
    const clientKey = generateKeyPair('tmachine-test-client');
    const waiting = waitForSsh({
      label: 'testhost',
      host: '127.0.0.1',
      port,
      user: 'tmachine-test',
      privateKey: clientKey.privateKey,
      deadlineMs: 30_000,
    });
    servers.push(await startSshd({ port, clientKey }));
    const connection = await waiting;
    try {
      expect(await connection.run('echo up')).toBe('up\n');
    } finally {
      connection.close();
    }
  });
});
