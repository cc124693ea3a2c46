/** The generic driver: the host exists already; tmachine only reaches it. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TmachineError } from '../../src/errors.js';
import { tcpAnswers } from '../../src/net.js';
import type { Driver, DriverContext, HostState } from '../types.js';

export function createGenericDriver(context: DriverContext): Driver {
  const address = String(context.options['generic-ip-address'] ?? '');
  const port = Number(context.options['generic-ssh-port'] ?? 22);
  const user = String(context.options['generic-ssh-user'] ?? 'root');

  const keyPath = (): string => {
    const given = context.options['generic-ssh-key'];
    if (typeof given === 'string' && given) return path.resolve(given.replace(/^~(?=\/)/, os.homedir()));
    const candidates = ['id_ed25519', 'id_rsa'].map((f) => path.join(os.homedir(), '.ssh', f));
    return candidates.find((f) => fs.existsSync(f)) ?? candidates[0]!;
  };

  const unsupported = (what: string) =>
    new TmachineError(`the generic driver cannot ${what} a host`, { hint: 'do it on the host itself; tmachine only reaches it over SSH' });

  return {
    async preCreateCheck() {
      if (!address) throw new TmachineError('--generic-ip-address is required', { hint: 'give the address of the host to adopt' });
      const key = keyPath();
      if (!fs.existsSync(key)) {
        throw new TmachineError(`SSH key ${key} does not exist`, { hint: 'pass --generic-ssh-key with the key that logs in to the host' });
      }
    },
    async create() {
      // Nothing to make; the key is recorded so later commands reach the host.
      context.state['sshKeyPath'] = keyPath();
      await context.saveState();
      const reachable = await tcpAnswers(address, port, 10_000);
      if (!reachable.ok) {
        throw new TmachineError(`could not reach ${address}:${port} over SSH: ${reachable.reason}`, {
          hint: 'check the address, the port and that sshd runs there',
        });
      }
    },
    async remove() {
      // The host is the user's: removing the machine only forgets it.
    },
    start: async () => {
      throw unsupported('start');
    },
    stop: async () => {
      throw unsupported('stop');
    },
    restart: async () => {
      throw unsupported('restart');
    },
    kill: async () => {
      throw unsupported('kill');
    },
    async state(): Promise<HostState> {
      return (await tcpAnswers(address, port, 5_000)).ok ? 'running' : 'error';
    },
    async addresses() {
      const priv = context.options['generic-private-address'];
      return { public: address, private: typeof priv === 'string' && priv ? priv : address };
    },
    async sshTarget() {
      return { host: address, port, user, privateKeyPath: String(context.state['sshKeyPath'] ?? keyPath()) };
    },
  };
}
