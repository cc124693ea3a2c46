/** The generic driver adopts a host that already exists and answers SSH. */
import type { DriverDefinition } from '../types.js';

export const definition: DriverDefinition = {
  name: 'generic',
  description: 'Adopts an existing host over SSH (creates nothing)',
  defaultEngineInstall: 'bundle',
  flags: [
    { name: 'generic-ip-address', type: 'string', env: 'GENERIC_IP_ADDRESS', aliases: ['generic-address'], description: 'Address of the host (required)' },
    { name: 'generic-private-address', type: 'string', description: 'Address other swarm members reach it on (default: the IP address)' },
    { name: 'generic-ssh-user', type: 'string', default: 'root', env: 'GENERIC_SSH_USER', aliases: ['generic-user'], description: 'SSH user (root, or a user with passwordless sudo)' },
    { name: 'generic-ssh-key', type: 'string', env: 'GENERIC_SSH_KEY', description: 'Private key file (default: ~/.ssh/id_ed25519, then ~/.ssh/id_rsa)' },
    { name: 'generic-ssh-port', type: 'number', default: 22, env: 'GENERIC_SSH_PORT', description: 'SSH port' },
  ],
  load: async () => (await import('./driver.js')).createGenericDriver,
};
