/** Opens the SSH connection to a machine: its own key, its pinned host key. */
import fs from 'node:fs/promises';
import { TmachineError } from '../errors.js';
import { SshConnection } from '../ssh/connection.js';
import { waitForSsh } from '../ssh/wait.js';
import type { PinnedHostKey } from '../ssh/keys.js';
import type { Store } from '../store/store.js';
import type { MachineRecord } from '../store/machine-record.js';

export interface ConnectOptions {
  /** Keep trying until this deadline (a host that is still booting); default: one attempt. */
  waitMs?: number;
  /** Keys the platform published before first contact (pinned instead of trusting first use). */
  publishedHostKeys?: string[];
  /** Drop the pinned key and pin what the host offers now (after a deliberate rebuild). */
  repinHostKey?: boolean;
}

export async function readMachineKey(store: Store, record: MachineRecord): Promise<Buffer> {
  const keyFile = store.machineFile(record.name, record.ssh.keyPath);
  try {
    return await fs.readFile(keyFile);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new TmachineError(`SSH key of machine "${record.name}" cannot be read: ${keyFile} (${code ?? 'error'})`, {
      hint: code === 'ENOENT' ? 'restore the key file, or remove the machine with `tmachine rm -f` and create it again' : 'check the file permissions',
    });
  }
}

export async function connectMachine(store: Store, record: MachineRecord, options: ConnectOptions = {}): Promise<SshConnection> {
  const privateKey = await readMachineKey(store, record);
  const pinned = options.repinHostKey ? undefined : record.ssh.hostKey;
  const connectOptions = {
    label: record.name,
    host: record.ssh.host,
    port: record.ssh.port,
    user: record.ssh.user,
    privateKey,
    ...(pinned ? { pinnedHostKey: pinned } : {}),
    ...(options.publishedHostKeys?.length ? { publishedHostKeys: options.publishedHostKeys } : {}),
    onNewHostKey: async (pin: PinnedHostKey) => {
      await store.update(record.name, (current) => {
        current.ssh.hostKey = pin;
      });
      record.ssh.hostKey = pin;
    },
  };
  if (options.waitMs) return waitForSsh({ ...connectOptions, deadlineMs: options.waitMs });
  return SshConnection.connect(connectOptions);
}
