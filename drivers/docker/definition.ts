/** The docker driver's name and flags; the implementation loads only when used. */
import type { DriverDefinition } from '../types.js';

export const DEFAULT_HOST_IMAGE = 'tmachine/host:bookworm';
export const DEFAULT_NETWORK = 'tmachine';

export const definition: DriverDefinition = {
  name: 'docker',
  description: 'Hosts are containers running systemd and sshd on the local Docker engine (the local lab)',
  defaultEngineInstall: 'bundle',
  flags: [
    { name: 'docker-host', type: 'string', env: 'TMACHINE_DOCKER_HOST', description: 'Engine that runs the host containers (unix:// or tcp://); default: $DOCKER_HOST, the local socket, or one tmachine starts' },
    { name: 'docker-image', type: 'string', default: DEFAULT_HOST_IMAGE, env: 'TMACHINE_DOCKER_IMAGE', description: 'Host image (systemd + sshd, no engine); built from Debian packages when missing' },
    { name: 'docker-network', type: 'string', default: DEFAULT_NETWORK, env: 'TMACHINE_DOCKER_NETWORK', description: 'User-defined network the hosts share (created when missing)' },
    { name: 'docker-subnet', type: 'string', description: 'Subnet for a network tmachine creates (default: chosen by Docker)' },
    { name: 'docker-ip', type: 'string', description: 'Fixed address on the network (default: the next free one)' },
    { name: 'docker-privileged', type: 'string', default: 'auto', description: 'auto: try --privileged, fall back to an explicit capability list; always; never' },
    { name: 'docker-start-engine', type: 'boolean', default: true, description: 'Start a local dockerd (root only) when no engine answers' },
  ],
  load: async () => (await import('./driver.js')).createDockerDriver,
};
