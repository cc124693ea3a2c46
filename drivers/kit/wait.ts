/**
 * Waiting with deadlines: the only sleep/backoff/deadline helpers in tmachine. Drivers wait
 * on conditions (an instance running, a port answering, an operation DONE), never on time.
 */
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { DriverError } from './errors.js';

/** Rejects with a `timeout` DriverError when `ms` pass first (the work itself is not cancelled). */
export function withDeadline<T>(promise: Promise<T>, ms: number, what = 'it'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DriverError('timeout', `${what} did not answer within ${formatSeconds(ms)}`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Pause between two attempts of a retry loop (never a stand-in for waiting on a condition).
 * Ends early, rejecting with an `interrupted` DriverError, when `signal` aborts.
 */
export async function backoff(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (error) {
    if (signal?.aborted) throw interrupted(signal);
    throw error;
  }
}

export interface WaitOptions {
  /** What is awaited, for the timeout message ("instance i-123 running"). */
  what: string;
  deadlineMs: number;
  /** First pause between checks; doubled up to maxIntervalMs. */
  intervalMs?: number;
  maxIntervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls `check` until it returns a value other than undefined, with exponential backoff and
 * an overall deadline. A thrown error ends the wait unless `check` itself catches it.
 */
export async function waitFor<T>(check: () => Promise<T | undefined>, options: WaitOptions): Promise<T> {
  const giveUpAt = Date.now() + options.deadlineMs;
  let pause = options.intervalMs ?? 200;
  for (;;) {
    if (options.signal?.aborted) throw interrupted(options.signal);
    const value = await check();
    if (value !== undefined) return value;
    const left = giveUpAt - Date.now();
    if (left <= 0) throw new DriverError('timeout', `${options.what}: not within ${formatSeconds(options.deadlineMs)}`);
    await backoff(Math.min(pause, left), options.signal);
    pause = Math.min(pause * 2, options.maxIntervalMs ?? 2_000);
  }
}

export interface Reachability {
  ok: boolean;
  reason: string;
}

/** One TCP connection attempt with a bounded time. */
export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<Reachability> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean, reason: string) => {
      socket.destroy();
      resolve({ ok, reason });
    };
    socket.setTimeout(timeoutMs, () => done(false, `no answer within ${formatSeconds(timeoutMs)}`));
    socket.once('connect', () => done(true, 'connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
  });
}

/** Polls until host:port accepts a TCP connection or the deadline passes. */
export function waitForTcp(host: string, port: number, deadlineMs: number, signal?: AbortSignal): Promise<Reachability> {
  return pollReachable((ms) => tcpAnswers(host, port, ms), deadlineMs, 2_000, signal);
}

/** Repeats a bounded probe with backoff until it succeeds or the deadline passes; the last answer. */
async function pollReachable(probe: (timeoutMs: number) => Promise<Reachability>, deadlineMs: number, attemptMs: number, signal?: AbortSignal): Promise<Reachability> {
  const end = Date.now() + deadlineMs;
  let pause = 100;
  let last: Reachability = { ok: false, reason: 'not tried' };
  while (Date.now() < end) {
    if (signal?.aborted) throw interrupted(signal);
    last = await probe(Math.max(200, Math.min(attemptMs, end - Date.now())));
    if (last.ok) return last;
    await backoff(Math.min(pause, Math.max(0, end - Date.now())), signal);
    pause = Math.min(pause * 2, 2_000);
  }
  return last;
}

/** One attempt to read sshd's identification line ("SSH-2.0-..."): proof that sshd itself answers. */
export function sshBanner(host: string, port: number, timeoutMs: number): Promise<Reachability> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let received = '';
    const done = (ok: boolean, reason: string) => {
      socket.destroy();
      resolve({ ok, reason });
    };
    socket.setTimeout(timeoutMs, () => done(false, received ? 'no SSH banner' : `no answer within ${formatSeconds(timeoutMs)}`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (/^SSH-\d\.\d/m.test(received)) done(true, received.split(/\r?\n/)[0] ?? 'SSH');
      else if (received.length > 4096) done(false, 'not an SSH server');
    });
    socket.once('end', () => done(false, 'connection closed before the SSH banner'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
  });
}

/**
 * Waits until sshd on host:port sends its banner. Throws an `unreachable` DriverError naming
 * the machine when the deadline passes (an instance that never answers SSH).
 */
export async function waitForSsh(machine: string, host: string, port: number, deadlineMs: number, signal?: AbortSignal): Promise<void> {
  const last = await pollReachable((ms) => sshBanner(host, port, ms), deadlineMs, 3_000, signal);
  if (last.ok) return;
  throw new DriverError('unreachable', `${machine} (${host}:${port}) did not answer SSH within ${formatSeconds(deadlineMs)}: ${last.reason}`, {
    hint: `check that port ${port} of ${machine} is open to this computer`,
  });
}

export function formatSeconds(ms: number): string {
  return ms >= 1_000 ? `${Math.round(ms / 1_000)}s` : `${ms}ms`;
}

function interrupted(signal: AbortSignal): DriverError {
  const reason: unknown = signal.reason;
  return new DriverError('interrupted', reason instanceof Error ? reason.message : 'interrupted');
}

const chains = new Map<string, Promise<unknown>>();

/** Runs fn after every earlier call with the same key has settled (an in-process mutex). */
export function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = chains.get(key) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(fn);
  chains.set(key, next);
  void next
    .finally(() => {
      if (chains.get(key) === next) chains.delete(key);
    })
    .catch(() => undefined);
  return next;
}
