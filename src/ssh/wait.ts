/**
 * Waiting for a host that is still booting: sshd is not listening yet, or listening but not
 * ready to talk. Only such transient failures are retried; a refused key or a wrong host key
 * will not fix itself and fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TmachineError } from '../errors.js';
import {
  DEFAULT_READY_TIMEOUT_MS,
  SshConnectError,
  SshConnection,
  formatSeconds,
  formatTarget,
  type SshConnectOptions,
} from './connection.js';

export interface WaitForSshOptions extends SshConnectOptions {
  /** How long to keep trying, in milliseconds from now. */
  deadlineMs: number;
}

const FIRST_RETRY_DELAY_MS = 250;
const MAX_RETRY_DELAY_MS = 2_000;
/** Below this much time left an attempt could only time out, and would hide the real reason. */
const MIN_ATTEMPT_MS = 100;

export async function waitForSsh(options: WaitForSshOptions): Promise<SshConnection> {
  const { deadlineMs, ...connectOptions } = options;
  const giveUpAt = Date.now() + deadlineMs;
  let retryDelayMs = FIRST_RETRY_DELAY_MS;
  let lastReason = '';

  for (let attempt = 1; ; attempt++) {
    const remaining = giveUpAt - Date.now();
    if (attempt > 1 && remaining < MIN_ATTEMPT_MS) break;
    // Each attempt ends by the deadline at the latest, however long a single attempt may take.
    const readyTimeoutMs = Math.min(connectOptions.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS, Math.max(remaining, 1));
    try {
      return await SshConnection.connect({ ...connectOptions, readyTimeoutMs });
    } catch (error) {
      if (!(error instanceof SshConnectError) || !error.transient) throw error;
      lastReason = error.reason;
    }
    const left = giveUpAt - Date.now();
    if (left < MIN_ATTEMPT_MS) break;
    // Leave room for one last real attempt rather than sleeping up to the deadline.
    await sleep(Math.min(retryDelayMs, left - MIN_ATTEMPT_MS));
    retryDelayMs = Math.min(retryDelayMs * 2, MAX_RETRY_DELAY_MS);
  }

  const target = formatTarget(options.host, options.port);
  throw new TmachineError(`${options.label} (${target}) did not answer SSH within ${formatSeconds(deadlineMs)}: ${lastReason}`, {
    hint: `check that ${options.label} is running and that port ${options.port} is open to this computer`,
  });
}
