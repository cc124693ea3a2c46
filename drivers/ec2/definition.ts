/**
 * The ec2 driver's names, flags and schemas (cheap: no SDK here). The implementation and
 * the AWS SDK load only when an ec2 machine is used. Flags also answer to Docker Machine's
 * `--amazonec2-*` spellings and its environment variables.
 */
import { defineDriver, z } from '../kit/index.js';

export const DEFAULT_IMAGE_PARAMETER_PREFIX = '/aws/service/debian/release/12/latest/';
export const DEFAULT_SSH_USER = 'admin';
export const DEFAULT_INSTANCE_TYPE = 't3.small';

type FlagSpec = Parameters<typeof defineDriver>[0]['flags'][number];

/** An ec2-NAME flag that also answers to amazonec2-NAME. */
function flag(spec: Omit<FlagSpec, 'name' | 'aliases'> & { name: string; aliases?: string[] }): FlagSpec {
  return { ...spec, name: `ec2-${spec.name}`, aliases: [`amazonec2-${spec.name}`, ...(spec.aliases ?? [])] };
}

/** A repeatable flag also takes comma-separated lists: `--ec2-instance-type t3.small,t3.medium`. */
const list = <T extends z.ZodType>(item: T) => z.preprocess((v) => (Array.isArray(v) ? v.flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean) : v), z.array(item));

const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'takes CIDR ranges such as 203.0.113.0/24');
const openPort = z.string().regex(/^\d{1,5}(-\d{1,5})?(\/(tcp|udp))?$/, 'takes PORT, PORT/udp or FROM-TO/tcp');

const rawOptions = z.object({
  // A region is a hostname component of the endpoint (eu-west-1; an EC2-compatible cloud's own name).
  'ec2-region': z.string().regex(/^[a-z][a-z0-9-]*[a-z0-9]$/i, 'takes a region such as eu-west-1').optional(),
  'ec2-profile': z.string().min(1).optional(),
  'ec2-endpoint': z.url({ protocol: /^https?$/, error: 'takes an http(s) URL' }).optional(),
  'ec2-access-key': z.string().min(1).optional(),
  'ec2-secret-key': z.string().min(1).optional(),
  'ec2-session-token': z.string().min(1).optional(),
  'ec2-ami': z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'takes an image id such as ami-0123456789abcdef0').optional(),
  'ec2-image-parameter': z.string().startsWith('/', 'takes an SSM parameter name such as /aws/service/debian/release/12/latest/amd64').optional(),
  'ec2-ssh-user': z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'takes a login name').optional(),
  'ec2-instance-type': list(z.string().regex(/^[a-z0-9-]+\.[a-z0-9]+$/, 'takes instance types such as t3.small')).refine((v) => v.length > 0, 'takes at least one instance type'),
  'ec2-zone': z.string().regex(/^([a-z]{2}(-[a-z]+)+-\d+)?[a-z]$/, 'takes a zone (us-east-1a) or its letter (a)').optional(),
  'ec2-vpc-id': z.string().regex(/^vpc-[0-9a-f]+$/, 'takes a VPC id such as vpc-0abc').optional(),
  'ec2-subnet-id': z.string().regex(/^subnet-[0-9a-f]+$/, 'takes a subnet id such as subnet-0abc').optional(),
  'ec2-security-group': list(z.string().min(1)).default([]),
  'ec2-source-cidr': list(cidr).default(['0.0.0.0/0']).refine((v) => v.length > 0, 'takes at least one CIDR range'),
  'ec2-open-port': list(openPort).default([]),
  'ec2-root-size': z.number().int().min(8, 'must be at least 8 (GiB)').max(16_384),
  'ec2-volume-type': z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard'], { error: 'takes gp3, gp2, io1, io2, st1, sc1 or standard' }),
  'ec2-device-name': z.string().startsWith('/dev/').optional(),
  'ec2-kms-key': z.string().min(1).optional(),
  'ec2-iam-instance-profile': z.string().min(1).optional(),
  'ec2-userdata': z.string().min(1).optional(),
  'ec2-tags': z
    .string()
    .refine((s) => s.split(',').length % 2 === 0, 'takes key1,value1,key2,value2')
    .optional(),
  'ec2-request-spot-instance': z.boolean().default(false),
  'ec2-spot-price': z.string().regex(/^\d+(\.\d+)?$/, 'takes a price in dollars such as 0.05').optional(),
  'ec2-private-address-only': z.boolean().default(false),
  'ec2-use-private-address': z.boolean().default(false),
  'ec2-monitoring': z.boolean().default(false),
  'ec2-use-ebs-optimized-instance': z.boolean().default(false),
  'ec2-retries': z.number().int().min(0).max(20),
  'ec2-ssh-timeout': z.number().int().min(1),
  'ec2-console-timeout': z.number().int().min(0),
});

export const optionsSchema = rawOptions.transform((raw) => ({
  region: raw['ec2-region'],
  profile: raw['ec2-profile'],
  endpoint: raw['ec2-endpoint'],
  accessKey: raw['ec2-access-key'],
  secretKey: raw['ec2-secret-key'],
  sessionToken: raw['ec2-session-token'],
  ami: raw['ec2-ami'],
  imageParameter: raw['ec2-image-parameter'],
  sshUser: raw['ec2-ssh-user'],
  instanceTypes: raw['ec2-instance-type'],
  zone: raw['ec2-zone'],
  vpcId: raw['ec2-vpc-id'],
  subnetId: raw['ec2-subnet-id'],
  securityGroups: raw['ec2-security-group'],
  sourceCidrs: raw['ec2-source-cidr'],
  openPorts: raw['ec2-open-port'],
  rootSize: raw['ec2-root-size'],
  volumeType: raw['ec2-volume-type'],
  deviceName: raw['ec2-device-name'],
  kmsKey: raw['ec2-kms-key'],
  iamInstanceProfile: raw['ec2-iam-instance-profile'],
  userDataFile: raw['ec2-userdata'],
  tags: raw['ec2-tags'],
  spot: raw['ec2-request-spot-instance'],
  spotPrice: raw['ec2-spot-price'],
  privateAddressOnly: raw['ec2-private-address-only'],
  usePrivateAddress: raw['ec2-use-private-address'],
  monitoring: raw['ec2-monitoring'],
  ebsOptimized: raw['ec2-use-ebs-optimized-instance'],
  retries: raw['ec2-retries'],
  sshTimeoutSeconds: raw['ec2-ssh-timeout'],
  consoleTimeoutSeconds: raw['ec2-console-timeout'],
}));

export type Ec2Options = z.infer<typeof optionsSchema>;

export const stateSchema = z.object({
  region: z.string().optional(),
  /** Base of this create's ClientTokens: a re-run of an interrupted create launches nothing new. */
  launchToken: z.string().optional(),
  instanceId: z.string().optional(),
  instanceType: z.string().optional(),
  imageId: z.string().optional(),
  zone: z.string().optional(),
  vpcId: z.string().optional(),
  subnetId: z.string().optional(),
  keyName: z.string().optional(),
  securityGroupId: z.string().optional(),
  sshUser: z.string().optional(),
  publicIp: z.string().optional(),
  privateIp: z.string().optional(),
  /** Host keys read from the console before the first SSH connection (OpenSSH lines). */
  hostKeys: z.array(z.string()).optional(),
});

export type Ec2State = z.infer<typeof stateSchema>;

export const definition = defineDriver<Ec2Options, Ec2State>({
  name: 'ec2',
  aliases: ['amazonec2'],
  description: 'Amazon EC2 instances (default VPC, Debian 12, a security group per cluster)',
  defaultEngineInstall: 'bundle',
  flags: [
    flag({ name: 'region', type: 'string', env: 'AWS_DEFAULT_REGION', description: 'AWS region (default: the AWS profile\'s region, else us-east-1)' }),
    flag({ name: 'profile', type: 'string', env: 'AWS_PROFILE', description: 'AWS shared-config profile for credentials and region' }),
    flag({ name: 'endpoint', type: 'string', env: 'AWS_ENDPOINT', description: 'EC2 (and SSM) endpoint URL, for EC2-compatible clouds' }),
    flag({ name: 'access-key', type: 'string', secret: true, description: 'AWS access key id (default: the AWS credential chain: environment, shared files, SSO, instance role)' }),
    flag({ name: 'secret-key', type: 'string', secret: true, description: 'AWS secret access key (with --ec2-access-key)' }),
    flag({ name: 'session-token', type: 'string', secret: true, description: 'AWS session token (with --ec2-access-key)' }),
    flag({ name: 'ami', type: 'string', env: 'AWS_AMI', description: 'Image id (default: the region\'s current Debian 12 image, from SSM)' }),
    flag({ name: 'image-parameter', type: 'string', description: `Public SSM parameter naming the image (default: ${DEFAULT_IMAGE_PARAMETER_PREFIX}amd64, or arm64 for Graviton types)` }),
    flag({ name: 'ssh-user', type: 'string', env: 'AWS_SSH_USER', description: `Login user of the image (default: ${DEFAULT_SSH_USER}, Debian's)` }),
    flag({ name: 'instance-type', type: 'string[]', env: 'AWS_INSTANCE_TYPE', default: [DEFAULT_INSTANCE_TYPE], description: 'Instance type, or a comma-separated list tried in order when a type has no capacity' }),
    flag({ name: 'zone', type: 'string', env: 'AWS_ZONE', description: 'Availability zone (us-east-1a, or its letter a); default: every zone in turn on a capacity error' }),
    flag({ name: 'vpc-id', type: 'string', env: 'AWS_VPC_ID', description: 'VPC (default: the default VPC)' }),
    flag({ name: 'subnet-id', type: 'string', env: 'AWS_SUBNET_ID', description: 'Subnet (default: the default subnet of the zone)' }),
    flag({ name: 'security-group', type: 'string[]', env: 'AWS_SECURITY_GROUP', description: 'More security groups (names or ids) to attach; tmachine never edits them' }),
    flag({ name: 'source-cidr', type: 'string[]', default: ['0.0.0.0/0'], description: 'Where SSH (22), the engine (2376) and --ec2-open-port are reachable from (repeatable)' }),
    flag({ name: 'open-port', type: 'string[]', description: 'More ports to open from --ec2-source-cidr: PORT, PORT/udp, FROM-TO/tcp (repeatable)' }),
    flag({ name: 'root-size', type: 'number', env: 'AWS_ROOT_SIZE', default: 16, description: 'Root volume size (GiB)' }),
    flag({ name: 'volume-type', type: 'string', env: 'AWS_VOLUME_TYPE', default: 'gp3', description: 'Root volume type (always encrypted, deleted with the instance)' }),
    flag({ name: 'device-name', type: 'string', env: 'AWS_DEVICE_NAME', description: 'Root device name (default: the image\'s)' }),
    flag({ name: 'kms-key', type: 'string', env: 'AWS_KMS_KEY', description: 'KMS key for the root volume (default: the account\'s EBS key)' }),
    flag({ name: 'iam-instance-profile', type: 'string', env: 'AWS_INSTANCE_PROFILE', description: 'IAM instance profile (name or ARN)' }),
    flag({ name: 'userdata', type: 'string', env: 'AWS_USERDATA', description: 'File with cloud-init user data' }),
    flag({ name: 'tags', type: 'string', env: 'AWS_TAGS', description: 'More tags: key1,value1,key2,value2' }),
    flag({ name: 'request-spot-instance', type: 'boolean', default: false, description: 'Launch a spot instance (through RunInstances)' }),
    flag({ name: 'spot-price', type: 'string', description: 'Highest spot price in dollars per hour (default: the on-demand price)' }),
    flag({ name: 'private-address-only', type: 'boolean', default: false, description: 'No public address; tmachine reaches the private one' }),
    flag({ name: 'use-private-address', type: 'boolean', default: false, description: 'Reach the instance on its private address' }),
    flag({ name: 'monitoring', type: 'boolean', default: false, description: 'CloudWatch detailed monitoring' }),
    flag({ name: 'use-ebs-optimized-instance', type: 'boolean', default: false, description: 'EBS-optimized instance' }),
    flag({ name: 'retries', type: 'number', default: 5, description: 'Retries of a throttled or failed API call (the SDK\'s)' }),
    flag({ name: 'ssh-timeout', type: 'number', default: 300, description: 'Seconds to wait for SSH after the instance runs' }),
    flag({ name: 'console-timeout', type: 'number', default: 60, description: 'Seconds to wait for the host keys on the console' }),
  ],
  optionsSchema,
  stateSchema,
  load: async () => (await import('./driver.js')).implementation,
});
