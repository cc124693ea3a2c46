/**
 * A stand-in backend for the protocol contract tests: no host is started; the instance's
 * address is 127.0.0.1 (this machine), and its host keys are fixed test keys.
 */
import type { BackedHost, GuestSetup, InstanceBackend } from './backend.js';

export const STUB_HOST_KEYS = [
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBJ0bG1hY2hpbmUtdGVzdC1ob3N0LWtleS0wMDAwMDAwMDA= root@stub',
];

export interface StubBackend extends InstanceBackend {
  launched: GuestSetup[];
  removed: string[];
}

export function stubBackend(options: { mtu?: number; bootMs?: number } = {}): StubBackend {
  const launched: GuestSetup[] = [];
  const removed: string[] = [];
  return {
    launched,
    removed,
    mtu: () => options.mtu ?? 1460,
    launch: async (setup) => {
      launched.push(setup);
      if (options.bootMs) await new Promise((resolve) => setTimeout(resolve, options.bootMs));
      const host: BackedHost = {
        ip: '127.0.0.1',
        hostKeys: async () => STUB_HOST_KEYS,
        stop: async () => undefined,
        start: async () => undefined,
        reset: async () => undefined,
        remove: async () => void removed.push(setup.instance),
      };
      return host;
    },
  };
}
