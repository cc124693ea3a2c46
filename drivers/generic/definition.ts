/** The generic driver adopts a host that already exists and answers SSH. */
import { isIP } from 'node:net';
import { defineDriver, z } from '../kit/index.js';

/** An IPv4/IPv6 address, or a DNS name (RFC 1123 labels); "999.1.1.1" is neither. */
function isHostAddress(value: string): boolean {
  if (isIP(value)) return true;
  if (/^[\d.]+$/.test(value)) return false; // all digits and dots but not an IPv4 address
  return value.length <= 253 && value.split('.').every((label) => /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(label));
}

const address = z.string().refine(isHostAddress, 'not an IP address or host name');

export const genericOptionsSchema = z.object({
  'generic-ip-address': address.optional(),
  'generic-private-address': address.optional(),
  'generic-ssh-user': z.string().regex(/^[a-z_][a-z0-9_.-]*$/i, 'not a user name').default('root'),
  'generic-ssh-key': z.string().optional(),
  'generic-ssh-port': z.number().int('a whole number').min(1, 'a port from 1 to 65535').max(65535, 'a port from 1 to 65535').default(22),
});
export type GenericOptions = z.infer<typeof genericOptionsSchema>;

export const genericStateSchema = z.object({ sshKeyPath: z.string().optional() });
export type GenericState = z.infer<typeof genericStateSchema>;

export const definition = defineDriver<GenericOptions, GenericState>({
  name: 'generic',
  description: 'Adopts an existing host over SSH (creates nothing)',
  defaultEngineInstall: 'bundle',
  flags: [
    { name: 'generic-ip-address', type: 'string', env: 'GENERIC_IP_ADDRESS', aliases: ['generic-address'], description: 'Address of the host (required)' },
    { name: 'generic-private-address', type: 'string', description: 'Address other swarm members reach it on (default: the IP address)' },
    { name: 'generic-ssh-user', type: 'string', default: 'root', env: 'GENERIC_SSH_USER', aliases: ['generic-user'], description: 'SSH user (root, or a user with passwordless sudo)' },
    { name: 'generic-ssh-key', type: 'string', env: 'GENERIC_SSH_KEY', description: 'Private key file (default: ~/.ssh/id_ed25519, then ~/.ssh/id_rsa)' },
    { name: 'generic-ssh-port', type: 'number', default: 22, env: 'GENERIC_SSH_PORT', description: 'SSH port (1-65535)' },
  ],
  optionsSchema: genericOptionsSchema,
  stateSchema: genericStateSchema,
  load: async () => (await import('./driver.js')).implementation,
});
