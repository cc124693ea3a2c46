/**
 * The engine (and machine) of one member, driven the way an operator would: the engine
 * through its init system over SSH, the machine through its driver. Used by the ordered
 * shutdown and start and by the rolling upgrade.
 */
import { withDeadline } from '../../async.js';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import { driverOf } from '../../machine/driver-instance.js';
import { backoff } from '../../net.js';
import type { MachineRecord } from '../../store/machine-record.js';
import type { Store } from '../../store/store.js';
import { shellQuote } from '../../../provision/os.js';
import { swarmInfo, type Member, type SwarmInfo } from '../engines.js';

/** Root through `sudo -n` unless the login user is root (never a password prompt). */
const AS_ROOT = (script: string) => `if [ "$(id -u)" = 0 ]; then sh -c ${shellQuote(script)}; else sudo -n sh -c ${shellQuote(script)}; fi`;

// docker.socket (package installs) would start the engine again on the next API call.
const STOP_ENGINE = 'if command -v systemctl >/dev/null 2>&1; then systemctl stop docker.socket 2>/dev/null; systemctl stop docker.service; else rc-service docker stop; fi';
const START_ENGINE = 'if command -v systemctl >/dev/null 2>&1; then systemctl start docker.service; else rc-service docker start; fi';

async function onHost(store: Store, record: MachineRecord, script: string, what: string, waitMs?: number): Promise<void> {
  const conn = await connectMachine(store, record, waitMs ? { waitMs } : {});
  try {
    await conn.run(AS_ROOT(script), { what });
  } finally {
    conn.close();
  }
}

/** The member's swarm view when its engine answers within `ms`, else undefined. */
export async function engineAnswers(member: Member, ms = 5_000): Promise<SwarmInfo | undefined> {
  return withDeadline(swarmInfo(member.docker), ms).catch(() => undefined);
}

export async function stopEngine(store: Store, record: MachineRecord): Promise<void> {
  await onHost(store, record, STOP_ENGINE, 'stopping the engine');
}

export async function startEngine(store: Store, record: MachineRecord, waitMs = 120_000): Promise<void> {
  await onHost(store, record, START_ENGINE, 'starting the engine', waitMs);
}

export async function stopMachine(store: Store, record: MachineRecord): Promise<void> {
  const driver = await driverOf(store, record);
  if ((await driver.state()) !== 'stopped') await driver.stop();
}

export async function startMachine(store: Store, record: MachineRecord): Promise<void> {
  const driver = await driverOf(store, record);
  if ((await driver.state()) !== 'running') await driver.start();
}

/** Polls `check` until it returns a value or the deadline passes; `what` names it in the failure. */
export async function pollUntil<T>(what: string, check: () => Promise<T | undefined>, deadlineMs: number, signal?: AbortSignal): Promise<T> {
  const end = Date.now() + deadlineMs;
  let delay = 250;
  while (Date.now() < end) {
    if (signal?.aborted) throw new TmachineError(`interrupted while waiting for ${what}`);
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await backoff(delay);
    delay = Math.min(delay * 2, 2_000);
  }
  throw new TmachineError(`${what} did not happen within ${Math.round(deadlineMs / 1000)}s`);
}
