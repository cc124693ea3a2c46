/**
 * The one way tmachine talks to a host: an authenticated SSH connection whose host key was
 * checked against the pin (or the keys the platform published), running commands and moving
 * files over SFTP. Every failure a user can meet becomes one TmachineError line.
 */
import { randomBytes } from 'node:crypto';
import { rename, stat, unlink } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, ServerHostKeyAlgorithm, SFTPWrapper } from 'ssh2';
import { TmachineError } from '../errors.js';
import { debug } from '../ui/log.js';
import { registerSecret } from '../redact.js';
import {
  fingerprintOfPrivateKey,
  hostKeyAlgorithmsFor,
  parsePublicKeyLine,
  pinFromKey,
  type PinnedHostKey,
} from './keys.js';
import type { ExecOptions, ExecResult, RemoteHost, UploadOptions } from './types.js';

const { Client, utils } = ssh2;

export interface SshConnectOptions {
  /** Machine name, used in every message. */
  label: string;
  host: string;
  port: number;
  user: string;
  privateKey: string | Buffer;
  /** Where the private key came from; named when the host refuses it. */
  privateKeyPath?: string;
  /** The key pinned on first contact; any other key stops the connection. */
  pinnedHostKey?: PinnedHostKey;
  /** Called once the first contact succeeded (no pin yet), so the caller can persist the pin. */
  onNewHostKey?: (pin: PinnedHostKey) => Promise<void>;
  /** OpenSSH public-key lines the platform published before first contact; the host must offer one of them. */
  publishedHostKeys?: string[];
  /** TCP connect + SSH handshake + login must finish within this (default 20 s). */
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
}

/** Failure to establish a connection. `transient` failures are worth retrying (host still booting). */
/** A command's session ended without an exit status: the connection or its sshd child went away. */
export class SshSessionLostError extends TmachineError {}

export class SshConnectError extends TmachineError {
  readonly transient: boolean;
  /** The short cause ("connection refused"), for messages that wrap this one. */
  readonly reason: string;

  constructor(message: string, details: { transient: boolean; reason: string; hint?: string; cause?: unknown }) {
    super(message, { hint: details.hint, cause: details.cause });
    this.name = 'SshConnectError';
    this.transient = details.transient;
    this.reason = details.reason;
  }
}

/** Where interactive sessions read and write; the process's own streams unless a test supplies others. */
export interface Terminal {
  input: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  errorOutput: Writable;
}

export interface InteractiveExecOptions {
  /** Allocate a PTY (ssh -t): raw keyboard input, window size forwarded. */
  pty?: boolean;
  terminal?: Terminal;
}

export const DEFAULT_READY_TIMEOUT_MS = 20_000;

let bytesUploaded = 0;
/** Bytes this process sent to hosts as file uploads (SFTP), for --timings and the benchmarks. */
export function uploadedBytes(): number {
  return bytesUploaded;
}
const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
/** Unanswered keepalives before the connection counts as dead (~1 min at the default interval). */
const KEEPALIVE_COUNT_MAX = 4;
/**
 * OpenSSH allows 10 sessions per connection (MaxSessions). Commands queue for one of 8, which
 * leaves room for the SFTP session and an interactive shell on the same connection.
 */
const MAX_CONCURRENT_COMMANDS = 8;
/** Refused session opens retried with no session of ours closing meanwhile: ~3 s in all. */
const SESSION_OPEN_RETRIES = 6;
const SESSION_RETRY_FIRST_DELAY_MS = 50;
const SESSION_RETRY_MAX_DELAY_MS = 1_000;

export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)}s`;
}

function processTerminal(): Terminal {
  return { input: process.stdin, output: process.stdout, errorOutput: process.stderr };
}

/** Exit statuses seen the moment a session opened (see openSession). */
const exitStatuses = new WeakMap<object, { code: number | null; signal: string | undefined }>();

export class SshConnection implements RemoteHost {
  readonly label: string;
  /** The key the host presented, already checked against the pin or published keys. */
  readonly hostKey: PinnedHostKey;
  private readonly client: InstanceType<typeof Client>;
  private readonly commandSlots: LimitFunction = pLimit(MAX_CONCURRENT_COMMANDS);
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private readonly sessionCloseWaiters = new Set<() => void>();
  private isClosed = false;
  private lastError: Error | undefined;

  private constructor(label: string, client: InstanceType<typeof Client>, hostKey: PinnedHostKey) {
    this.label = label;
    this.client = client;
    this.hostKey = hostKey;
    client.on('error', (error: Error) => {
      this.lastError = error;
      debug(`ssh ${label}`, `connection error: ${error.message}`);
    });
    client.on('close', () => {
      this.isClosed = true;
      this.sftpSession = undefined;
    });
  }

  /** True once the connection ended (closed by us, the host, or a dead network). */
  get closed(): boolean {
    return this.isClosed;
  }

  static async connect(options: SshConnectOptions): Promise<SshConnection> {
    const { label } = options;
    const target = formatTarget(options.host, options.port);
    const parsedKey = utils.parseKey(options.privateKey);
    if (parsedKey instanceof Error) {
      throw new TmachineError(`the SSH key for ${label} is not a usable private key: ${parsedKey.message}`);
    }
    const hostKeyCheck = new HostKeyCheck(options);
    const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    const client = new Client();
    const config: ConnectConfig = {
      host: options.host,
      port: options.port,
      username: options.user,
      privateKey: options.privateKey,
      readyTimeout: readyTimeoutMs,
      keepaliveInterval: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      hostVerifier: (key: Buffer) => hostKeyCheck.accepts(key),
      // Never fall back to an agent or keyboard-interactive: a refusal must name this key.
      tryKeyboard: false,
    };
    const hostKeyAlgorithms = hostKeyCheck.algorithmsToOffer();
    if (hostKeyAlgorithms) config.algorithms = { serverHostKey: hostKeyAlgorithms as ServerHostKeyAlgorithm[] };

    const handshake: { onError?: (error: Error) => void; onClose?: () => void } = {};
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        client.end();
        reject(
          describeConnectError(error, { options, target, readyTimeoutMs, hostKeyFailure: hostKeyCheck.failure }),
        );
      };
      client.once('ready', () => {
        settled = true;
        resolve();
      });
      handshake.onError = fail;
      handshake.onClose = () => fail(new Error('Connection lost before handshake'));
      client.on('error', handshake.onError);
      client.on('close', handshake.onClose);
      try {
        client.connect(config);
      } catch (error) {
        fail(error);
      }
    });
    // The connection installs its own listeners for the rest of its life.
    if (handshake.onError) client.off('error', handshake.onError);
    if (handshake.onClose) client.off('close', handshake.onClose);

    const offered = hostKeyCheck.offered;
    if (!offered) {
      client.end();
      throw new TmachineError(`SSH to ${label} (${target}) finished without a host key check`);
    }
    const connection = new SshConnection(label, client, offered);
    if (!options.pinnedHostKey && options.onNewHostKey) {
      // Pinned only after login succeeded: a host we cannot log into is not the machine we meant.
      try {
        await options.onNewHostKey(offered);
      } catch (error) {
        connection.close();
        if (error instanceof TmachineError) throw error;
        throw new TmachineError(`could not record the host key of ${label}: ${errorMessage(error)}`, { cause: error });
      }
    }
    debug(`ssh ${label}`, `connected to ${options.user}@${target}, host key ${offered.fingerprint}`);
    return connection;
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const secrets = options.secrets ?? [];
    for (const secret of secrets) registerSecret(secret);
    debug(`ssh ${this.label}`, `$ ${hideSecrets(command, secrets)}`);
    return this.commandSlots(() => this.execNow(command, options));
  }

  async run(command: string, options: ExecOptions & { what?: string } = {}): Promise<string> {
    const result = await this.exec(command, options);
    if (result.code === 0) return result.stdout;
    const what = options.what ?? commandName(command);
    const lastLine = lastNonEmptyLine(result.stderr) ?? lastNonEmptyLine(result.stdout);
    const status = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    throw new TmachineError(
      `${what} failed on ${this.label} (${status})${lastLine ? `: ${hideSecrets(lastLine, options.secrets ?? [])}` : ''}`,
    );
  }

  async upload(localPath: string, remotePath: string, options: UploadOptions = {}): Promise<void> {
    let total: number;
    let localMode: number;
    try {
      const stats = await stat(localPath);
      total = stats.size;
      localMode = stats.mode & 0o777;
    } catch (error) {
      throw new TmachineError(`cannot read ${localPath} to upload it to ${this.label}: ${errorMessage(error)}`, { cause: error });
    }
    debug(`ssh ${this.label}`, `upload ${localPath} -> ${remotePath} (${total} bytes)`);
    const sftp = await this.sftp();
    let reported = -1;
    const report = (transferred: number): void => {
      reported = transferred;
      options.onProgress?.(transferred, total);
    };
    const mode = options.mode ?? localMode;
    await this.placeAtomically(sftp, remotePath, mode, 'upload to', (tempPath) =>
      sftpCall<void>((done) =>
        sftp.fastPut(localPath, tempPath, { mode, step: (transferred) => report(transferred) }, done),
      ),
    );
    if (reported !== total) report(total);
    bytesUploaded += total;
  }

  async writeFile(remotePath: string, content: string | Buffer, options: UploadOptions = {}): Promise<void> {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    debug(`ssh ${this.label}`, `write ${remotePath} (${data.length} bytes)`);
    const sftp = await this.sftp();
    const mode = options.mode ?? 0o644;
    await this.placeAtomically(sftp, remotePath, mode, 'writing', (tempPath) =>
      sftpCall<void>((done) => sftp.writeFile(tempPath, data, { mode }, done)),
    );
    options.onProgress?.(data.length, data.length);
  }

  async download(remotePath: string, localPath: string): Promise<void> {
    debug(`ssh ${this.label}`, `download ${remotePath} -> ${localPath}`);
    const sftp = await this.sftp();
    // Same pattern as uploads: a reader never sees a half-written local file.
    const tempPath = temporaryNameFor(localPath, path);
    try {
      await sftpCall<void>((done) => sftp.fastGet(remotePath, tempPath, done));
      await rename(tempPath, localPath);
    } catch (error) {
      await unlink(tempPath).catch(() => undefined);
      throw new TmachineError(`download of ${this.label}:${remotePath} failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** `tmachine ssh NAME`: a login shell on a PTY; resolves with the shell's exit code. */
  async interactive(terminal: Terminal = processTerminal()): Promise<number> {
    debug(`ssh ${this.label}`, '$ (interactive shell)');
    const channel = await this.openSession<ClientChannel>('ssh', undefined, (done) =>
      this.client.shell(ptyWindowOf(terminal), done),
    );
    return this.attachTerminal(channel, terminal, true);
  }

  /** `tmachine ssh NAME -- CMD`: streams to the terminal, passes the command's exit code through. */
  async execInteractive(command: string, options: InteractiveExecOptions = {}): Promise<number> {
    const terminal = options.terminal ?? processTerminal();
    debug(`ssh ${this.label}`, `$ ${command}`);
    const channel = await this.openSession<ClientChannel>(command, undefined, (done) =>
      this.client.exec(command, options.pty ? { pty: ptyWindowOf(terminal) } : {}, done),
    );
    return this.attachTerminal(channel, terminal, options.pty === true);
  }

  close(): void {
    this.isClosed = true;
    this.client.end();
  }

  private async execNow(command: string, options: ExecOptions): Promise<ExecResult> {
    const channel = await this.openSession<ClientChannel>(command, options.secrets, (done) =>
      this.client.exec(command, options.pty ? { pty: true } : {}, done),
    );
    return new Promise<ExecResult>((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let exitCode: number | undefined;
      let exitSignal: string | undefined;
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (finish: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        finish();
      };

      if (options.timeoutMs !== undefined) {
        const timeoutMs = options.timeoutMs;
        timer = setTimeout(() => {
          settle(() =>
            reject(
              new TmachineError(`command on ${this.label} timed out after ${formatSeconds(timeoutMs)}`, {
                hint: `it ran \`${shorten(hideSecrets(command, options.secrets ?? []))}\``,
              }),
            ),
          );
          // Closing the channel alone leaves the process running (and its sshd session
          // busy) until it next writes; ask sshd to kill it first.
          requestSignal(channel, 'KILL');
          channel.close();
        }, timeoutMs);
      }
      channel.on('data', (chunk: Buffer) => {
        stdout.push(chunk);
        options.onStdout?.(chunk);
      });
      channel.stderr.on('data', (chunk: Buffer) => {
        stderr.push(chunk);
        options.onStderr?.(chunk);
      });
      const recordExit = (code: number | null, signal?: string): void => {
        if (typeof code === 'number') exitCode = code;
        else exitSignal = signal;
      };
      const early = exitStatuses.get(channel);
      if (early) recordExit(early.code, early.signal);
      channel.on('exit', recordExit);
      // The channel's 'close' waits for stdout's end but not stderr's; wait for both so no
      // output is lost.
      let openStreams = 2;
      const streamDone = (): void => {
        if (--openStreams > 0) return;
        settle(() => {
          if (exitCode === undefined && exitSignal === undefined) {
            reject(this.connectionLost(command, options.secrets));
            return;
          }
          const result: ExecResult = {
            code: exitCode ?? exitCodeOfSignal(exitSignal),
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: Buffer.concat(stderr).toString('utf8'),
          };
          if (exitSignal !== undefined) result.signal = exitSignal;
          resolve(result);
        });
      };
      channel.once('close', streamDone);
      channel.stderr.once('close', streamDone);
      channel.end(options.stdin);
    });
  }

  /**
   * Opens a session channel (command, shell or SFTP). sshd caps sessions per connection
   * (MaxSessions, 10 by default, sometimes fewer) and frees a slot only a moment after a
   * channel closed, so a refused open waits for one of ours to close, or briefly, and retries.
   */
  private async openSession<Session extends ClientChannel | SFTPWrapper>(
    command: string,
    secrets: string[] | undefined,
    open: (done: (error: Error | undefined, session: Session) => void) => void,
  ): Promise<Session> {
    for (let idleRetries = 0; ; ) {
      try {
        const channel = await new Promise<Session>((resolve, reject) =>
          open((error, opened) => {
            if (error) return reject(error);
            // Record the exit status now, synchronously: for a fast command ssh2 may parse the
            // exec reply, output, exit-status and close from one TCP read before the awaiting
            // caller runs, and an 'exit' event nobody listened to is gone.
            if (!('readdir' in opened)) {
              (opened as ClientChannel).on('exit', (code: number | null, signal?: string) => exitStatuses.set(opened, { code, signal }));
            }
            resolve(opened);
          }),
        );
        channel.once('close', () => {
          for (const wake of this.sessionCloseWaiters) wake();
          this.sessionCloseWaiters.clear();
        });
        return channel;
      } catch (error) {
        const refusedForNow = !this.isClosed && /channel open failure/i.test(errorMessage(error));
        if (!refusedForNow || idleRetries >= SESSION_OPEN_RETRIES) throw this.channelError(error, command, secrets);
        const delayMs = Math.min(SESSION_RETRY_FIRST_DELAY_MS * 2 ** idleRetries, SESSION_RETRY_MAX_DELAY_MS);
        // Woken by one of our sessions closing means progress: that retry is free.
        if ((await this.nextSessionClose(delayMs)) === 'timer') idleRetries++;
      }
    }
  }

  private nextSessionClose(maxWaitMs: number): Promise<'closed' | 'timer'> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve('closed');
      };
      const timer = setTimeout(() => {
        this.sessionCloseWaiters.delete(wake);
        resolve('timer');
      }, maxWaitMs);
      this.sessionCloseWaiters.add(wake);
    });
  }

  private attachTerminal(channel: ClientChannel, terminal: Terminal, pty: boolean): Promise<number> {
    const { input, output, errorOutput } = terminal;
    const rawMode = pty && input.isTTY === true && typeof input.setRawMode === 'function';
    if (rawMode) input.setRawMode?.(true);
    const onResize = (): void => channel.setWindow(output.rows ?? 24, output.columns ?? 80, 0, 0);
    if (pty) output.on('resize', onResize);
    input.pipe(channel);
    channel.pipe(output, { end: false });
    channel.stderr.pipe(errorOutput, { end: false });

    return new Promise<number>((resolve, reject) => {
      let exitCode: number | undefined;
      const recordExit = (code: number | null, signal?: string): void => {
        exitCode = typeof code === 'number' ? code : exitCodeOfSignal(signal);
      };
      const early = exitStatuses.get(channel);
      if (early) recordExit(early.code, early.signal);
      channel.on('exit', recordExit);
      channel.once('close', () => {
        input.unpipe(channel);
        // A paused stdin no longer keeps the process alive once the session is over.
        input.pause();
        if (rawMode) input.setRawMode?.(false);
        output.off('resize', onResize);
        if (exitCode === undefined) reject(this.connectionLost('ssh'));
        else resolve(exitCode);
      });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    if (!this.sftpSession) {
      const session = this.openSession<SFTPWrapper>('sftp', undefined, (done) => this.client.sftp(done));
      this.sftpSession = session;
      session.then(
        (sftp) =>
          sftp.once('close', () => {
            if (this.sftpSession === session) this.sftpSession = undefined;
          }),
        // A failed open is not cached: the next transfer tries again.
        () => {
          if (this.sftpSession === session) this.sftpSession = undefined;
        },
      );
    }
    return this.sftpSession;
  }

  /** Writes to a hidden temporary name next to remotePath, sets the mode, then renames over it. */
  private async placeAtomically(
    sftp: SFTPWrapper,
    remotePath: string,
    mode: number,
    verb: string,
    write: (tempPath: string) => Promise<void>,
  ): Promise<void> {
    const tempPath = temporaryNameFor(remotePath, path.posix);
    try {
      // write() creates the file with the target mode already, so secrets are never readable
      // by others, not even for a moment; the remote umask can only take bits away.
      await write(tempPath);
      // Set explicitly: the mode given at open is filtered through the remote umask.
      await sftpCall<void>((done) => sftp.chmod(tempPath, mode, done));
      await renameOver(sftp, tempPath, remotePath);
    } catch (error) {
      await sftpCall<void>((done) => sftp.unlink(tempPath, done)).catch(() => undefined);
      throw new TmachineError(`${verb} ${this.label}:${remotePath} failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  private connectionLost(command: string, secrets: string[] = []): TmachineError {
    const reason = this.lastError ? `: ${this.lastError.message}` : '';
    return new SshSessionLostError(
      `the SSH connection to ${this.label} was lost while running ${commandName(hideSecrets(command, secrets))}${reason}`,
    );
  }

  private channelError(error: unknown, command: string, secrets: string[] = []): TmachineError {
    if (this.isClosed) return this.connectionLost(command, secrets);
    return new TmachineError(`could not start ${commandName(hideSecrets(command, secrets))} on ${this.label}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** Decides whether the key a host offers is the one we expect; remembers why it said no. */
class HostKeyCheck {
  offered: PinnedHostKey | undefined;
  failure: SshConnectError | undefined;
  private readonly published: PinnedHostKey[] | undefined;

  constructor(private readonly options: SshConnectOptions) {
    this.published = options.publishedHostKeys?.map((line) => parsePublicKeyLine(line));
    if (this.published && this.published.length === 0 && !options.pinnedHostKey) {
      throw new TmachineError(`no published host keys given for ${options.label}`);
    }
  }

  /** Restrict key exchange to the expected key types, so the host shows the key we can check. */
  algorithmsToOffer(): string[] | undefined {
    const expected = this.options.pinnedHostKey ? [this.options.pinnedHostKey] : this.published;
    if (!expected) return undefined;
    return [...new Set(expected.flatMap((key) => hostKeyAlgorithmsFor(key.algorithm)))];
  }

  accepts(wireKey: Buffer): boolean {
    const offered = pinFromKey(wireKey);
    const { label, host, port, pinnedHostKey } = this.options;
    const target = formatTarget(host, port);
    if (pinnedHostKey) {
      if (offered.key === pinnedHostKey.key) return this.accept(offered);
      return this.reject(
        `host key of machine ${label} (${target}) changed: pinned ${pinnedHostKey.fingerprint}, offered ${offered.fingerprint}`,
        `if ${label} was really rebuilt, run \`tmachine ssh ${label} --repin-host-key\` to trust its new key; otherwise something is intercepting the connection`,
      );
    }
    if (this.published) {
      if (this.published.some((key) => key.key === offered.key)) return this.accept(offered);
      return this.reject(
        `host key of machine ${label} (${target}) is not one the platform published: offered ${offered.fingerprint}, published ${this.published.map((key) => key.fingerprint).join(', ')}`,
        `the address may now belong to another machine or something is intercepting the connection; check the machine's address and console output`,
      );
    }
    return this.accept(offered);
  }

  private accept(offered: PinnedHostKey): boolean {
    this.offered = offered;
    return true;
  }

  private reject(message: string, hint: string): boolean {
    this.failure = new SshConnectError(message, { transient: false, reason: 'host key mismatch', hint });
    return false;
  }
}

interface ConnectContext {
  options: SshConnectOptions;
  target: string;
  readyTimeoutMs: number;
  hostKeyFailure: SshConnectError | undefined;
}

/** Network-level causes, as words a user understands, and whether a later attempt may succeed. */
const NETWORK_ERRORS: Record<string, { reason: string; transient: boolean }> = {
  ECONNREFUSED: { reason: 'connection refused', transient: true },
  ECONNRESET: { reason: 'connection reset', transient: true },
  ECONNABORTED: { reason: 'connection aborted', transient: true },
  EPIPE: { reason: 'connection closed', transient: true },
  ETIMEDOUT: { reason: 'connection timed out', transient: true },
  EHOSTUNREACH: { reason: 'host unreachable', transient: true },
  EHOSTDOWN: { reason: 'host is down', transient: true },
  ENETUNREACH: { reason: 'network unreachable', transient: true },
  EAI_AGAIN: { reason: 'host name lookup failed for now', transient: true },
  ENOTFOUND: { reason: 'unknown host name', transient: false },
};

function describeConnectError(error: unknown, context: ConnectContext): TmachineError {
  const { options, target, readyTimeoutMs } = context;
  if (context.hostKeyFailure) return context.hostKeyFailure;
  if (error instanceof TmachineError) return error;
  /** ssh2 tags its errors with a level; socket errors carry the errno code. */
  const err: Error & { level?: string; code?: string } = error instanceof Error ? error : new Error(String(error));

  if (err.level === 'client-authentication') {
    const fingerprint = fingerprintOfPrivateKey(options.privateKey);
    const keyName = [fingerprint, options.privateKeyPath && `(${options.privateKeyPath})`].filter(Boolean).join(' ');
    return new SshConnectError(`SSH key ${keyName} was refused by ${options.user}@${target}`, {
      transient: false,
      reason: 'key refused',
      hint: `check that its public key is in ~${options.user}/.ssh/authorized_keys on ${options.label} and that ${options.user} is the right user`,
      cause: err,
    });
  }

  const unreachable = (reason: string, transient: boolean, detail = ''): SshConnectError =>
    new SshConnectError(`could not reach ${options.label} at ${target} over SSH: ${reason}${detail}`, {
      transient,
      reason,
      hint: `check that ${options.label} is running and that port ${options.port} is open to this computer`,
      cause: err,
    });

  if (err.level === 'client-timeout') return unreachable('no SSH answer', true, ` within ${formatSeconds(readyTimeoutMs)}`);
  const network = err.code ? NETWORK_ERRORS[err.code] : undefined;
  if (network) return unreachable(network.reason, network.transient);
  if (/Connection lost before handshake/i.test(err.message)) {
    // sshd still starting up, or refusing new connections for now (MaxStartups).
    return unreachable('connection closed before the SSH handshake', true);
  }
  if (options.pinnedHostKey && /host key/i.test(err.message)) {
    return new SshConnectError(
      `host key of machine ${options.label} (${target}) changed: pinned ${options.pinnedHostKey.fingerprint} (${options.pinnedHostKey.algorithm}), the host no longer offers a key of that type`,
      {
        transient: false,
        reason: 'host key mismatch',
        hint: `if ${options.label} was really rebuilt, run \`tmachine ssh ${options.label} --repin-host-key\` to trust its new key`,
        cause: err,
      },
    );
  }
  return unreachable(err.message, false);
}

/** The parts of ssh2's channel internals that requestSignal needs. */
interface ChannelInternals {
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (channelId: number, signalName: string) => void } };
}

/**
 * Sends a "signal" channel request (RFC 4254 §6.9). ssh2's channel.signal() sends nothing once
 * our side sent EOF, and exec sends EOF right after the command starts (stdin is closed), so
 * the request goes straight to the protocol. Best effort: OpenSSH (9.x) refuses it for root
 * logins, and it cannot reach processes started under sudo.
 */
function requestSignal(channel: ClientChannel, signalName: string): void {
  const internals = channel as unknown as ChannelInternals;
  const channelId = internals.outgoing?.id;
  const state = internals.outgoing?.state;
  if (channelId === undefined || (state !== 'open' && state !== 'eof')) return;
  try {
    internals._client?._protocol?.signal?.(channelId, signalName);
  } catch {
    // The connection is going away; nothing left to stop.
  }
}

function temporaryNameFor(targetPath: string, paths: typeof path.posix): string {
  const suffix = randomBytes(6).toString('hex');
  return paths.join(paths.dirname(targetPath), `.${paths.basename(targetPath)}.tmachine-tmp-${suffix}`);
}

/** Atomic replace where the server offers it (OpenSSH's posix-rename); plain SFTP rename refuses to overwrite. */
async function renameOver(sftp: SFTPWrapper, fromPath: string, toPath: string): Promise<void> {
  try {
    await sftpCall<void>((done) => sftp.ext_openssh_rename(fromPath, toPath, done));
    return;
  } catch (error) {
    if (!/does not support/i.test(errorMessage(error))) throw error;
  }
  await sftpCall<void>((done) => sftp.unlink(toPath, done)).catch(() => undefined);
  await sftpCall<void>((done) => sftp.rename(fromPath, toPath, done));
}

/** Promise wrapper for ssh2's callback API; a synchronous throw (unsupported extension) rejects too. */
function sftpCall<T>(start: (done: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      start((error, value) => (error ? reject(error) : resolve(value as T)));
    } catch (error) {
      reject(error);
    }
  });
}

function ptyWindowOf(terminal: Terminal): { term: string; cols: number; rows: number; width: number; height: number } {
  return {
    term: process.env['TERM'] || 'xterm-256color',
    cols: terminal.output.columns ?? 80,
    rows: terminal.output.rows ?? 24,
    width: 0,
    height: 0,
  };
}

/** The shell's convention for a process killed by a signal ("SIGTERM", as ssh2 names it): 128 + its number. */
function exitCodeOfSignal(signal: string | undefined): number {
  const number = signal ? osConstants.signals[signal as keyof typeof osConstants.signals] : undefined;
  return number === undefined ? 255 : 128 + number;
}

/** "sudo FOO=1 docker swarm join ..." -> "docker": the word a user recognises the command by. */
function commandName(command: string): string {
  const words = command.trim().split(/\s+/);
  const name = words.find((word) => word !== 'sudo' && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word));
  return name ?? (words[0] || 'command');
}

function lastNonEmptyLine(text: string): string | undefined {
  const lines = text.split('\n').map((line) => line.trim());
  return lines.reverse().find((line) => line.length > 0);
}

function hideSecrets(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) if (secret) out = out.split(secret).join('***');
  return out;
}

function shorten(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
