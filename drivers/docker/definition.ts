/** The docker driver's name, flags and schemas; the implementation loads only when used. */
import { defineDriver, z } from '../kit/index.js';

export const DEFAULT_HOST_IMAGE = 'tmachine/host:bookworm';
export const DEFAULT_NETWORK = 'tmachine';

const optionalString = z.string().optional().transform((v) => (v === '' ? undefined : v));
const ipv4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

export const dockerOptionsSchema = z.object({
  'docker-host': optionalString,
  'docker-image': z.string().min(1).default(DEFAULT_HOST_IMAGE),
  'docker-network': z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a docker network name (letters, digits, "_", ".", "-")').default(DEFAULT_NETWORK),
  'docker-subnet': optionalString.refine((v) => v === undefined || /^\d+\.\d+\.\d+\.\d+\/\d{1,2}$/.test(v), 'an IPv4 CIDR such as 10.77.0.0/24'),
  'docker-ip': optionalString.refine((v) => v === undefined || ipv4.test(v), 'an IPv4 address'),
  'docker-privileged': z.enum(['auto', 'always', 'never'], { error: 'auto, always or never' }).default('auto'),
  'docker-start-engine': z.boolean().default(true),
  'docker-network-internal': z.boolean().default(false),
});
export type DockerOptions = z.infer<typeof dockerOptionsSchema>;

export const dockerStateSchema = z.object({
  endpoint: z.string().optional(),
  containerId: z.string().optional(),
  volume: z.string().optional(),
  network: z.string().optional(),
  ip: z.string().optional(),
});
export type DockerState = z.infer<typeof dockerStateSchema>;

export const definition = defineDriver<DockerOptions, DockerState>({
  name: 'docker',
  description: 'Hosts are containers running systemd and sshd on the local Docker engine (the local lab)',
  defaultEngineInstall: 'bundle',
  flags: [
    { name: 'docker-host', type: 'string', env: 'TMACHINE_DOCKER_HOST', description: 'Engine that runs the host containers (unix:// or tcp://); default: $DOCKER_HOST, the local socket, or one tmachine starts' },
    { name: 'docker-image', type: 'string', default: DEFAULT_HOST_IMAGE, env: 'TMACHINE_DOCKER_IMAGE', description: `Host image (systemd + sshd, no engine); only the default ${DEFAULT_HOST_IMAGE} is built when missing` },
    { name: 'docker-network', type: 'string', default: DEFAULT_NETWORK, env: 'TMACHINE_DOCKER_NETWORK', description: 'User-defined network the hosts share (created when missing)' },
    { name: 'docker-subnet', type: 'string', env: 'TMACHINE_DOCKER_SUBNET', description: "Subnet for a network tmachine creates (default: the first free 10.77-96.0.0/24 in this machine's routing table)" },
    { name: 'docker-network-internal', type: 'boolean', default: false, env: 'TMACHINE_DOCKER_NETWORK_INTERNAL', description: 'Create the network with no route out (docker network create --internal): hosts reach each other and this machine, never the internet' },
    { name: 'docker-ip', type: 'string', description: 'Fixed address on the network (default: the next free one)' },
    { name: 'docker-privileged', type: 'string', default: 'auto', description: 'auto: try --privileged, fall back to an explicit capability list; always; never' },
    { name: 'docker-start-engine', type: 'boolean', default: true, description: 'Start a local dockerd (root only) when no engine answers' },
  ],
  optionsSchema: dockerOptionsSchema,
  stateSchema: dockerStateSchema,
  detect: async () => (await import('./detect.js')).detectLocalEngine(),
  capacity: async () => (await import('./detect.js')).hostCapacity(),
  load: async () => (await import('./driver.js')).implementation,
});
