/**
 * The generic driver: the host exists already; tmachine only reaches it. It makes no
 * resource, so its undo log stays empty and `rm` only forgets the machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { DriverError, tcpAnswers, waitForSsh, type Driver, type DriverContext, type DriverImplementation, type HostState } from '../kit/index.js';
import type { GenericOptions, GenericState } from './definition.js';

export const implementation: DriverImplementation<GenericOptions, GenericState> = { open: openGenericDriver };

export function openGenericDriver(context: DriverContext<GenericOptions, GenericState>): Driver {
  const { options, state } = context;
  const address = options['generic-ip-address'] ?? '';
  const port = options['generic-ssh-port'];
  const user = options['generic-ssh-user'];

  const keyPath = (): string => {
    const given = options['generic-ssh-key'];
    if (given) return path.resolve(given.replace(/^~(?=\/)/, os.homedir()));
    const candidates = ['id_ed25519', 'id_rsa'].map((f) => path.join(os.homedir(), '.ssh', f));
    return candidates.find((f) => fs.existsSync(f)) ?? candidates[0]!;
  };

  const unsupported = (what: string) =>
    new DriverError('unsupported', `the generic driver cannot ${what} a host`, { hint: 'do it on the host itself; tmachine only reaches it over SSH' });

  return {
    async preCreateCheck() {
      if (!address) throw new DriverError('invalid-input', '--generic-ip-address is required', { hint: 'give the address of the host to adopt' });
      const key = keyPath();
      if (!fs.existsSync(key)) {
        throw new DriverError('invalid-input', `SSH key ${key} does not exist`, { hint: 'pass --generic-ssh-key with the key that logs in to the host' });
      }
      checkPrivateKey(key);
    },
    async create() {
      // Nothing to make; the key is recorded so later commands reach the host.
      state.sshKeyPath = keyPath();
      await context.saveState();
      await waitForSsh(context.machineName, address, port, 10_000, context.signal).catch((error: unknown) => {
        throw new DriverError('unreachable', `could not reach ${address}:${port} over SSH: ${error instanceof DriverError ? error.message.split(': ').pop() : String(error)}`, {
          hint: 'check the address, the port and that sshd runs there',
        });
      });
    },
    async removeResource() {
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
      return { public: address, private: options['generic-private-address'] ?? address };
    },
    async sshTarget() {
      return { host: address, port, user, privateKeyPath: state.sshKeyPath ?? keyPath() };
    },
  };
}

/** The key file must be an unencrypted private key tmachine can use, checked before any host is contacted. */
function checkPrivateKey(file: string): void {
  let content: Buffer;
  try {
    if (!fs.statSync(file).isFile()) throw new Error('not a file');
    content = fs.readFileSync(file);
  } catch (error) {
    throw new DriverError('invalid-input', `SSH key ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, {
      hint: 'pass --generic-ssh-key with a readable private key file',
    });
  }
  const parsed = ssh2.utils.parseKey(content);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || key === undefined) {
    const encrypted = key instanceof Error && /encrypted|passphrase/i.test(key.message);
    throw new DriverError('invalid-input', encrypted ? `SSH key ${file} is protected by a passphrase` : `SSH key ${file} is not a private key tmachine can read`, {
      hint: encrypted ? 'give a key without a passphrase (tmachine runs unattended), e.g. one made with `ssh-keygen -t ed25519 -N ""`' : 'give an OpenSSH, PEM or PKCS#8 private key file',
    });
  }
  if (!key.isPrivateKey()) {
    throw new DriverError('invalid-input', `SSH key ${file} is a public key`, { hint: 'give the private half (the file without .pub)' });
  }
}
