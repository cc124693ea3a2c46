/**
 * A fake Amazon EC2 (Query protocol) and SSM GetParameter (JSON protocol) endpoint on
 * 127.0.0.1, for driving the ec2 driver through the official SDK. Stateful (resources stay
 * until deleted, terminated instances stay visible), strict (missing or invalid parameters
 * get EC2's own error codes), counted (every call is logged), with fault switches.
 * Instances are backed by real test hosts when a backend is given; the addresses it reports
 * are those hosts' addresses and nothing else.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApiError,
  EC2_VERSION,
  bool,
  ec2ErrorBody,
  ec2Response,
  int,
  parseQueryForm,
  parseSigV4,
  required,
  str,
  strList,
  sub,
  treeList,
  type FormTree,
  type XmlValue,
} from './protocol.js';
import type { BackingHost, InstanceBackend } from './backend.js';

export const FAKE_ACCOUNT = '123456789012';

export interface FakeImage {
  imageId: string;
  name: string;
  architecture: 'x86_64' | 'arm64';
  rootDeviceName: string;
  /** Size of the image's root snapshot (GiB): a smaller root volume is refused. */
  sizeGiB: number;
  /** The user cloud-init makes on this image. */
  loginUser: string;
}

export const DEBIAN_12_AMD64: FakeImage = { imageId: 'ami-0d3ebf1e2a7c0b001', name: 'debian-12-amd64-20261101-1920', architecture: 'x86_64', rootDeviceName: '/dev/xvda', sizeGiB: 8, loginUser: 'admin' };
export const DEBIAN_12_ARM64: FakeImage = { imageId: 'ami-0d3ebf1e2a7c0b002', name: 'debian-12-arm64-20261101-1920', architecture: 'arm64', rootDeviceName: '/dev/xvda', sizeGiB: 8, loginUser: 'admin' };

const INSTANCE_TYPES: Record<string, { arch: 'x86_64' | 'arm64'; vcpus: number; memoryMiB: number }> = {
  'm1.small': { arch: 'x86_64', vcpus: 1, memoryMiB: 1740 },
  't2.micro': { arch: 'x86_64', vcpus: 1, memoryMiB: 1024 },
  't3.micro': { arch: 'x86_64', vcpus: 2, memoryMiB: 1024 },
  't3.small': { arch: 'x86_64', vcpus: 2, memoryMiB: 2048 },
  't3.medium': { arch: 'x86_64', vcpus: 2, memoryMiB: 4096 },
  't3a.small': { arch: 'x86_64', vcpus: 2, memoryMiB: 2048 },
  'm5.large': { arch: 'x86_64', vcpus: 2, memoryMiB: 8192 },
  'c5.large': { arch: 'x86_64', vcpus: 2, memoryMiB: 4096 },
  't4g.small': { arch: 'arm64', vcpus: 2, memoryMiB: 2048 },
  't4g.medium': { arch: 'arm64', vcpus: 2, memoryMiB: 4096 },
  'm7g.large': { arch: 'arm64', vcpus: 2, memoryMiB: 8192 },
};

const STATE_CODES = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 } as const;
export type InstanceStateName = keyof typeof STATE_CODES;

export interface Tag {
  key: string;
  value: string;
}

export interface FakeVolume {
  volumeId: string;
  size: number;
  volumeType: string;
  encrypted: boolean;
  deleteOnTermination: boolean;
  zone: string;
  instanceId?: string;
  device: string;
  state: 'in-use' | 'available' | 'deleted';
  tags: Tag[];
  createTime: Date;
}

export interface FakeInstance {
  instanceId: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  architecture: string;
  zone: string;
  subnetId: string;
  vpcId: string;
  keyName?: string;
  groupIds: string[];
  tags: Tag[];
  state: InstanceStateName;
  stateReason?: { code: string; message: string };
  launchTime: Date;
  clientToken: string;
  amiLaunchIndex: number;
  privateIp?: string;
  /** Whether the instance has a public address (the subnet's default, or the request's). */
  hasPublicIp: boolean;
  httpTokens: string;
  httpEndpoint: string;
  hopLimit: number;
  spot: boolean;
  userData?: string;
  iamInstanceProfile?: string;
  monitoring: boolean;
  ebsOptimized: boolean;
  rootDeviceName: string;
  volumeIds: string[];
  loginUser: string;
  host?: BackingHost;
  /** Serialises what happens to the backing host (launch, stop, start, terminate). */
  work: Promise<void>;
  /** When `pending` may end, at the earliest (the slow-pending fault). */
  pendingUntil: number;
}

export interface IngressRule {
  protocol: string;
  fromPort?: number;
  toPort?: number;
  cidr?: string;
  groupId?: string;
  description?: string;
}

export interface FakeSecurityGroup {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  tags: Tag[];
  ingress: IngressRule[];
}

export interface FakeKeyPair {
  keyPairId: string;
  keyName: string;
  keyType: 'ed25519' | 'rsa';
  publicKey: string;
  fingerprint: string;
  tags: Tag[];
  createTime: Date;
}

export interface FakeSubnet {
  subnetId: string;
  vpcId: string;
  zone: string;
  cidr: string;
  defaultForAz: boolean;
  /** Next host address to hand out (as a number). */
  next: number;
  last: number;
}

export interface CallRecord {
  /** "RunInstances", or "ssm:GetParameter". */
  action: string;
  params: FormTree | Record<string, unknown>;
  accessKeyId: string;
  at: number;
  /** Error code answered, when the call failed. */
  error?: string;
}

export interface Faults {
  /** RunInstances answers InsufficientInstanceCapacity for matching type and/or zone. */
  noCapacity: Array<{ instanceType?: string; zone?: string }>;
  /** IAM actions refused with UnauthorizedOperation ("ec2:RunInstances", "ssm:GetParameter"). */
  unauthorized: string[];
  /** The next N calls answer RequestLimitExceeded (503). */
  throttleNext: number;
  /** Every image id is unknown (InvalidAMIID.NotFound). */
  imageNotFound: boolean;
  /** Instances boot but never answer SSH. */
  neverAnswerSsh: boolean;
  /** Instances stay `pending` at least this long. */
  pendingAtLeastMs: number;
}

export interface FakeEc2Options {
  region?: string;
  /** Zone letters (default a, b, c). */
  zones?: string[];
  backend?: InstanceBackend;
  images?: FakeImage[];
  /** IAM instance profiles that exist (names). */
  instanceProfiles?: string[];
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function ipToNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

function protocolName(value: string): string {
  const lower = value.toLowerCase();
  return ({ '6': 'tcp', '17': 'udp', '1': 'icmp', all: '-1' } as Record<string, string>)[lower] ?? lower;
}

export class FakeEc2 {
  readonly region: string;
  readonly calls: CallRecord[] = [];
  readonly faults: Faults = { noCapacity: [], unauthorized: [], throttleNext: 0, imageNotFound: false, neverAnswerSsh: false, pendingAtLeastMs: 0 };
  readonly instances = new Map<string, FakeInstance>();
  readonly volumes = new Map<string, FakeVolume>();
  readonly groups = new Map<string, FakeSecurityGroup>();
  readonly keyPairs = new Map<string, FakeKeyPair>();
  readonly subnets: FakeSubnet[] = [];
  readonly images: FakeImage[];
  readonly ssmParameters = new Map<string, string>();
  readonly vpcId = `vpc-${hex(8)}`;
  readonly vpcCidr: string;
  readonly zones: string[];
  private readonly clientTokens = new Map<string, { fingerprint: string; reservationId: string }>();
  private readonly instanceProfiles: Set<string>;
  private server: http.Server | undefined;
  url = '';

  constructor(private readonly options: FakeEc2Options = {}) {
    this.region = options.region ?? 'us-east-1';
    this.zones = (options.zones ?? ['a', 'b', 'c']).map((z) => `${this.region}${z}`);
    this.images = options.images ?? [DEBIAN_12_AMD64, DEBIAN_12_ARM64];
    this.instanceProfiles = new Set(options.instanceProfiles ?? []);
    for (const image of this.images) {
      if (image.name.startsWith('debian-12-')) this.ssmParameters.set(`/aws/service/debian/release/12/latest/${image.architecture === 'arm64' ? 'arm64' : 'amd64'}`, image.imageId);
    }
    // The VPC is the backend's test network; each zone's default subnet is a slice of it, so
    // an instance's address lies in its subnet as on EC2.
    this.vpcCidr = options.backend?.subnet ?? '172.31.0.0/16';
    const [base, bits] = this.vpcCidr.split('/') as [string, string];
    const size = 2 ** (32 - Number(bits));
    const slice = Math.floor(size / 4);
    this.zones.forEach((zone, i) => {
      const start = ipToNumber(base) + i * slice;
      this.subnets.push({ subnetId: `subnet-${hex(8)}`, vpcId: this.vpcId, zone, cidr: `${numberToIp(start)}/${32 - Math.log2(slice)}`, defaultForAz: true, next: start + (i === 0 ? 10 : 4), last: start + slice - 2 });
    });
    const defaultGroup: FakeSecurityGroup = { groupId: `sg-${hex(8)}`, groupName: 'default', description: 'default VPC security group', vpcId: this.vpcId, tags: [], ingress: [] };
    defaultGroup.ingress.push({ protocol: '-1', groupId: defaultGroup.groupId });
    this.groups.set(defaultGroup.groupId, defaultGroup);
  }

  static async start(options: FakeEc2Options = {}): Promise<FakeEc2> {
    const fake = new FakeEc2(options);
    await fake.listen();
    return fake;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo).port;
  }

  private listen(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => void this.handle(req, body, res));
    });
    return new Promise((resolve) => {
      this.server!.listen(0, '127.0.0.1', () => {
        this.url = `http://127.0.0.1:${this.port}`;
        resolve();
      });
    });
  }

  /** Stops answering and waits for every backing host's work; removes the hosts. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await Promise.allSettled([...this.instances.values()].map((i) => i.work));
    await Promise.allSettled([...this.instances.values()].map((i) => i.host?.remove()));
    await this.options.backend?.close();
  }

  callsOf(action: string): CallRecord[] {
    return this.calls.filter((c) => c.action === action);
  }

  /** Instances that are not terminated (what a user would be billed for). */
  liveInstances(): FakeInstance[] {
    return [...this.instances.values()].filter((i) => i.state !== 'terminated');
  }

  /** Waits until every backing-host transition in flight has finished. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.instances.values()].map((i) => i.work));
  }

  private async handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> {
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string') return this.handleJson(req, target, body, res);
    const params = parseQueryForm(body);
    const action = str(params, 'Action') ?? '';
    const call: CallRecord = { action, params, accessKeyId: '', at: Date.now() };
    this.calls.push(call);
    try {
      if (req.method !== 'POST' || !String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        throw new ApiError(400, 'InvalidParameterValue', 'Only POST requests with form bodies are supported here');
      }
      const credential = parseSigV4(req.headers['authorization']);
      if (!credential) throw new ApiError(401, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
      call.accessKeyId = credential.accessKeyId;
      if (credential.service !== 'ec2') throw new ApiError(400, 'SignatureDoesNotMatch', `Credential should be scoped to correct service: 'ec2'.`);
      if (credential.region !== this.region) throw new ApiError(401, 'AuthFailure', `AWS was not able to validate the provided access credentials (region ${credential.region} is not this endpoint's ${this.region})`);
      if (!action) throw new ApiError(400, 'MissingAction', 'The request must contain the parameter Action');
      if (str(params, 'Version') !== EC2_VERSION) throw new ApiError(400, 'InvalidParameterValue', `Invalid API version: ${str(params, 'Version') ?? '(none)'}`);
      this.checkFaults(`ec2:${action}`);
      const handler = this.actions[action];
      if (!handler) throw new ApiError(400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
      const answer = await handler(params);
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(ec2Response(action, answer));
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError(500, 'InternalError', `An internal error has occurred (${(error as Error).message})`);
      call.error = apiError.code;
      res.writeHead(apiError.status, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(ec2ErrorBody(apiError));
    }
  }

  private checkFaults(iamAction: string): void {
    if (this.faults.throttleNext > 0) {
      this.faults.throttleNext -= 1;
      throw new ApiError(503, 'RequestLimitExceeded', 'Request limit exceeded.');
    }
    if (this.faults.unauthorized.includes(iamAction)) {
      throw new ApiError(
        403,
        'UnauthorizedOperation',
        `You are not authorized to perform this operation. User: arn:aws:iam::${FAKE_ACCOUNT}:user/tmachine-test is not authorized to perform: ${iamAction} because no identity-based policy allows the ${iamAction} action. Encoded authorization failure message: ${randomBytes(48).toString('base64url')}`,
      );
    }
  }

  private async handleJson(req: http.IncomingMessage, target: string, body: string, res: http.ServerResponse): Promise<void> {
    const call: CallRecord = { action: `ssm:${target.replace(/^AmazonSSM\./, '')}`, params: {}, accessKeyId: '', at: Date.now() };
    this.calls.push(call);
    const fail = (status: number, type: string, message: string) => {
      call.error = type;
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
      res.end(JSON.stringify({ __type: type, message }));
    };
    const credential = parseSigV4(req.headers['authorization']);
    if (!credential) return fail(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    call.accessKeyId = credential.accessKeyId;
    if (target !== 'AmazonSSM.GetParameter') return fail(400, 'UnknownOperationException', `Unknown operation ${target}`);
    if (req.headers['content-type'] !== 'application/x-amz-json-1.1') return fail(400, 'SerializationException', 'Content-Type must be application/x-amz-json-1.1');
    let input: { Name?: unknown; WithDecryption?: unknown };
    try {
      input = JSON.parse(body) as typeof input;
    } catch {
      return fail(400, 'SerializationException', 'Request body is not JSON');
    }
    call.params = input;
    if (this.faults.throttleNext > 0) {
      this.faults.throttleNext -= 1;
      return fail(400, 'ThrottlingException', 'Rate exceeded');
    }
    if (this.faults.unauthorized.includes('ssm:GetParameter')) {
      return fail(400, 'AccessDeniedException', `User: arn:aws:iam::${FAKE_ACCOUNT}:user/tmachine-test is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:${this.region}::parameter${String(input.Name)}`);
    }
    if (typeof input.Name !== 'string' || input.Name === '') {
      return fail(400, 'ValidationException', "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null");
    }
    const value = this.ssmParameters.get(input.Name);
    if (value === undefined) return fail(400, 'ParameterNotFound', '');
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(
      JSON.stringify({
        Parameter: {
          ARN: `arn:aws:ssm:${this.region}::parameter${input.Name}`,
          DataType: 'aws:ec2:image',
          LastModifiedDate: Math.floor(Date.now() / 1000) - 86_400,
          Name: input.Name,
          Type: 'String',
          Value: value,
          Version: 42,
        },
      }),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Filters (Filter.N.Name / Filter.N.Value.M), shared by the Describe calls

  private filtered<T>(items: T[], params: FormTree, fields: (item: T, name: string) => string[] | undefined): T[] {
    const filters = treeList(params, 'Filter').map((f) => ({ name: required(f, 'Name'), values: strList(f, 'Value') }));
    return items.filter((item) =>
      filters.every(({ name, values }) => {
        const have = fields(item, name);
        if (have === undefined) throw new ApiError(400, 'InvalidParameterValue', `The filter '${name}' is invalid`);
        return have.some((h) => values.some((v) => (v.includes('*') ? new RegExp(`^${v.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(h) : v === h)));
      }),
    );
  }

  private static tagField(tags: Tag[], name: string): string[] | undefined {
    if (name.startsWith('tag:')) return tags.filter((t) => t.key === name.slice(4)).map((t) => t.value);
    if (name === 'tag-key') return tags.map((t) => t.key);
    if (name === 'tag-value') return tags.map((t) => t.value);
    return undefined;
  }

  private tagsFor(params: FormTree, resourceType: string, allowed: string[]): Tag[] {
    const tags: Tag[] = [];
    for (const spec of treeList(params, 'TagSpecification')) {
      const type = required(spec, 'ResourceType');
      if (!allowed.includes(type)) throw new ApiError(400, 'InvalidParameterValue', `'${type}' is not a valid taggable resource type for this operation.`);
      if (type !== resourceType) continue;
      for (const tag of treeList(spec, 'Tag')) {
        const key = required(tag, 'Key');
        if (key.startsWith('aws:')) throw new ApiError(400, 'InvalidParameterValue', `Tag keys starting with 'aws:' are reserved for internal use`);
        tags.push({ key, value: str(tag, 'Value') ?? '' });
      }
    }
    return tags;
  }

  // ---------------------------------------------------------------------------------------
  // Actions

  private readonly actions: Record<string, (p: FormTree) => Promise<Record<string, XmlValue>> | Record<string, XmlValue>> = {
    DescribeAvailabilityZones: (p) => ({
      availabilityZoneInfo: this.filtered(this.zones, p, (z, name) => (name === 'zone-name' ? [z] : name === 'state' ? ['available'] : name === 'region-name' ? [this.region] : undefined)).map((zone, i) => ({
        zoneName: zone,
        zoneState: 'available',
        regionName: this.region,
        zoneId: `use1-az${i + 1}`,
        zoneType: 'availability-zone',
        optInStatus: 'opt-in-not-required',
        groupName: this.region,
        networkBorderGroup: this.region,
        messageSet: [],
      })),
    }),

    DescribeVpcs: (p) => {
      const ids = strList(p, 'VpcId');
      for (const id of ids) if (id !== this.vpcId) throw new ApiError(400, 'InvalidVpcID.NotFound', `The vpc ID '${id}' does not exist`);
      const vpcs = this.filtered([this.vpcId], p, (_v, name) => (name === 'is-default' || name === 'isDefault' ? ['true'] : name === 'vpc-id' ? [this.vpcId] : name === 'state' ? ['available'] : undefined));
      return {
        vpcSet: vpcs.map((vpcId) => ({ vpcId, state: 'available', cidrBlock: this.vpcCidr, dhcpOptionsId: `dopt-${hex(4)}`, instanceTenancy: 'default', isDefault: true, ownerId: FAKE_ACCOUNT, tagSet: [] })),
      };
    },

    DescribeSubnets: (p) => {
      const ids = strList(p, 'SubnetId');
      for (const id of ids) if (!this.subnets.some((s) => s.subnetId === id)) throw new ApiError(400, 'InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
      const subnets = this.filtered(
        this.subnets.filter((s) => ids.length === 0 || ids.includes(s.subnetId)),
        p,
        (s, name) =>
          ({ 'vpc-id': [s.vpcId], 'availability-zone': [s.zone], availabilityZone: [s.zone], 'default-for-az': [String(s.defaultForAz)], defaultForAz: [String(s.defaultForAz)], 'subnet-id': [s.subnetId], state: ['available'] })[name],
      );
      return {
        subnetSet: subnets.map((s) => ({
          subnetId: s.subnetId,
          subnetArn: `arn:aws:ec2:${this.region}:${FAKE_ACCOUNT}:subnet/${s.subnetId}`,
          state: 'available',
          vpcId: s.vpcId,
          cidrBlock: s.cidr,
          availableIpAddressCount: s.last - s.next + 1,
          availabilityZone: s.zone,
          defaultForAz: s.defaultForAz,
          mapPublicIpOnLaunch: true,
          ownerId: FAKE_ACCOUNT,
          tagSet: [],
        })),
      };
    },

    DescribeImages: (p) => {
      const ids = strList(p, 'ImageId');
      for (const id of ids) {
        if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new ApiError(400, 'InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`);
        if (this.faults.imageNotFound || !this.images.some((i) => i.imageId === id)) throw new ApiError(400, 'InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
      }
      const images = this.filtered(
        this.images.filter((i) => (ids.length === 0 || ids.includes(i.imageId)) && !this.faults.imageNotFound),
        p,
        (i, name) => ({ 'image-id': [i.imageId], name: [i.name], architecture: [i.architecture], state: ['available'] })[name],
      );
      return {
        imagesSet: images.map((i) => ({
          imageId: i.imageId,
          imageLocation: `${FAKE_ACCOUNT}/${i.name}`,
          imageState: 'available',
          imageOwnerId: '136693071363',
          creationDate: '2026-11-01T19:20:00.000Z',
          isPublic: true,
          architecture: i.architecture,
          imageType: 'machine',
          name: i.name,
          description: `Debian 12 (${i.name})`,
          rootDeviceType: 'ebs',
          rootDeviceName: i.rootDeviceName,
          blockDeviceMapping: [{ deviceName: i.rootDeviceName, ebs: { snapshotId: `snap-${hex(8)}`, volumeSize: i.sizeGiB, deleteOnTermination: true, volumeType: 'gp2', encrypted: false } }],
          virtualizationType: 'hvm',
          hypervisor: 'xen',
          enaSupport: true,
          sriovNetSupport: 'simple',
          bootMode: 'uefi-preferred',
          imdsSupport: 'v2.0',
          platformDetails: 'Linux/UNIX',
          usageOperation: 'RunInstances',
          tagSet: [],
        })),
      };
    },

    DescribeInstanceTypes: (p) => {
      const asked = strList(p, 'InstanceType');
      const unknown = asked.filter((t) => !INSTANCE_TYPES[t]);
      if (unknown.length > 0) throw new ApiError(400, 'InvalidInstanceType', `The following supplied instance types do not exist: [${unknown.join(', ')}]`);
      const types = asked.length > 0 ? asked : Object.keys(INSTANCE_TYPES);
      return {
        instanceTypeSet: types.map((t) => {
          const info = INSTANCE_TYPES[t]!;
          return {
            instanceType: t,
            currentGeneration: t !== 'm1.small',
            processorInfo: { supportedArchitectures: [info.arch] },
            vCpuInfo: { defaultVCpus: info.vcpus },
            memoryInfo: { sizeInMiB: info.memoryMiB },
            supportedUsageClasses: ['on-demand', 'spot'],
            supportedRootDeviceTypes: ['ebs'],
            supportedVirtualizationTypes: ['hvm'],
            bareMetal: false,
            hypervisor: 'nitro',
          };
        }),
      };
    },

    ImportKeyPair: (p) => {
      const keyName = required(p, 'KeyName');
      const material = required(p, 'PublicKeyMaterial');
      const line = Buffer.from(material, 'base64').toString('utf8').trim();
      const match = /^(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/=]+)(?: .*)?$/.exec(line);
      if (!match) throw new ApiError(400, 'InvalidKey.Format', 'Key is not in valid OpenSSH public key format');
      if ([...this.keyPairs.values()].some((k) => k.keyName === keyName)) throw new ApiError(400, 'InvalidKeyPair.Duplicate', `The keypair already exists`);
      const blob = Buffer.from(match[2]!, 'base64');
      const keyType = match[1] === 'ssh-ed25519' ? 'ed25519' : 'rsa';
      const fingerprint = keyType === 'ed25519' ? createHash('sha256').update(blob).digest('base64') : createHash('md5').update(blob).digest('hex').replace(/(..)(?!$)/g, '$1:');
      const key: FakeKeyPair = { keyPairId: `key-${hex(8)}`, keyName, keyType, publicKey: `${match[1]} ${match[2]}`, fingerprint, tags: this.tagsFor(p, 'key-pair', ['key-pair']), createTime: new Date() };
      this.keyPairs.set(key.keyPairId, key);
      return { keyFingerprint: key.fingerprint, keyName, keyPairId: key.keyPairId, tagSet: key.tags.map((t) => ({ key: t.key, value: t.value })) };
    },

    DescribeKeyPairs: (p) => {
      const names = strList(p, 'KeyName');
      const ids = strList(p, 'KeyPairId');
      const all = [...this.keyPairs.values()];
      for (const name of names) if (!all.some((k) => k.keyName === name)) throw new ApiError(400, 'InvalidKeyPair.NotFound', `The key pair '${name}' does not exist`);
      for (const id of ids) if (!all.some((k) => k.keyPairId === id)) throw new ApiError(400, 'InvalidKeyPair.NotFound', `The key pair ID '${id}' does not exist`);
      const withPublic = bool(p, 'IncludePublicKey') === true;
      const keys = this.filtered(
        all.filter((k) => (names.length === 0 || names.includes(k.keyName)) && (ids.length === 0 || ids.includes(k.keyPairId))),
        p,
        (k, name) => ({ 'key-name': [k.keyName], 'key-pair-id': [k.keyPairId], fingerprint: [k.fingerprint], 'key-type': [k.keyType] })[name] ?? FakeEc2.tagField(k.tags, name),
      );
      return {
        keySet: keys.map((k) => ({ keyPairId: k.keyPairId, keyName: k.keyName, keyType: k.keyType, keyFingerprint: k.fingerprint, createTime: k.createTime.toISOString(), publicKey: withPublic ? k.publicKey : undefined, tagSet: k.tags.map((t) => ({ ...t })) })),
      };
    },

    DeleteKeyPair: (p) => {
      const name = str(p, 'KeyName');
      const id = str(p, 'KeyPairId');
      if (!name && !id) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter KeyName or KeyPairId');
      // EC2 answers true for a key that is already gone.
      const key = [...this.keyPairs.values()].find((k) => (name ? k.keyName === name : k.keyPairId === id));
      if (key) this.keyPairs.delete(key.keyPairId);
      return { return: true, keyPairId: key?.keyPairId };
    },

    CreateSecurityGroup: (p) => {
      const groupName = required(p, 'GroupName');
      const description = required(p, 'GroupDescription');
      const vpcId = str(p, 'VpcId') ?? this.vpcId;
      if (vpcId !== this.vpcId) throw new ApiError(400, 'InvalidVpcID.NotFound', `The vpc ID '${vpcId}' does not exist`);
      if (groupName.startsWith('sg-')) throw new ApiError(400, 'InvalidParameterValue', `Group names may not be in the format sg-*`);
      if ([...this.groups.values()].some((g) => g.groupName === groupName && g.vpcId === vpcId)) throw new ApiError(400, 'InvalidGroup.Duplicate', `The security group '${groupName}' already exists for VPC '${vpcId}'`);
      const group: FakeSecurityGroup = { groupId: `sg-${hex(8)}`, groupName, description, vpcId, tags: this.tagsFor(p, 'security-group', ['security-group']), ingress: [] };
      this.groups.set(group.groupId, group);
      return { groupId: group.groupId, securityGroupArn: `arn:aws:ec2:${this.region}:${FAKE_ACCOUNT}:security-group/${group.groupId}`, tagSet: group.tags.map((t) => ({ ...t })) };
    },

    DescribeSecurityGroups: (p) => {
      const ids = strList(p, 'GroupId');
      const names = strList(p, 'GroupName');
      for (const id of ids) if (!this.groups.has(id)) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${id}' does not exist`);
      for (const name of names) if (![...this.groups.values()].some((g) => g.groupName === name && g.vpcId === this.vpcId)) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${name}' does not exist in default VPC '${this.vpcId}'`);
      const groups = this.filtered(
        [...this.groups.values()].filter((g) => (ids.length === 0 || ids.includes(g.groupId)) && (names.length === 0 || names.includes(g.groupName))),
        p,
        (g, name) => ({ 'group-id': [g.groupId], 'group-name': [g.groupName], 'vpc-id': [g.vpcId], description: [g.description], 'owner-id': [FAKE_ACCOUNT] })[name] ?? FakeEc2.tagField(g.tags, name),
      );
      return { securityGroupInfo: groups.map((g) => this.renderGroup(g)) };
    },

    AuthorizeSecurityGroupIngress: (p) => {
      const group = this.groupFrom(p);
      const rules: IngressRule[] = [];
      const permissions = treeList(p, 'IpPermissions');
      if (permissions.length === 0) {
        // The old flat form: IpProtocol/FromPort/ToPort/CidrIp.
        const cidr = str(p, 'CidrIp');
        if (!str(p, 'IpProtocol')) throw new ApiError(400, 'MissingParameter', 'No inbound rule given: the request must contain IpPermissions');
        rules.push(...this.rulesOf({ IpProtocol: str(p, 'IpProtocol')!, ...(str(p, 'FromPort') ? { FromPort: str(p, 'FromPort')! } : {}), ...(str(p, 'ToPort') ? { ToPort: str(p, 'ToPort')! } : {}), ...(cidr ? { IpRanges: [{ CidrIp: cidr }] } : {}) }));
      }
      for (const permission of permissions) rules.push(...this.rulesOf(permission));
      for (const rule of rules) {
        if (rule.groupId && !this.groups.has(rule.groupId)) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${rule.groupId}' does not exist`);
        const same = (r: IngressRule) => r.protocol === rule.protocol && r.fromPort === rule.fromPort && r.toPort === rule.toPort && r.cidr === rule.cidr && r.groupId === rule.groupId;
        if (group.ingress.some(same) || rules.filter(same).length > 1) {
          const peer = rule.cidr ?? `${rule.groupId}`;
          throw new ApiError(400, 'InvalidPermission.Duplicate', `the specified rule "peer: ${peer}, ${rule.protocol.toUpperCase()}, from port: ${rule.fromPort ?? -1}, to port: ${rule.toPort ?? -1}, ALLOW" already exists`);
        }
      }
      group.ingress.push(...rules);
      return {
        return: true,
        securityGroupRuleSet: rules.map((r) => ({
          securityGroupRuleId: `sgr-${hex(8)}`,
          groupId: group.groupId,
          groupOwnerId: FAKE_ACCOUNT,
          isEgress: false,
          ipProtocol: r.protocol,
          fromPort: r.fromPort ?? -1,
          toPort: r.toPort ?? -1,
          cidrIpv4: r.cidr,
          referencedGroupInfo: r.groupId ? { groupId: r.groupId, userId: FAKE_ACCOUNT } : undefined,
          description: r.description,
        })),
      };
    },

    /**
     * As EC2 answers for VPC groups: the rules that match are revoked; rules the group does
     * not have are no error, the answer lists them in unknownIpPermissionSet.
     */
    RevokeSecurityGroupIngress: (p) => {
      const group = this.groupFrom(p);
      const permissions = treeList(p, 'IpPermissions');
      if (permissions.length === 0) throw new ApiError(400, 'MissingParameter', 'No inbound rule given: the request must contain IpPermissions');
      const rules = permissions.flatMap((permission) => this.rulesOf(permission));
      const unknown: IngressRule[] = [];
      for (const rule of rules) {
        const index = group.ingress.findIndex((r) => r.protocol === rule.protocol && r.fromPort === rule.fromPort && r.toPort === rule.toPort && r.cidr === rule.cidr && r.groupId === rule.groupId);
        if (index < 0) unknown.push(rule);
        else group.ingress.splice(index, 1);
      }
      return {
        return: true,
        ...(unknown.length > 0
          ? {
              unknownIpPermissionSet: unknown.map((r) => ({
                ipProtocol: r.protocol,
                fromPort: r.fromPort,
                toPort: r.toPort,
                groups: r.groupId ? [{ groupId: r.groupId, userId: FAKE_ACCOUNT }] : [],
                ipRanges: r.cidr ? [{ cidrIp: r.cidr }] : [],
              })),
            }
          : {}),
      };
    },

    DeleteSecurityGroup: (p) => {
      const group = this.groupFrom(p);
      if (group.groupName === 'default') throw new ApiError(400, 'CannotDelete', `the specified group: "${group.groupId}" name: "default" cannot be deleted by a user`);
      const users = [...this.instances.values()].filter((i) => i.state !== 'terminated' && i.groupIds.includes(group.groupId));
      if (users.length > 0) throw new ApiError(400, 'DependencyViolation', `resource ${group.groupId} has a dependent object`);
      const referrers = [...this.groups.values()].filter((g) => g.groupId !== group.groupId && g.ingress.some((r) => r.groupId === group.groupId));
      if (referrers.length > 0) throw new ApiError(400, 'DependencyViolation', `resource ${group.groupId} has a dependent object`);
      this.groups.delete(group.groupId);
      return { return: true, groupId: group.groupId };
    },

    RunInstances: (p) => this.runInstances(p),

    DescribeInstances: (p) => {
      const ids = strList(p, 'InstanceId');
      for (const id of ids) this.instanceById(id);
      const instances = this.filtered(
        [...this.instances.values()].filter((i) => ids.length === 0 || ids.includes(i.instanceId)),
        p,
        (i, name) =>
          ({
            'instance-id': [i.instanceId],
            'instance-state-name': [this.stateOf(i)],
            'instance-type': [i.instanceType],
            'instance.group-id': i.groupIds,
            'vpc-id': [i.vpcId],
            'subnet-id': [i.subnetId],
            'availability-zone': [i.zone],
            'client-token': [i.clientToken],
            'key-name': i.keyName ? [i.keyName] : [],
            'reservation-id': [i.reservationId],
            'image-id': [i.imageId],
          })[name] ?? FakeEc2.tagField(i.tags, name),
      );
      const byReservation = new Map<string, FakeInstance[]>();
      for (const i of instances) byReservation.set(i.reservationId, [...(byReservation.get(i.reservationId) ?? []), i]);
      return { reservationSet: [...byReservation.entries()].map(([id, members]) => this.renderReservation(id, members)) };
    },

    DescribeVolumes: (p) => {
      const ids = strList(p, 'VolumeId');
      for (const id of ids) if (!this.volumes.has(id) || this.volumes.get(id)!.state === 'deleted') throw new ApiError(400, 'InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
      const volumes = this.filtered(
        [...this.volumes.values()].filter((v) => v.state !== 'deleted' && (ids.length === 0 || ids.includes(v.volumeId))),
        p,
        (v, name) => ({ 'attachment.instance-id': v.instanceId ? [v.instanceId] : [], status: [v.state], 'volume-type': [v.volumeType], encrypted: [String(v.encrypted)], 'volume-id': [v.volumeId] })[name] ?? FakeEc2.tagField(v.tags, name),
      );
      return {
        volumeSet: volumes.map((v) => ({
          volumeId: v.volumeId,
          size: v.size,
          availabilityZone: v.zone,
          status: v.state,
          createTime: v.createTime.toISOString(),
          volumeType: v.volumeType,
          encrypted: v.encrypted,
          iops: 3000,
          throughput: v.volumeType === 'gp3' ? 125 : undefined,
          multiAttachEnabled: false,
          attachmentSet: v.instanceId ? [{ volumeId: v.volumeId, instanceId: v.instanceId, device: v.device, status: 'attached', attachTime: v.createTime.toISOString(), deleteOnTermination: v.deleteOnTermination }] : [],
          tagSet: v.tags.map((t) => ({ ...t })),
        })),
      };
    },

    GetConsoleOutput: async (p) => {
      const instance = this.instanceById(required(p, 'InstanceId'));
      const text = this.stateOf(instance) === 'running' && instance.host ? await instance.host.consoleText() : '';
      return { instanceId: instance.instanceId, timestamp: new Date().toISOString(), output: text ? Buffer.from(text).toString('base64') : undefined };
    },

    StartInstances: (p) => this.transition(p, (i) => this.start(i)),
    StopInstances: (p) => {
      const force = bool(p, 'Force') === true;
      return this.transition(p, (i) => this.stop(i, force));
    },
    TerminateInstances: (p) => this.transition(p, (i) => this.terminate(i)),
    RebootInstances: (p) => {
      const instances = strList(p, 'InstanceId').map((id) => this.instanceById(id));
      if (instances.length === 0) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter InstanceId');
      for (const i of instances) {
        if (['terminated', 'shutting-down'].includes(i.state)) throw new ApiError(400, 'IncorrectInstanceState', `The instance '${i.instanceId}' is not in a state from which it can be rebooted.`);
        if (i.host && i.state === 'running') i.work = i.work.then(() => i.host!.reboot()).catch(() => undefined);
      }
      return { return: true };
    },

    CreateTags: (p) => {
      const ids = strList(p, 'ResourceId');
      if (ids.length === 0) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter ResourceId');
      const tags = treeList(p, 'Tag').map((t) => ({ key: required(t, 'Key'), value: str(t, 'Value') ?? '' }));
      for (const id of ids) {
        const resource = this.instances.get(id) ?? this.groups.get(id) ?? this.volumes.get(id) ?? this.keyPairs.get(id);
        if (!resource) throw new ApiError(400, id.startsWith('i-') ? 'InvalidInstanceID.NotFound' : 'InvalidID', `The ID '${id}' is not valid`);
        for (const tag of tags) {
          resource.tags = [...resource.tags.filter((t) => t.key !== tag.key), tag];
        }
      }
      return { return: true };
    },
  };

  private groupFrom(p: FormTree): FakeSecurityGroup {
    const id = str(p, 'GroupId');
    const name = str(p, 'GroupName');
    if (!id && !name) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter groupName or groupId');
    const group = id ? this.groups.get(id) : [...this.groups.values()].find((g) => g.groupName === name);
    if (!group) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${id ?? name}' does not exist`);
    return group;
  }

  private rulesOf(permission: FormTree): IngressRule[] {
    const protocol = protocolName(required(permission, 'IpProtocol'));
    if (!['tcp', 'udp', 'icmp', '-1'].includes(protocol) && !/^\d+$/.test(protocol)) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${protocol}' for IP protocol. Unknown protocol.`);
    let fromPort = int(permission, 'FromPort');
    let toPort = int(permission, 'ToPort');
    if (protocol === 'tcp' || protocol === 'udp') {
      if (fromPort === undefined || toPort === undefined) throw new ApiError(400, 'InvalidParameterValue', `Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.`);
      if (fromPort < 0 || toPort > 65535 || fromPort > toPort) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${fromPort}-${toPort}' for portRange.`);
    } else if (protocol !== 'icmp') {
      fromPort = undefined;
      toPort = undefined;
    }
    const ranges = treeList(permission, 'IpRanges');
    const pairs = treeList(permission, 'Groups');
    if (ranges.length === 0 && pairs.length === 0) throw new ApiError(400, 'MissingParameter', 'A source (IpRanges or Groups) is required for an inbound rule');
    const rules: IngressRule[] = [];
    for (const range of ranges) {
      const cidr = required(range, 'CidrIp');
      if (!/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/.test(cidr)) throw new ApiError(400, 'InvalidParameterValue', `CIDR block ${cidr} is malformed`);
      rules.push({ protocol, ...(fromPort !== undefined ? { fromPort, toPort: toPort! } : {}), cidr, ...(str(range, 'Description') ? { description: str(range, 'Description')! } : {}) });
    }
    for (const pair of pairs) {
      const groupId = required(pair, 'GroupId');
      rules.push({ protocol, ...(fromPort !== undefined ? { fromPort, toPort: toPort! } : {}), groupId, ...(str(pair, 'Description') ? { description: str(pair, 'Description')! } : {}) });
    }
    return rules;
  }

  private renderGroup(g: FakeSecurityGroup): Record<string, XmlValue> {
    const grouped = new Map<string, IngressRule[]>();
    for (const r of g.ingress) {
      const key = `${r.protocol}/${r.fromPort ?? ''}/${r.toPort ?? ''}`;
      grouped.set(key, [...(grouped.get(key) ?? []), r]);
    }
    return {
      ownerId: FAKE_ACCOUNT,
      groupId: g.groupId,
      groupName: g.groupName,
      groupDescription: g.description,
      vpcId: g.vpcId,
      securityGroupArn: `arn:aws:ec2:${this.region}:${FAKE_ACCOUNT}:security-group/${g.groupId}`,
      ipPermissions: [...grouped.values()].map((rules) => ({
        ipProtocol: rules[0]!.protocol,
        fromPort: rules[0]!.fromPort,
        toPort: rules[0]!.toPort,
        groups: rules.filter((r) => r.groupId).map((r) => ({ groupId: r.groupId, userId: FAKE_ACCOUNT, description: r.description })),
        ipRanges: rules.filter((r) => r.cidr).map((r) => ({ cidrIp: r.cidr, description: r.description })),
        ipv6Ranges: [],
        prefixListIds: [],
      })),
      ipPermissionsEgress: [{ ipProtocol: '-1', groups: [], ipRanges: [{ cidrIp: '0.0.0.0/0' }], ipv6Ranges: [], prefixListIds: [] }],
      tagSet: g.tags.map((t) => ({ ...t })),
    };
  }

  private instanceById(id: string): FakeInstance {
    if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new ApiError(400, 'InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
    const instance = this.instances.get(id);
    if (!instance) throw new ApiError(400, 'InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    return instance;
  }

  /** The state as the API reports it: `pending` lasts at least the slow-pending time. */
  private stateOf(i: FakeInstance): InstanceStateName {
    if (i.state === 'running' && Date.now() < i.pendingUntil) return 'pending';
    return i.state;
  }

  private renderInstance(i: FakeInstance): Record<string, XmlValue> {
    const state = this.stateOf(i);
    const hasAddress = state !== 'terminated' && state !== 'stopped' && state !== 'shutting-down' && i.privateIp !== undefined;
    const publicIp = hasAddress && i.hasPublicIp && state === 'running' ? i.privateIp : undefined;
    const ipName = i.privateIp ? `ip-${i.privateIp.replace(/\./g, '-')}` : undefined;
    return {
      instanceId: i.instanceId,
      imageId: i.imageId,
      instanceState: { code: STATE_CODES[state], name: state },
      privateDnsName: hasAddress && ipName ? `${ipName}.ec2.internal` : '',
      dnsName: publicIp ? `ec2-${publicIp.replace(/\./g, '-')}.compute-1.amazonaws.com` : '',
      reason: i.stateReason ? i.stateReason.message : '',
      keyName: i.keyName,
      amiLaunchIndex: i.amiLaunchIndex,
      productCodes: [],
      instanceType: i.instanceType,
      launchTime: i.launchTime.toISOString(),
      placement: { availabilityZone: i.zone, groupName: '', tenancy: 'default' },
      monitoring: { state: i.monitoring ? 'enabled' : 'disabled' },
      subnetId: i.subnetId,
      vpcId: i.vpcId,
      privateIpAddress: hasAddress ? i.privateIp : undefined,
      ipAddress: publicIp,
      sourceDestCheck: true,
      groupSet: i.groupIds.map((id) => ({ groupId: id, groupName: this.groups.get(id)?.groupName ?? '' })),
      stateReason: i.stateReason ? { code: i.stateReason.code, message: i.stateReason.message } : undefined,
      architecture: i.architecture,
      rootDeviceType: 'ebs',
      rootDeviceName: i.rootDeviceName,
      blockDeviceMapping: i.volumeIds
        .map((id) => this.volumes.get(id)!)
        .filter((v) => v.instanceId === i.instanceId && v.state === 'in-use')
        .map((v) => ({ deviceName: v.device, ebs: { volumeId: v.volumeId, status: 'attached', attachTime: v.createTime.toISOString(), deleteOnTermination: v.deleteOnTermination } })),
      instanceLifecycle: i.spot ? 'spot' : undefined,
      virtualizationType: 'hvm',
      clientToken: i.clientToken,
      tagSet: i.tags.map((t) => ({ ...t })),
      hypervisor: 'xen',
      iamInstanceProfile: i.iamInstanceProfile ? { arn: `arn:aws:iam::${FAKE_ACCOUNT}:instance-profile/${i.iamInstanceProfile}`, id: `AIPA${hex(8).toUpperCase()}` } : undefined,
      ebsOptimized: i.ebsOptimized,
      enaSupport: true,
      metadataOptions: { state: 'applied', httpTokens: i.httpTokens, httpPutResponseHopLimit: i.hopLimit, httpEndpoint: i.httpEndpoint, httpProtocolIpv6: 'disabled', instanceMetadataTags: 'disabled' },
      bootMode: 'uefi',
      platformDetails: 'Linux/UNIX',
      usageOperation: 'RunInstances',
    };
  }

  private renderReservation(reservationId: string, members: FakeInstance[]): Record<string, XmlValue> {
    return { reservationId, ownerId: FAKE_ACCOUNT, groupSet: [], instancesSet: members.sort((a, b) => a.amiLaunchIndex - b.amiLaunchIndex).map((i) => this.renderInstance(i)) };
  }

  private allocateIp(subnet: FakeSubnet): string {
    if (subnet.next > subnet.last) throw new ApiError(400, 'InsufficientFreeAddressesInSubnet', `There are not enough free addresses in subnet '${subnet.subnetId}' to satisfy the requested number of instances.`);
    const ip = numberToIp(subnet.next);
    subnet.next += 1;
    return ip;
  }

  private runInstances(p: FormTree): Record<string, XmlValue> {
    const minCount = int(p, 'MinCount');
    const maxCount = int(p, 'MaxCount');
    if (minCount === undefined) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter MinCount');
    if (maxCount === undefined) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter MaxCount');
    if (minCount < 1 || maxCount < minCount) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${minCount}' for minCount. Must be between 1 and maxCount (${maxCount})`);
    const clientToken = str(p, 'ClientToken') ?? '';
    if (clientToken.length > 64) throw new ApiError(400, 'InvalidParameterValue', 'Value for parameter clientToken is too long: at most 64 characters');
    const fingerprint = createHash('sha256').update(JSON.stringify({ ...p, ClientToken: undefined })).digest('hex');
    if (clientToken) {
      const earlier = this.clientTokens.get(clientToken);
      if (earlier) {
        if (earlier.fingerprint !== fingerprint) throw new ApiError(400, 'IdempotentParameterMismatch', 'The client token you have provided is associated with a resource that is already deleted or has different parameters. Please use a different client token.');
        const members = [...this.instances.values()].filter((i) => i.reservationId === earlier.reservationId);
        return this.renderReservation(earlier.reservationId, members);
      }
    }

    const imageId = required(p, 'ImageId');
    if (!/^ami-[0-9a-f]{8,17}$/.test(imageId)) throw new ApiError(400, 'InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
    const image = this.faults.imageNotFound ? undefined : this.images.find((i) => i.imageId === imageId);
    if (!image) throw new ApiError(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    const instanceType = str(p, 'InstanceType') ?? 'm1.small';
    const typeInfo = INSTANCE_TYPES[instanceType];
    if (!typeInfo) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
    if (typeInfo.arch !== image.architecture) {
      throw new ApiError(400, 'InvalidParameterValue', `The architecture '${typeInfo.arch}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again.`);
    }

    const interfaces = treeList(p, 'NetworkInterface');
    const topGroupIds = strList(p, 'SecurityGroupId');
    const topGroupNames = strList(p, 'SecurityGroup');
    if (interfaces.length > 0 && (topGroupIds.length > 0 || topGroupNames.length > 0 || str(p, 'SubnetId'))) {
      throw new ApiError(400, 'InvalidParameterCombination', 'Network interfaces and an instance-level security groups may not be specified on the same request');
    }
    const nic = interfaces[0];
    const subnetId = nic ? str(nic, 'SubnetId') : str(p, 'SubnetId');
    const placement = sub(p, 'Placement');
    const zoneAsked = str(placement, 'AvailabilityZone');
    if (zoneAsked && !this.zones.includes(zoneAsked)) throw new ApiError(400, 'InvalidParameterValue', `Invalid availability zone: [${zoneAsked}]`);
    let subnet: FakeSubnet | undefined;
    if (subnetId) {
      subnet = this.subnets.find((s) => s.subnetId === subnetId);
      if (!subnet) throw new ApiError(400, 'InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
      if (zoneAsked && subnet.zone !== zoneAsked) throw new ApiError(400, 'InvalidParameterValue', `The subnet '${subnetId}' is not in availability zone '${zoneAsked}'`);
    } else {
      subnet = this.subnets.find((s) => s.defaultForAz && s.zone === (zoneAsked ?? this.zones[0]));
    }
    if (!subnet) throw new ApiError(400, 'MissingInput', 'No default subnet for availability zone');
    const groupIds = nic ? strList(nic, 'SecurityGroupId') : topGroupIds;
    for (const id of groupIds) if (!this.groups.has(id)) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${id}' does not exist`);
    for (const name of topGroupNames) {
      const group = [...this.groups.values()].find((g) => g.groupName === name && g.vpcId === subnet.vpcId);
      if (!group) throw new ApiError(400, 'InvalidGroup.NotFound', `The security group '${name}' does not exist in VPC '${subnet.vpcId}'`);
      groupIds.push(group.groupId);
    }
    if (groupIds.length === 0) groupIds.push([...this.groups.values()].find((g) => g.groupName === 'default')!.groupId);
    const keyName = str(p, 'KeyName');
    const key = keyName ? [...this.keyPairs.values()].find((k) => k.keyName === keyName) : undefined;
    if (keyName && !key) throw new ApiError(400, 'InvalidKeyPair.NotFound', `The key pair '${keyName}' does not exist`);

    const metadata = sub(p, 'MetadataOptions');
    const httpTokens = str(metadata, 'HttpTokens') ?? 'optional';
    if (!['required', 'optional'].includes(httpTokens)) throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${httpTokens}' for HttpTokens. Valid values: required, optional.`);
    const httpEndpoint = str(metadata, 'HttpEndpoint') ?? 'enabled';
    const hopLimit = int(metadata, 'HttpPutResponseHopLimit') ?? 1;
    const market = sub(p, 'InstanceMarketOptions');
    const marketType = str(market, 'MarketType');
    if (marketType !== undefined && marketType !== 'spot') throw new ApiError(400, 'InvalidParameterValue', `Invalid value '${marketType}' for MarketType.`);
    const userDataB64 = str(p, 'UserData');
    let userData: string | undefined;
    if (userDataB64 !== undefined) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(userDataB64)) throw new ApiError(400, 'InvalidUserData.Malformed', 'Invalid BASE64 encoding of user data.');
      userData = Buffer.from(userDataB64, 'base64').toString('utf8');
      if (Buffer.byteLength(userData) > 16_384) throw new ApiError(400, 'InvalidParameterValue', 'User data is limited to 16384 bytes');
    }
    const profile = sub(p, 'IamInstanceProfile');
    const profileName = str(profile, 'Name') ?? str(profile, 'Arn')?.replace(/^.*instance-profile\//, '');
    if (profileName !== undefined && !this.instanceProfiles.has(profileName)) throw new ApiError(400, 'InvalidParameterValue', `Value (${profileName}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`);
    const associatePublic = nic ? bool(nic, 'AssociatePublicIpAddress') : undefined;
    if (nic && int(nic, 'DeviceIndex') === undefined) throw new ApiError(400, 'InvalidParameterValue', 'Each network interface requires a device index.');

    // Root volume: the request's mapping for the image's root device, else the image's own.
    let rootSize = image.sizeGiB;
    let rootType = 'gp2';
    let rootEncrypted = false;
    let rootDeleteOnTermination = true;
    for (const mapping of treeList(p, 'BlockDeviceMapping')) {
      const device = required(mapping, 'DeviceName');
      const ebs = sub(mapping, 'Ebs');
      const type = str(ebs, 'VolumeType');
      if (type && !['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard'].includes(type)) throw new ApiError(400, 'InvalidParameterValue', `Value (${type}) for parameter volumeType is invalid. Valid values: standard, gp2, gp3, io1, io2, st1, sc1`);
      const size = int(ebs, 'VolumeSize');
      if (device !== image.rootDeviceName) throw new ApiError(400, 'InvalidBlockDeviceMapping', `Only the root device ${image.rootDeviceName} may be mapped here (got ${device})`);
      if (size !== undefined && size < image.sizeGiB) throw new ApiError(400, 'InvalidBlockDeviceMapping', `Volume of size ${size}GB is smaller than snapshot, expect size >= ${image.sizeGiB}GB`);
      rootSize = size ?? rootSize;
      rootType = type ?? rootType;
      rootEncrypted = bool(ebs, 'Encrypted') ?? rootEncrypted;
      rootDeleteOnTermination = bool(ebs, 'DeleteOnTermination') ?? rootDeleteOnTermination;
    }
    const allowedTagTypes = ['instance', 'volume', 'network-interface', 'spot-instances-request'];
    const instanceTags = this.tagsFor(p, 'instance', allowedTagTypes);
    const volumeTags = this.tagsFor(p, 'volume', allowedTagTypes);

    if (this.faults.noCapacity.some((f) => (f.instanceType === undefined || f.instanceType === instanceType) && (f.zone === undefined || f.zone === subnet.zone))) {
      throw new ApiError(
        500,
        'InsufficientInstanceCapacity',
        `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${subnet.zone}). Our system will be working on provisioning additional capacity. You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${this.zones.filter((z) => z !== subnet.zone).join(', ')}.`,
      );
    }
    const free = subnet.last - subnet.next + 1;
    if (this.options.backend && free < minCount) throw new ApiError(400, 'InsufficientFreeAddressesInSubnet', `There are not enough free addresses in subnet '${subnet.subnetId}' to satisfy the requested number of instances.`);

    const reservationId = `r-${hex(8)}`;
    const count = this.options.backend ? Math.min(maxCount, free) : maxCount;
    const members: FakeInstance[] = [];
    for (let index = 0; index < count; index++) {
      const instanceId = `i-${hex(8)}${hex(1).slice(0, 1)}`;
      const volumeId = `vol-${hex(8)}${hex(1).slice(0, 1)}`;
      const now = new Date();
      this.volumes.set(volumeId, { volumeId, size: rootSize, volumeType: rootType, encrypted: rootEncrypted, deleteOnTermination: rootDeleteOnTermination, zone: subnet.zone, instanceId, device: image.rootDeviceName, state: 'in-use', tags: volumeTags.map((t) => ({ ...t })), createTime: now });
      const instance: FakeInstance = {
        instanceId,
        reservationId,
        imageId,
        instanceType,
        architecture: image.architecture,
        zone: subnet.zone,
        subnetId: subnet.subnetId,
        vpcId: subnet.vpcId,
        ...(keyName ? { keyName } : {}),
        groupIds: [...groupIds],
        tags: instanceTags.map((t) => ({ ...t })),
        state: 'pending',
        launchTime: now,
        clientToken,
        amiLaunchIndex: index,
        ...(this.options.backend ? { privateIp: this.allocateIp(subnet) } : {}),
        hasPublicIp: associatePublic ?? true,
        httpTokens,
        httpEndpoint,
        hopLimit,
        spot: marketType === 'spot',
        ...(userData !== undefined ? { userData } : {}),
        ...(profileName ? { iamInstanceProfile: profileName } : {}),
        monitoring: bool(sub(p, 'Monitoring'), 'Enabled') === true,
        ebsOptimized: bool(p, 'EbsOptimized') === true,
        rootDeviceName: image.rootDeviceName,
        volumeIds: [volumeId],
        loginUser: image.loginUser,
        work: Promise.resolve(),
        pendingUntil: Date.now() + this.faults.pendingAtLeastMs,
      };
      this.instances.set(instanceId, instance);
      members.push(instance);
      instance.work = this.boot(instance, key);
    }
    if (clientToken) this.clientTokens.set(clientToken, { fingerprint, reservationId });
    return this.renderReservation(reservationId, members);
  }

  /** Starts the backing host and moves the instance to `running` once its sshd answers. */
  private async boot(instance: FakeInstance, key: FakeKeyPair | undefined): Promise<void> {
    const backend = this.options.backend;
    if (!backend) {
      instance.state = 'running';
      return;
    }
    try {
      instance.host = await backend.launch({
        instanceId: instance.instanceId,
        ip: instance.privateIp!,
        hostname: `ip-${instance.privateIp!.replace(/\./g, '-')}`,
        user: instance.loginUser,
        ...(key ? { authorizedKey: key.publicKey } : {}),
        ...(instance.userData !== undefined ? { userData: instance.userData } : {}),
        blockSsh: this.faults.neverAnswerSsh,
      });
      await this.untilSshOrGone(instance);
    } catch (error) {
      if (instance.state === 'pending') {
        instance.state = 'terminated';
        instance.stateReason = { code: 'Server.InternalError', message: `Server.InternalError: Internal error on launch (${(error as Error).message})` };
        this.releaseVolumes(instance);
      }
    }
  }

  private async untilSshOrGone(instance: FakeInstance): Promise<void> {
    const blocked = this.faults.neverAnswerSsh;
    for (;;) {
      if (instance.state !== 'pending') return;
      // A host whose SSH is blocked still boots: the instance runs, sshd never answers.
      if (blocked || (await instance.host!.answersSsh())) {
        instance.state = 'running';
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private transition(p: FormTree, change: (i: FakeInstance) => void): Record<string, XmlValue> {
    const ids = strList(p, 'InstanceId');
    if (ids.length === 0) throw new ApiError(400, 'MissingParameter', 'The request must contain the parameter InstanceId');
    const instances = ids.map((id) => this.instanceById(id));
    const changes = instances.map((i) => {
      const previous = this.stateOf(i);
      change(i);
      const current = this.stateOf(i);
      return { instanceId: i.instanceId, currentState: { code: STATE_CODES[current], name: current }, previousState: { code: STATE_CODES[previous], name: previous } };
    });
    return { instancesSet: changes };
  }

  private start(i: FakeInstance): void {
    if (i.state === 'running' || i.state === 'pending') return;
    if (i.state !== 'stopped') throw new ApiError(400, 'IncorrectInstanceState', `The instance '${i.instanceId}' is not in a state from which it can be started.`);
    i.state = 'pending';
    i.stateReason = undefined;
    i.pendingUntil = Date.now() + this.faults.pendingAtLeastMs;
    if (!i.host) {
      i.state = 'running';
      return;
    }
    // A stopped instance gave its address up; it comes back on another one of its subnet.
    const subnet = this.subnets.find((s) => s.subnetId === i.subnetId)!;
    i.privateIp = this.allocateIp(subnet);
    i.work = i.work
      .then(async () => {
        await i.host!.start(i.privateIp!);
        await this.untilSshOrGone(i);
      })
      .catch(() => undefined);
  }

  private stop(i: FakeInstance, force: boolean): void {
    if (i.state === 'stopped' || (i.state === 'stopping' && !force)) return;
    if (i.state === 'terminated' || i.state === 'shutting-down') throw new ApiError(400, 'IncorrectInstanceState', `The instance '${i.instanceId}' is not in a state from which it can be stopped.`);
    if (i.spot) throw new ApiError(400, 'UnsupportedOperation', `The instance '${i.instanceId}' is a spot instance and cannot be stopped (one-time spot request).`);
    i.state = 'stopping';
    i.stateReason = { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' };
    i.work = i.work
      .then(async () => {
        if (i.host) await (force ? i.host.kill() : i.host.stop());
      })
      .catch(() => undefined)
      .then(() => {
        if (i.state === 'stopping') i.state = 'stopped';
      });
  }

  private terminate(i: FakeInstance): void {
    if (i.state === 'terminated' || i.state === 'shutting-down') return;
    i.state = 'shutting-down';
    i.stateReason = { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' };
    i.work = i.work
      .catch(() => undefined)
      .then(async () => {
        if (i.host) await i.host.remove();
      })
      .catch(() => undefined)
      .then(() => {
        i.state = 'terminated';
        i.host = undefined;
        this.releaseVolumes(i);
      });
  }

  private releaseVolumes(i: FakeInstance): void {
    for (const id of i.volumeIds) {
      const volume = this.volumes.get(id);
      if (!volume) continue;
      volume.state = volume.deleteOnTermination ? 'deleted' : 'available';
      delete volume.instanceId;
    }
  }
}
