/**
 * One SSH connection per host, shared by every step that talks to it: steps running in
 * parallel on the same host must not each open their own connection (sshd's MaxStartups,
 * and a second host-key check that could race the first contact's pin).
 */
import type { SshConnection } from './connection.js';

interface PoolEntry {
  connecting: Promise<SshConnection>;
  /** Set once connected; a closed connection means the next get() reconnects. */
  connection?: SshConnection;
}

export class SshPool {
  private readonly entries = new Map<string, PoolEntry>();

  /** The shared connection for key; concurrent callers share one connection attempt. */
  get(key: string, connect: () => Promise<SshConnection>): Promise<SshConnection> {
    const existing = this.entries.get(key);
    if (existing && !existing.connection?.closed) return existing.connecting;

    const entry: PoolEntry = { connecting: connect() };
    this.entries.set(key, entry);
    entry.connecting.then(
      (connection) => {
        entry.connection = connection;
      },
      () => {
        // A failed attempt is not cached: the next get() tries again.
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.connecting;
  }

  /** Closes every connection, including ones still being opened. */
  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(entries.map(async (entry) => (await entry.connecting).close()));
  }
}
