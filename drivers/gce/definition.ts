/**
 * The gce driver's names, flags and schemas (cheap: no SDK is imported here). Flags are
 * `gce-*`; Docker Machine's `google-*` spellings and its environment variables work too.
 */
import { defineDriver, z, type DriverFlag } from '../kit/index.js';

export const DEFAULT_ZONE = 'us-central1-a';
export const DEFAULT_MACHINE_TYPE = 'e2-medium';
export const DEFAULT_IMAGE = 'projects/debian-cloud/global/images/family/debian-12';
export const DEFAULT_USER = 'docker-user';
/** Docker Machine's default scopes for the VM's service account. */
export const DEFAULT_SCOPES = [
  'https://www.googleapis.com/auth/devstorage.read_only',
  'https://www.googleapis.com/auth/logging.write',
  'https://www.googleapis.com/auth/monitoring.write',
];

/** Docker Machine's flag name for one of ours: `gce-zone` → `google-zone`. */
const google = (name: string) => `google-${name}`;

const flags: DriverFlag[] = [
  { name: 'gce-project', type: 'string', env: 'GOOGLE_PROJECT', aliases: [google('project')], description: 'Project ID (default: $GOOGLE_CLOUD_PROJECT, then the Application Default Credentials)' },
  { name: 'gce-zone', type: 'string', default: DEFAULT_ZONE, env: 'GOOGLE_ZONE', aliases: [google('zone')], description: 'Zone of the instance' },
  { name: 'gce-zones', type: 'string[]', env: 'GOOGLE_ZONES', aliases: [google('zones')], description: 'Zones tried in order when one has no capacity (comma-separated; replaces --gce-zone)' },
  { name: 'gce-machine-type', type: 'string[]', default: [DEFAULT_MACHINE_TYPE], env: 'GOOGLE_MACHINE_TYPE', aliases: [google('machine-type')], description: 'Machine type; a comma-separated list is tried in order when a type has no capacity' },
  { name: 'gce-image', type: 'string', default: DEFAULT_IMAGE, env: 'GOOGLE_MACHINE_IMAGE', aliases: [google('machine-image')], description: 'Boot image or image family (projects/P/global/images/family/F, P/global/images/NAME, or a URL)' },
  { name: 'gce-disk-size', type: 'number', default: 10, env: 'GOOGLE_DISK_SIZE', aliases: [google('disk-size')], description: 'Boot disk size in GB' },
  { name: 'gce-disk-type', type: 'string', default: 'pd-balanced', env: 'GOOGLE_DISK_TYPE', aliases: [google('disk-type')], description: 'Boot disk type (pd-balanced, pd-ssd, pd-standard, ...)' },
  { name: 'gce-network', type: 'string', default: 'default', env: 'GOOGLE_NETWORK', aliases: [google('network')], description: 'VPC network of the instance and of the firewall rules' },
  { name: 'gce-subnetwork', type: 'string', env: 'GOOGLE_SUBNETWORK', aliases: [google('subnetwork')], description: 'Subnetwork (for custom-mode networks)' },
  { name: 'gce-tags', type: 'string[]', env: 'GOOGLE_TAGS', aliases: [google('tags')], description: 'Extra network tags (comma-separated); the cluster tag is always added' },
  { name: 'gce-label', type: 'string[]', env: 'GOOGLE_LABELS', aliases: [google('labels')], description: 'Extra labels KEY=VALUE (comma-separated); tmachine adds its own' },
  { name: 'gce-service-account', type: 'string', default: 'default', env: 'GOOGLE_SERVICE_ACCOUNT', aliases: [google('service-account')], description: 'Service account of the VM (email, or "default")' },
  { name: 'gce-scopes', type: 'string[]', default: DEFAULT_SCOPES, env: 'GOOGLE_SCOPES', aliases: [google('scopes')], description: 'OAuth scopes of the VM service account (comma-separated)' },
  { name: 'gce-preemptible', type: 'boolean', default: false, env: 'GOOGLE_PREEMPTIBLE', aliases: [google('preemptible')], description: 'Preemptible instance' },
  { name: 'gce-spot', type: 'boolean', default: false, env: 'GOOGLE_SPOT', aliases: [google('spot')], description: 'Spot instance (provisioning model SPOT)' },
  { name: 'gce-address', type: 'string', env: 'GOOGLE_ADDRESS', aliases: [google('address')], description: 'Static external address (an IP reserved in the region)' },
  { name: 'gce-use-internal-ip', type: 'boolean', default: false, env: 'GOOGLE_USE_INTERNAL_IP', aliases: [google('use-internal-ip')], description: 'Reach the instance on its internal address (tmachine runs in the same VPC)' },
  { name: 'gce-use-internal-ip-only', type: 'boolean', default: false, env: 'GOOGLE_USE_INTERNAL_IP_ONLY', aliases: [google('use-internal-ip-only')], description: 'No external address at all (implies --gce-use-internal-ip)' },
  { name: 'gce-username', type: 'string', default: DEFAULT_USER, env: 'GOOGLE_USERNAME', aliases: [google('username')], description: 'SSH user made on the instance from the ssh-keys metadata' },
  { name: 'gce-open-port', type: 'string[]', aliases: [google('open-port')], description: 'Extra port open from the source ranges, e.g. 8080/tcp (repeatable)' },
  { name: 'gce-source-range', type: 'string[]', env: 'GOOGLE_SOURCE_RANGES', description: 'CIDR allowed to reach SSH (22) and the engine (2376) (repeatable; default 0.0.0.0/0)' },
  { name: 'gce-ssh-timeout', type: 'number', default: 300, env: 'GOOGLE_SSH_TIMEOUT', description: 'Seconds to wait for SSH on a new instance' },
  { name: 'gce-endpoint', type: 'string', env: 'GOOGLE_COMPUTE_ENDPOINT', description: 'Compute Engine API endpoint URL (an emulator or test endpoint); takes a static token from $GOOGLE_OAUTH_ACCESS_TOKEN' },
];

/**
 * A list flag given as repeated flags, comma-separated, or both (`--gce-zones a,b`): the CLI
 * hands over each occurrence as it was typed.
 */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess((value) => (Array.isArray(value) ? value.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean) : value), z.array(item));

const portSpec = z.string().regex(/^\d{1,5}(-\d{1,5})?(\/(tcp|udp))?$/, 'a port like 8080/tcp, 8000-8100/udp');
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'a CIDR range like 203.0.113.0/24');
const label = z.string().regex(/^[a-z][a-z0-9_-]{0,62}=[a-z0-9_-]{0,63}$/, 'KEY=VALUE in lowercase letters, digits, - and _');

export const optionsSchema = z.object({
  // Project IDs are lowercase letters, digits and -; old domain-scoped ones are example.com:name.
  'gce-project': z.string().regex(/^([a-z0-9.-]+:)?[a-z]([a-z0-9-]*[a-z0-9])?$/, 'a project ID (lowercase letters, digits and -)').optional(),
  'gce-zone': z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'a zone like europe-west1-b'),
  'gce-zones': list(z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'zones like europe-west1-b,europe-west1-c')).pipe(z.array(z.string()).min(1)).optional(),
  'gce-machine-type': list(z.string().regex(/^[a-z0-9-]+$/, 'machine types like e2-medium,e2-standard-2')).pipe(z.array(z.string()).min(1)),
  'gce-image': z.string().min(1),
  'gce-disk-size': z.number().int().min(10, 'at least 10 GB').max(65536),
  'gce-disk-type': z.string().regex(/^[a-z0-9-]+$/, 'a disk type like pd-balanced'),
  'gce-network': z.string().min(1),
  'gce-subnetwork': z.string().min(1).optional(),
  'gce-tags': list(z.string().regex(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'tags in lowercase letters, digits and -')).optional(),
  'gce-label': list(label).optional(),
  'gce-service-account': z.string().min(1),
  'gce-scopes': list(z.string().min(1)),
  'gce-preemptible': z.boolean(),
  'gce-spot': z.boolean(),
  'gce-address': z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address').optional(),
  'gce-use-internal-ip': z.boolean(),
  'gce-use-internal-ip-only': z.boolean(),
  'gce-username': z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a Linux user name'),
  'gce-open-port': list(portSpec).optional(),
  'gce-source-range': list(cidr).optional(),
  'gce-ssh-timeout': z.number().int().min(5).max(3600),
  'gce-endpoint': z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
});
export type GceOptions = z.infer<typeof optionsSchema>;

export const stateSchema = z.object({
  project: z.string().optional(),
  zone: z.string().optional(),
  instance: z.string().optional(),
  instanceId: z.string().optional(),
  machineType: z.string().optional(),
  /** The network tag the cluster's firewall rules target. */
  targetTag: z.string().optional(),
  publicIp: z.string().optional(),
  privateIp: z.string().optional(),
});
export type GceState = z.infer<typeof stateSchema>;

export const definition = defineDriver<GceOptions, GceState>({
  name: 'gce',
  aliases: ['google'],
  description: 'Google Compute Engine instances (Application Default Credentials), with per-cluster firewall rules',
  defaultEngineInstall: 'bundle',
  flags,
  optionsSchema,
  stateSchema,
  load: async () => (await import('./driver.js')).implementation,
});
