/**
 * A real OpenSSH server for tests, on 127.0.0.1 and a free port, with throwaway host and
 * client keys in a temp dir. Tests log in as a dedicated user with the client key: root's
 * shell start-up files on this machine (pyenv init) cost half a second per command.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { SshConnectOptions } from '../../src/ssh/connection.js';

const run = promisify(execFile);

const SSHD = '/usr/sbin/sshd';
const TEST_USER = 'tmachine-test';
const STARTUP_DEADLINE_MS = 10_000;

export interface TestSshd {
  host: string;
  port: number;
  user: string;
  clientPrivateKey: string;
  clientKeyPath: string;
  /** Private host key; its public half is hostKeyPath + ".pub". */
  hostKeyPath: string;
  /** What sshd wrote to stderr so far (handy in failure messages). */
  log(): string;
  /** Stops sshd, replaces its host key (a "rebuilt" host) and starts it again on the same port. */
  restartWithNewHostKey(keyType?: 'ed25519' | 'ecdsa'): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Listen here instead of a fresh free port (to test clients that start waiting first). */
  port?: number;
  /** Authorize this client key instead of a fresh one from ssh-keygen. */
  clientKey?: { privateKey: string; publicKey: string };
}

export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tmachine-sshd-'));
  const hostKeyPath = path.join(dir, 'host_ed25519_key');
  const clientKeyPath = path.join(dir, 'client_ed25519_key');
  const authorizedKeysPath = path.join(dir, 'authorized_keys');
  const configPath = path.join(dir, 'sshd_config');
  // sshd refuses to start without its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await ensureTestUser();

  await generateKey(hostKeyPath, 'tmachine-test-host');
  if (options.clientKey) {
    await writeFile(clientKeyPath, options.clientKey.privateKey, { mode: 0o600 });
    await writeFile(`${clientKeyPath}.pub`, `${options.clientKey.publicKey}\n`);
  } else {
    await generateKey(clientKeyPath, 'tmachine-test-client');
  }
  // sshd reads authorized_keys as the login user: the dir must be traversable, the file readable.
  await chmod(dir, 0o755);
  await writeFile(authorizedKeysPath, await readFile(`${clientKeyPath}.pub`), { mode: 0o644 });
  const clientPrivateKey = await readFile(clientKeyPath, 'utf8');

  const port = options.port ?? (await freePort());
  await writeFile(
    configPath,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyPath}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeysPath}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PrintMotd no',
      'PrintLastLog no',
      // Tests open many connections at once; the default (10:30:100) would drop some.
      'MaxStartups 100',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );

  let logText = '';
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const started = spawn(SSHD, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    started.stderr?.setEncoding('utf8');
    started.stderr?.on('data', (text: string) => {
      logText += text;
    });
    await waitForPort(port, started, () => logText);
  };

  const stopProcess = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await exited;
  };

  await start();

  return {
    host: '127.0.0.1',
    port,
    user: TEST_USER,
    clientPrivateKey,
    clientKeyPath,
    hostKeyPath,
    log: () => logText,
    async restartWithNewHostKey(keyType = 'ed25519') {
      await stopProcess();
      await rm(hostKeyPath, { force: true });
      await rm(`${hostKeyPath}.pub`, { force: true });
      await generateKey(hostKeyPath, 'tmachine-test-host-rebuilt', keyType);
      await start();
    },
    async stop() {
      await stopProcess();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Options for SshConnection.connect / waitForSsh that reach this server as the test user. */
export function connectOptionsFor(sshd: TestSshd, label = 'testhost'): SshConnectOptions {
  return {
    label,
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    privateKey: sshd.clientPrivateKey,
    privateKeyPath: sshd.clientKeyPath,
  };
}

/** The "SHA256:..." fingerprint OpenSSH itself reports for a public key file. */
export async function sshKeygenFingerprint(publicKeyPath: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-f', publicKeyPath]);
  const fingerprint = stdout.split(/\s+/)[1];
  if (!fingerprint?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -l output: ${stdout}`);
  return fingerprint;
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

/** Creates the login user once per machine; later runs find it there. */
async function ensureTestUser(): Promise<void> {
  try {
    await run('id', ['-u', TEST_USER]);
    return;
  } catch {
    // not there yet
  }
  try {
    // Password "*" (no password login) rather than useradd's "!": with UsePAM no, sshd treats
    // a "!" password as a locked account and refuses even key logins.
    await run('useradd', ['--create-home', '--shell', '/bin/bash', '--password', '*', TEST_USER]);
  } catch (error) {
    // 9: created meanwhile by a concurrent run.
    if ((error as { code?: number }).code !== 9) throw error;
  }
}

async function generateKey(keyPath: string, comment: string, keyType = 'ed25519'): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', keyType, '-N', '', '-C', comment, '-f', keyPath]);
}

/** Polls a TCP connect until sshd accepts; fails early with sshd's log if it exits instead. */
async function waitForPort(port: number, sshd: ChildProcess, log: () => string): Promise<void> {
  const giveUpAt = Date.now() + STARTUP_DEADLINE_MS;
  let exited = false;
  sshd.once('exit', () => {
    exited = true;
  });
  while (Date.now() < giveUpAt) {
    if (exited) throw new Error(`sshd exited during startup:\n${log()}`);
    if (await accepts(port)) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${STARTUP_DEADLINE_MS} ms:\n${log()}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
