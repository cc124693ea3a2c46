import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../../src/ssh/connection.js';
import { SshPool } from '../../src/ssh/pool.js';
import { connectOptionsFor, startSshd, type TestSshd } from '../support/sshd.js';

let sshd: TestSshd;

beforeAll(async () => {
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd?.stop();
});

/** A connect function that counts how often it really connected. */
function countingConnect(label = 'testhost'): { connect: () => Promise<SshConnection>; count: () => number } {
  let connects = 0;
  return {
    connect: async () => {
      connects++;
      return SshConnection.connect(connectOptionsFor(sshd, label));
    },
    count: () => connects,
  };
}

describe('SshPool', () => {
  it('shares one connection between concurrent getters of the same host', async () => {
    const pool = new SshPool();
    const { connect, count } = countingConnect();
    try {
      const connections = await Promise.all(Array.from({ length: 5 }, () => pool.get('m1', connect)));
      expect(new Set(connections).size).toBe(1);
      expect(count()).toBe(1);
      // The host sees a single client connection too: every command reports the same source port.
      const sources = await Promise.all(connections.map((c) => c.run('echo $SSH_CONNECTION')));
      expect(new Set(sources).size).toBe(1);
    } finally {
      await pool.closeAll();
    }
  });

  it('keeps separate connections per host', async () => {
    const pool = new SshPool();
    try {
      const [first, second] = await Promise.all([
        pool.get('m1', countingConnect('m1').connect),
        pool.get('m2', countingConnect('m2').connect),
      ]);
      expect(first).not.toBe(second);
      expect(first?.label).toBe('m1');
      expect(second?.label).toBe('m2');
    } finally {
      await pool.closeAll();
    }
  });

  it('reconnects once the shared connection has closed', async () => {
    const pool = new SshPool();
    const { connect, count } = countingConnect();
    try {
      const first = await pool.get('m1', connect);
      first.close();
      const second = await pool.get('m1', connect);
      expect(second).not.toBe(first);
      expect(count()).toBe(2);
      expect(await second.run('echo back')).toBe('back\n');
    } finally {
      await pool.closeAll();
    }
  });

  it('does not keep a failed connection attempt', async () => {
    const pool = new SshPool();
    const failing = async (): Promise<SshConnection> => {
      throw new Error('host still booting');
    };
    await expect(pool.get('m1', failing)).rejects.toThrow('host still booting');
    const connection = await pool.get('m1', countingConnect().connect);
    expect(await connection.run('echo ok')).toBe('ok\n');
    await pool.closeAll();
  });

  it('closeAll closes every connection, including one still being opened', async () => {
    const pool = new SshPool();
    const open = await pool.get('m1', countingConnect().connect);
    const opening = pool.get('m2', countingConnect().connect);
    await pool.closeAll();
    expect(open.closed).toBe(true);
    expect((await opening).closed).toBe(true);
  });
});
