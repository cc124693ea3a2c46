/**
 * The ec2 driver: an instance in the default VPC (or a given subnet), its own imported key
 * pair, and a security group per cluster that opens the swarm ports only between members.
 * Loaded only when an ec2 machine is used (it brings in the AWS SDK).
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RebootInstancesCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  type Instance,
  type RunInstancesCommandInput,
  type SecurityGroup,
  type Tag,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import {
  DriverError,
  debug,
  isDriverError,
  waitFor,
  waitForSsh,
  type Driver,
  type DriverContext,
  type DriverImplementation,
  type HostAddresses,
  type HostState,
  type PortToOpen,
  type ResourceEntry,
  type SshTarget,
} from '../kit/index.js';
import { errorCode, openApi, resolveRegion, type Ec2Api } from './api.js';
import { hostKeysFromConsole } from './console.js';
import { DEFAULT_IMAGE_PARAMETER_PREFIX, DEFAULT_SSH_USER, type Ec2Options, type Ec2State } from './definition.js';
import { desiredRules, missingRules, publishedPortRules, replacedRules, toPermissions, type Rule } from './firewall.js';

type Ec2Context = DriverContext<Ec2Options, Ec2State>;

const MANAGED_TAG = 'tmachine:managed';
const MACHINE_TAG = 'tmachine:machine';
const CLUSTER_TAG = 'tmachine:cluster';
const USER_DATA_LIMIT = 16_384;

/** Waiter pacing: EC2's own defaults poll every 15 s; instances here are up within seconds. */
const WAIT = { minDelay: 2, maxDelay: 10 };
const RUNNING_WAIT_SECONDS = 600;
const GROUP_DELETE_DEADLINE_MS = 300_000;

interface Zone {
  zone: string;
  subnetId: string;
}

/** Everything resolved before anything is made: image, user, network. */
interface LaunchPlan {
  imageId: string;
  architecture: string;
  rootDeviceName: string;
  sshUser: string;
  vpcId: string;
  zones: Zone[];
  userGroupIds: string[];
  userData: string | undefined;
}

async function withApi<T>(context: Ec2Context, work: (api: Ec2Api) => Promise<T>): Promise<T> {
  const region = context.state.region ?? (await resolveRegion(context.options));
  context.state.region = region;
  const api = openApi(context.options, region);
  try {
    return await work(api);
  } finally {
    api.close();
  }
}

function qualifiedZone(zone: string, region: string): string {
  return /^[a-z]$/.test(zone) ? `${region}${zone}` : zone;
}

function userTags(options: Ec2Options): Tag[] {
  if (!options.tags) return [];
  const parts = options.tags.split(',');
  const tags: Tag[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) tags.push({ Key: parts[i]!.trim(), Value: parts[i + 1]!.trim() });
  return tags;
}

// ------------------------------------------------------------------------------------------
// Preparing a launch (checked before anything is made)

const plans = new Map<string, Promise<LaunchPlan>>();

/** One plan per option set per process: `swarm bootstrap` opens many drivers with the same options. */
function planFor(api: Ec2Api, context: Ec2Context): Promise<LaunchPlan> {
  const key = JSON.stringify([api.region, context.options, context.engineArch]);
  let plan = plans.get(key);
  if (!plan) {
    plan = preparePlan(api, context.options, context.engineArch);
    plans.set(key, plan);
    plan.catch(() => plans.delete(key));
  }
  return plan;
}

async function preparePlan(api: Ec2Api, options: Ec2Options, engineArch: string | undefined): Promise<LaunchPlan> {
  const types = await api.call('DescribeInstanceTypes', () => api.ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: options.instanceTypes as _InstanceType[] })));
  const archOf = new Map((types.InstanceTypes ?? []).map((t) => [t.InstanceType ?? '', t.ProcessorInfo?.SupportedArchitectures ?? []]));
  const architectures = new Set(options.instanceTypes.map((t) => (archOf.get(t)?.includes('arm64') ? 'arm64' : 'x86_64')));
  if (architectures.size > 1) {
    throw new DriverError('invalid-input', `--ec2-instance-type mixes x86_64 and arm64 types (${options.instanceTypes.join(', ')})`, { hint: 'list types of one architecture: the image is chosen for it' });
  }
  const architecture = [...architectures][0]!;
  // The engine bundle must run on the instances: uname's aarch64 is EC2's arm64.
  const bundleArchitecture = engineArch === 'aarch64' ? 'arm64' : engineArch;
  if (bundleArchitecture && bundleArchitecture !== architecture) {
    throw new DriverError('invalid-input', `the engine bundle is for ${engineArch} but ${options.instanceTypes.join(', ')} ${options.instanceTypes.length > 1 ? 'are' : 'is'} ${architecture}`, {
      hint: architecture === 'arm64' ? 'give an arm64 bundle with --engine-bundle, or pick an x86_64 instance type' : 'give an x86_64 bundle with --engine-bundle, or pick an arm64 instance type',
    });
  }

  let imageId = options.ami;
  if (!imageId) {
    const name = options.imageParameter ?? `${DEFAULT_IMAGE_PARAMETER_PREFIX}${architecture === 'arm64' ? 'arm64' : 'amd64'}`;
    const parameter = await api.call('ssm:GetParameter', () => api.ssm.send(new GetParameterCommand({ Name: name })));
    imageId = parameter.Parameter?.Value;
    if (!imageId?.startsWith('ami-')) throw new DriverError('invalid-input', `SSM GetParameter: ${name} does not name an image (${imageId ?? 'empty'})`, { hint: 'pass --ec2-ami or another --ec2-image-parameter' });
  }
  const images = await api.call('DescribeImages', () => api.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })));
  const image = images.Images?.[0];
  if (!image) throw new DriverError('not-found', `EC2 DescribeImages: the image ${imageId} does not exist in ${api.region}`, { hint: 'image ids differ per region: check --ec2-ami and --ec2-region' });
  if (image.Architecture !== architecture) {
    throw new DriverError('invalid-input', `image ${imageId} is ${image.Architecture ?? 'of unknown architecture'} but ${options.instanceTypes.join(', ')} ${options.instanceTypes.length > 1 ? 'are' : 'is'} ${architecture}`, {
      hint: 'pick an instance type and an image of the same architecture',
    });
  }

  const { vpcId, zones } = await network(api, options);
  const userGroupIds = await userGroups(api, options, vpcId);

  let userData: string | undefined;
  if (options.userDataFile) {
    try {
      userData = await fs.readFile(options.userDataFile, 'utf8');
    } catch (error) {
      throw new DriverError('invalid-input', `--ec2-userdata ${options.userDataFile}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be read'}`, { hint: 'give a readable cloud-init user-data file' });
    }
  }
  return { imageId, architecture, rootDeviceName: options.deviceName ?? image.RootDeviceName ?? '/dev/xvda', sshUser: options.sshUser ?? DEFAULT_SSH_USER, vpcId, zones, userGroupIds, userData };
}

/** The VPC and the subnets to try, one per zone, in order. */
async function network(api: Ec2Api, options: Ec2Options): Promise<{ vpcId: string; zones: Zone[] }> {
  if (options.subnetId) {
    const subnets = await api.call('DescribeSubnets', () => api.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [options.subnetId!] })));
    const subnet = subnets.Subnets?.[0];
    if (!subnet?.VpcId || !subnet.AvailabilityZone) throw new DriverError('not-found', `EC2 DescribeSubnets: subnet ${options.subnetId} does not exist in ${api.region}`, { hint: 'check --ec2-subnet-id and --ec2-region' });
    return { vpcId: subnet.VpcId, zones: [{ zone: subnet.AvailabilityZone, subnetId: options.subnetId }] };
  }
  let vpcId = options.vpcId;
  if (!vpcId) {
    const vpcs = await api.call('DescribeVpcs', () => api.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] })));
    vpcId = vpcs.Vpcs?.[0]?.VpcId;
    if (!vpcId) throw new DriverError('invalid-input', `EC2 DescribeVpcs: ${api.region} has no default VPC`, { hint: 'pass --ec2-vpc-id or --ec2-subnet-id' });
  }
  const wanted = options.zone ? [qualifiedZone(options.zone, api.region)] : undefined;
  const zoneNames =
    wanted ??
    ((await api.call('DescribeAvailabilityZones', () => api.ec2.send(new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'state', Values: ['available'] }] })))).AvailabilityZones ?? [])
      .map((z) => z.ZoneName ?? '')
      .filter(Boolean);
  const subnets = (await api.call('DescribeSubnets', () => api.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId!] }] })))).Subnets ?? [];
  const zones: Zone[] = [];
  for (const zone of zoneNames) {
    const inZone = subnets.filter((s) => s.AvailabilityZone === zone && s.SubnetId);
    const subnet = inZone.find((s) => s.DefaultForAz) ?? inZone[0];
    if (subnet) zones.push({ zone, subnetId: subnet.SubnetId! });
  }
  if (zones.length === 0) {
    throw new DriverError('invalid-input', `EC2 DescribeSubnets: VPC ${vpcId} has no subnet in ${wanted ? wanted[0] : api.region}`, { hint: 'pass --ec2-subnet-id, or another --ec2-zone' });
  }
  return { vpcId, zones };
}

/** Groups the user passed: attached as they are, never edited. */
async function userGroups(api: Ec2Api, options: Ec2Options, vpcId: string): Promise<string[]> {
  if (options.securityGroups.length === 0) return [];
  const ids = options.securityGroups.filter((g) => /^sg-[0-9a-f]+$/.test(g));
  const names = options.securityGroups.filter((g) => !ids.includes(g));
  const found: string[] = [...ids];
  if (ids.length > 0) await api.call('DescribeSecurityGroups', () => api.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: ids })));
  if (names.length > 0) {
    const groups = await api.call('DescribeSecurityGroups', () => api.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }, { Name: 'group-name', Values: names }] })));
    for (const name of names) {
      const group = groups.SecurityGroups?.find((g) => g.GroupName === name);
      if (!group?.GroupId) throw new DriverError('not-found', `EC2 DescribeSecurityGroups: security group ${name} does not exist in ${vpcId}`, { hint: 'check --ec2-security-group' });
      found.push(group.GroupId);
    }
  }
  return found;
}

// ------------------------------------------------------------------------------------------
// Key pair and security group

function keyPairName(context: Ec2Context): string {
  const digest = createHash('sha256').update(context.sshPublicKey.trim().split(/\s+/).slice(0, 2).join(' ')).digest('hex').slice(0, 8);
  return `tmachine-${context.machineName}-${digest}`;
}

/** The machine's own key, imported once: found by its tag first (a re-run after a crash). */
async function ensureKeyPair(api: Ec2Api, context: Ec2Context): Promise<string> {
  const name = keyPairName(context);
  const record = (keyPairId: string) => context.undo.record({ kind: 'key-pair', id: keyPairId, label: `key pair ${name}`, details: { region: api.region, keyName: name } });
  const byTag = await api.call('DescribeKeyPairs', () =>
    api.ec2.send(new DescribeKeyPairsCommand({ Filters: [{ Name: `tag:${MACHINE_TAG}`, Values: [context.machineName] }, { Name: 'key-name', Values: [name] }] })),
  );
  const existing = byTag.KeyPairs?.[0];
  if (existing?.KeyPairId) {
    await record(existing.KeyPairId);
    return name;
  }
  const tags: Tag[] = [
    { Key: 'Name', Value: name },
    { Key: MANAGED_TAG, Value: 'true' },
    { Key: MACHINE_TAG, Value: context.machineName },
  ];
  try {
    const imported = await api.call('ImportKeyPair', () =>
      api.ec2.send(new ImportKeyPairCommand({ KeyName: name, PublicKeyMaterial: new TextEncoder().encode(context.sshPublicKey.trim()), TagSpecifications: [{ ResourceType: 'key-pair', Tags: tags }] })),
    );
    await record(imported.KeyPairId!);
    return name;
  } catch (error) {
    if (errorCode(error) === 'InvalidKeyPair.Duplicate') {
      throw new DriverError('already-exists', `EC2 ImportKeyPair: a key pair named ${name} exists and was not made by tmachine for ${context.machineName}`, { hint: 'delete that key pair, or choose another machine name' });
    }
    throw error;
  }
}

function groupName(context: Ec2Context): string {
  return context.cluster ? `tmachine-${context.cluster.name}` : `tmachine-${context.machineName}`;
}

const isManaged = (group: SecurityGroup) => (group.Tags ?? []).some((t) => t.Key === MANAGED_TAG && t.Value === 'true');

async function findGroup(api: Ec2Api, vpcId: string, name: string): Promise<SecurityGroup | undefined> {
  const groups = await api.call('DescribeSecurityGroups', () => api.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }, { Name: 'group-name', Values: [name] }] })));
  return groups.SecurityGroups?.[0];
}

/**
 * The cluster's (or machine's) group with every rule it needs. A group of that name that
 * tmachine did not make is never edited: that is an error.
 */
async function ensureSecurityGroup(api: Ec2Api, contexts: Ec2Context[], vpcId: string): Promise<string> {
  const lead = contexts[0]!;
  const name = groupName(lead);
  let group = await findGroup(api, vpcId, name);
  if (!group) {
    const tags: Tag[] = [
      { Key: 'Name', Value: name },
      { Key: MANAGED_TAG, Value: 'true' },
      lead.cluster ? { Key: CLUSTER_TAG, Value: lead.cluster.name } : { Key: MACHINE_TAG, Value: lead.machineName },
    ];
    const description = lead.cluster ? `tmachine swarm ${lead.cluster.name}` : `tmachine machine ${lead.machineName}`;
    try {
      const created = await api.call('CreateSecurityGroup', () => api.ec2.send(new CreateSecurityGroupCommand({ GroupName: name, Description: description, VpcId: vpcId, TagSpecifications: [{ ResourceType: 'security-group', Tags: tags }] })));
      group = { GroupId: created.GroupId!, GroupName: name, Tags: tags, IpPermissions: [] };
    } catch (error) {
      // Another machine of the cluster made it a moment ago.
      if (errorCode(error) !== 'InvalidGroup.Duplicate') throw error;
      group = await findGroup(api, vpcId, name);
      if (!group) throw error;
    }
  }
  const groupId = group.GroupId!;
  if (!isManaged(group)) {
    throw new DriverError('already-exists', `security group ${name} (${groupId}) in ${vpcId} was not made by tmachine, and tmachine does not edit it`, {
      hint: lead.cluster ? 'use another cluster name, or delete that group' : 'use another machine name, or delete that group',
    });
  }
  for (const context of contexts) {
    await context.undo.record({ kind: 'security-group', id: groupId, label: `security group ${name}`, shared: true, details: { region: api.region, vpcId, name } });
  }

  const desired = desiredRules(lead.options.sourceCidrs, lead.options.openPorts, lead.cluster);
  await authorize(api, groupId, missingRules(desired, group.IpPermissions ?? [], groupId));
  if (lead.options.sourceCidrs.includes('0.0.0.0/0')) {
    lead.note(`security group ${name}: SSH (22) and the engine (2376) are open to 0.0.0.0/0; SSH takes only the machine's key and the engine only tmachine's client certificate (narrow with --ec2-source-cidr)`);
  }
  return groupId;
}

/** Adds the rules; one a parallel command added already (InvalidPermission.Duplicate) counts as added. */
async function authorize(api: Ec2Api, groupId: string, rules: Rule[]): Promise<void> {
  if (rules.length === 0) return;
  try {
    await api.call('AuthorizeSecurityGroupIngress', () => api.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: toPermissions(rules, groupId) })));
  } catch (error) {
    if (errorCode(error) !== 'InvalidPermission.Duplicate') throw error;
    // A parallel command added some of them: add the rest one by one.
    for (const rule of rules) {
      await api
        .call('AuthorizeSecurityGroupIngress', () => api.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: toPermissions([rule], groupId) })))
        .catch((e: unknown) => {
          if (errorCode(e) !== 'InvalidPermission.Duplicate') throw e;
        });
    }
  }
}

/**
 * A stack's published ports in the machine's group (the cluster's, shared by its members),
 * from `cidr` only: rules `--open-ports` added for those ports from another range are
 * revoked, the missing ones added. The rules live in the group, which goes with the last
 * machine that uses it, so there is nothing more to record.
 */
async function openPublishedPorts(api: Ec2Api, context: Ec2Context, ports: PortToOpen[], cidr: string): Promise<string | undefined> {
  const groupId = context.state.securityGroupId;
  if (!groupId) return undefined;
  let group: SecurityGroup | undefined;
  try {
    group = (await api.call('DescribeSecurityGroups', () => api.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] })))).SecurityGroups?.[0];
  } catch (error) {
    if (errorCode(error) !== 'InvalidGroup.NotFound') throw error;
  }
  if (!group) throw new DriverError('not-found', `EC2 DescribeSecurityGroups: the security group ${groupId} of ${context.machineName} does not exist`, { hint: `recreate the machine: tmachine rm ${context.machineName}` });
  const name = group.GroupName ?? groupId;
  if (!isManaged(group)) throw new DriverError('already-exists', `security group ${name} (${groupId}) was not made by tmachine, and tmachine does not edit it`);
  const wanted = publishedPortRules(ports, cidr);
  const stale = replacedRules(wanted, group.IpPermissions ?? []);
  if (stale.length > 0) {
    // Already revoked (by a parallel command) is revoked: the answer lists it as unknown.
    await api.call('RevokeSecurityGroupIngress', () => api.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: toPermissions(stale, groupId) }))).catch((e: unknown) => {
      if (errorCode(e) !== 'InvalidPermission.NotFound') throw e;
    });
  }
  const missing = missingRules(wanted, group.IpPermissions ?? [], groupId);
  await authorize(api, groupId, missing);
  const list = [...new Set(ports.map((p) => `${p.port}/${p.protocol}`))].join(', ');
  const changed = stale.length > 0 || missing.length > 0;
  return `security group ${name} (${groupId}): ${list} from ${cidr}${changed ? '' : ' (already open)'}`;
}

// ------------------------------------------------------------------------------------------
// Launching

/** Cloud-config for a batch: one RunInstances carries one key pair, so the others' keys come as user data. */
function batchUserData(plan: LaunchPlan, extraKeys: string[]): string | undefined {
  if (extraKeys.length === 0) return plan.userData;
  const config = ['#cloud-config', 'ssh_authorized_keys:', ...extraKeys.map((k) => `  - ${k.trim()}`), ''].join('\n');
  if (!plan.userData) return config;
  const boundary = `tmachine-${randomUUID()}`;
  const part = (text: string) => `--${boundary}\nContent-Type: ${text.startsWith('#cloud-config') ? 'text/cloud-config' : 'text/x-shellscript'}; charset="utf-8"\n\n${text}\n`;
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n${part(config)}${part(plan.userData)}--${boundary}--\n`;
}

function sshHostOf(options: Ec2Options, state: Ec2State): string | undefined {
  if (options.privateAddressOnly || options.usePrivateAddress) return state.privateIp;
  return state.publicIp ?? state.privateIp;
}

async function describe(api: Ec2Api, ids: string[]): Promise<Instance[]> {
  const out = await api.call('DescribeInstances', () => api.ec2.send(new DescribeInstancesCommand({ InstanceIds: ids })));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

function remember(state: Ec2State, instance: Instance): void {
  if (instance.PrivateIpAddress) state.privateIp = instance.PrivateIpAddress;
  if (instance.PublicIpAddress) state.publicIp = instance.PublicIpAddress;
  else delete state.publicIp;
}

async function waitRunning(api: Ec2Api, ids: string[], signal: AbortSignal | undefined): Promise<void> {
  try {
    await waitUntilInstanceRunning({ client: api.ec2, maxWaitTime: RUNNING_WAIT_SECONDS, ...WAIT, ...(signal ? { abortSignal: signal } : {}) }, { InstanceIds: ids });
  } catch (error) {
    if (signal?.aborted) throw new DriverError('interrupted', `interrupted while ${ids.join(', ')} ${ids.length > 1 ? 'were' : 'was'} pending`);
    if (error instanceof DriverError) throw error;
    const instances = await describe(api, ids).catch(() => []);
    const stuck = instances.find((i) => i.State?.Name !== 'running');
    throw new DriverError('failed', `EC2 DescribeInstances: ${stuck?.InstanceId ?? ids.join(', ')} did not reach running (${stuck?.State?.Name ?? 'unknown'}${stuck?.StateReason?.Message ? `: ${stuck.StateReason.Message}` : ''})`, {
      hint: 'see the instance in the EC2 console',
      cause: error,
    });
  }
}

/** Tries each instance type in order, and in each every zone, until one has capacity. */
async function runInstances(api: Ec2Api, contexts: Ec2Context[], plan: LaunchPlan, keyName: string, groupId: string): Promise<{ instances: Instance[]; instanceType: string; zone: Zone }> {
  const lead = contexts[0]!;
  const options = lead.options;
  const batch = contexts.length > 1;
  const baseTags: Tag[] = [{ Key: MANAGED_TAG, Value: 'true' }, ...(lead.cluster ? [{ Key: CLUSTER_TAG, Value: lead.cluster.name }] : []), ...userTags(options)];
  const instanceTags: Tag[] = batch ? baseTags : [{ Key: 'Name', Value: lead.machineName }, { Key: MACHINE_TAG, Value: lead.machineName }, ...baseTags];
  const userData = batchUserData(
    plan,
    contexts.slice(1).map((c) => c.sshPublicKey),
  );
  if (userData && Buffer.byteLength(userData) > USER_DATA_LIMIT) throw new DriverError('invalid-input', `user data is ${Buffer.byteLength(userData)} bytes; EC2 takes at most ${USER_DATA_LIMIT}`, { hint: 'shorten --ec2-userdata' });
  const groups = [groupId, ...plan.userGroupIds];
  const failed: string[] = [];
  for (const [typeIndex, instanceType] of options.instanceTypes.entries()) {
    for (const [zoneIndex, zone] of plan.zones.entries()) {
      if (lead.signal.aborted) throw new DriverError('interrupted', 'interrupted before the instance was launched');
      const input: RunInstancesCommandInput = {
        ImageId: plan.imageId,
        InstanceType: instanceType as _InstanceType,
        MinCount: contexts.length,
        MaxCount: contexts.length,
        KeyName: keyName,
        // Same token for the same attempt: a retried or re-run call launches nothing new.
        ClientToken: `${lead.state.launchToken}-${typeIndex}-${zoneIndex}`,
        MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 2 },
        BlockDeviceMappings: [
          { DeviceName: plan.rootDeviceName, Ebs: { VolumeSize: options.rootSize, VolumeType: options.volumeType, Encrypted: true, DeleteOnTermination: true, ...(options.kmsKey ? { KmsKeyId: options.kmsKey } : {}) } },
        ],
        TagSpecifications: [
          { ResourceType: 'instance', Tags: instanceTags },
          { ResourceType: 'volume', Tags: instanceTags },
        ],
        ...(options.privateAddressOnly
          ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: zone.subnetId, Groups: groups, AssociatePublicIpAddress: false, DeleteOnTermination: true }] }
          : { SubnetId: zone.subnetId, SecurityGroupIds: groups }),
        ...(options.spot
          ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate', ...(options.spotPrice ? { MaxPrice: options.spotPrice } : {}) } } }
          : {}),
        ...(options.iamInstanceProfile ? { IamInstanceProfile: options.iamInstanceProfile.startsWith('arn:') ? { Arn: options.iamInstanceProfile } : { Name: options.iamInstanceProfile } } : {}),
        ...(userData ? { UserData: Buffer.from(userData).toString('base64') } : {}),
        ...(options.monitoring ? { Monitoring: { Enabled: true } } : {}),
        ...(options.ebsOptimized ? { EbsOptimized: true } : {}),
      };
      try {
        const out = await api.call('RunInstances', () => api.ec2.send(new RunInstancesCommand(input)));
        const instances = [...(out.Instances ?? [])].sort((a, b) => (a.AmiLaunchIndex ?? 0) - (b.AmiLaunchIndex ?? 0));
        if (failed.length > 0) lead.note(`${failed.join(', ')}: no capacity; launched ${instanceType} in ${zone.zone}`);
        return { instances, instanceType, zone };
      } catch (error) {
        if (!isDriverError(error, 'capacity')) throw error;
        failed.push(`${instanceType} in ${zone.zone}`);
        debug('ec2', `no capacity for ${instanceType} in ${zone.zone}; trying the next`);
      }
    }
  }
  throw new DriverError('capacity', `EC2 RunInstances: no capacity (InsufficientInstanceCapacity) for ${options.instanceTypes.join(', ')} in ${plan.zones.map((z) => z.zone).join(', ')}`, {
    hint: 'list more types in --ec2-instance-type, or try another region',
  });
}

/** Waits for SSH and reads the console's host keys alongside. */
async function awaitHost(api: Ec2Api, context: Ec2Context): Promise<void> {
  const options = context.options;
  const host = sshHostOf(options, context.state);
  const instanceId = context.state.instanceId!;
  if (!host) throw new DriverError('failed', `EC2 DescribeInstances: ${instanceId} has no ${options.privateAddressOnly || options.usePrivateAddress ? 'private' : ''} address`, { hint: 'check the subnet' });
  const sshMs = options.sshTimeoutSeconds * 1000;
  const consoleMs = options.consoleTimeoutSeconds * 1000;
  const stopConsole = new AbortController();
  const consoleKeys = waitFor(() => consoleHostKeys(api, instanceId), {
    what: `host keys on the console of ${instanceId}`,
    deadlineMs: sshMs + consoleMs,
    intervalMs: 1_000,
    maxIntervalMs: 3_000,
    signal: AbortSignal.any([context.signal, stopConsole.signal]),
  }).catch(() => undefined);
  try {
    await waitForSsh(context.machineName, host, 22, sshMs, context.signal);
    const timer = setTimeout(() => stopConsole.abort(), consoleMs);
    const keys = await consoleKeys;
    clearTimeout(timer);
    if (keys) {
      context.state.hostKeys = keys;
      await context.saveState();
    } else if (!context.signal.aborted) {
      context.note(`the console of ${instanceId} showed no SSH host keys within ${options.consoleTimeoutSeconds}s; the host key is pinned on first contact`);
    }
  } finally {
    stopConsole.abort();
  }
}

async function consoleHostKeys(api: Ec2Api, instanceId: string): Promise<string[] | undefined> {
  const out = await api.call('GetConsoleOutput', () => api.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true })));
  return out.Output ? hostKeysFromConsole(Buffer.from(out.Output, 'base64').toString('utf8')) : undefined;
}

/** Launches N identical machines (N=1 for create) in one RunInstances and waits until each answers SSH. */
async function launch(contexts: Ec2Context[]): Promise<void> {
  const lead = contexts[0]!;
  await withApi(lead, async (api) => {
    const plan = await planFor(api, lead);
    lead.state.launchToken ??= randomUUID();
    for (const context of contexts) {
      Object.assign(context.state, { region: api.region, imageId: plan.imageId, sshUser: plan.sshUser, vpcId: plan.vpcId });
      await context.saveState();
    }
    const keyName = await ensureKeyPair(api, lead);
    const groupId = await ensureSecurityGroup(api, contexts, plan.vpcId);
    const { instances, instanceType, zone } = await runInstances(api, contexts, plan, keyName, groupId);
    if (instances.length !== contexts.length) throw new DriverError('failed', `EC2 RunInstances: launched ${instances.length} instances for ${contexts.length} machines`);
    for (const [index, context] of contexts.entries()) {
      const instance = instances[index]!;
      await context.undo.record({ kind: 'instance', id: instance.InstanceId!, label: `instance ${instance.InstanceId}`, details: { region: api.region } });
      Object.assign(context.state, { instanceId: instance.InstanceId, instanceType, zone: zone.zone, subnetId: zone.subnetId, keyName, securityGroupId: groupId });
      await context.saveState();
    }
    if (contexts.length > 1) {
      // One launch tags every instance alike; each machine's own name follows.
      for (const [index, context] of contexts.entries()) {
        const tags = [{ Key: 'Name', Value: context.machineName }, { Key: MACHINE_TAG, Value: context.machineName }];
        await api.call('CreateTags', () => api.ec2.send(new CreateTagsCommand({ Resources: [instances[index]!.InstanceId!], Tags: tags })));
      }
    }
    const ids = instances.map((i) => i.InstanceId!);
    for (const context of contexts) context.report(`waiting for ${context.state.instanceId} to run`);
    await waitRunning(api, ids, lead.signal);
    const running = await describe(api, ids);
    for (const context of contexts) {
      const instance = running.find((i) => i.InstanceId === context.state.instanceId);
      if (instance) remember(context.state, instance);
      const volumes = (instance?.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId).filter((v): v is string => Boolean(v));
      if (contexts.length > 1 && volumes.length > 0) {
        const tags = [{ Key: 'Name', Value: context.machineName }, { Key: MACHINE_TAG, Value: context.machineName }];
        await api.call('CreateTags', () => api.ec2.send(new CreateTagsCommand({ Resources: volumes, Tags: tags })));
      }
      await context.saveState();
      context.report(`waiting for SSH on ${sshHostOf(context.options, context.state) ?? '?'}`);
    }
    await Promise.all(contexts.map((context) => awaitHost(api, context)));
  });
}

// ------------------------------------------------------------------------------------------
// Removing

async function removeInstance(api: Ec2Api, id: string): Promise<void> {
  try {
    await api.call('TerminateInstances', () => api.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })));
  } catch (error) {
    if (errorCode(error) === 'InvalidInstanceID.NotFound') return;
    throw error;
  }
  // Cleanup runs to its end even after Ctrl-C: no abort signal here.
  try {
    await waitUntilInstanceTerminated({ client: api.ec2, maxWaitTime: RUNNING_WAIT_SECONDS, ...WAIT }, { InstanceIds: [id] });
  } catch (error) {
    throw new DriverError('timeout', `EC2 DescribeInstances: ${id} did not terminate within ${RUNNING_WAIT_SECONDS}s`, { cause: error });
  }
}

/** Removes tmachine's group once no other instance uses it; waits out instances still shutting down. */
async function removeGroup(api: Ec2Api, id: string): Promise<void> {
  let group: SecurityGroup | undefined;
  try {
    group = (await api.call('DescribeSecurityGroups', () => api.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [id] })))).SecurityGroups?.[0];
  } catch (error) {
    if (errorCode(error) === 'InvalidGroup.NotFound') return;
    throw error;
  }
  if (!group) return;
  if (!isManaged(group)) {
    debug('ec2', `security group ${id} was not made by tmachine: left as it is`);
    return;
  }
  const users = await api.call('DescribeInstances', () =>
    api.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance.group-id', Values: [id] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] })),
  );
  const inUse = (users.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
  if (inUse.length > 0) {
    debug('ec2', `security group ${id} is still used by ${inUse.join(', ')}: kept for them`);
    return;
  }
  await waitFor(
    async () => {
      try {
        await api.call('DeleteSecurityGroup', () => api.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
        return true;
      } catch (error) {
        const code = errorCode(error);
        if (code === 'InvalidGroup.NotFound') return true;
        // Instances still shutting down hold the group a little longer.
        if (code === 'DependencyViolation') return undefined;
        throw error;
      }
    },
    { what: `EC2 DeleteSecurityGroup ${id} (DependencyViolation)`, deadlineMs: GROUP_DELETE_DEADLINE_MS, intervalMs: 1_000, maxIntervalMs: 5_000 },
  );
}

// ------------------------------------------------------------------------------------------

function hostState(name: string | undefined): HostState {
  switch (name) {
    case 'pending':
      return 'starting';
    case 'running':
      return 'running';
    case 'stopping':
    case 'shutting-down':
      return 'stopping';
    case 'stopped':
      return 'stopped';
    case 'terminated':
      return 'not-found';
    default:
      return 'unknown';
  }
}

class Ec2Driver implements Driver {
  constructor(private readonly context: Ec2Context) {}

  private get instanceId(): string {
    const id = this.context.state.instanceId;
    if (!id) throw new DriverError('not-found', `${this.context.machineName} has no EC2 instance`, { hint: `tmachine rm ${this.context.machineName} forgets it` });
    return id;
  }

  async preCreateCheck(): Promise<void> {
    await withApi(this.context, (api) => planFor(api, this.context).then(() => undefined));
  }

  create(): Promise<void> {
    return launch([this.context]);
  }

  async removeResource(entry: ResourceEntry): Promise<void> {
    const region = typeof entry.details?.['region'] === 'string' ? entry.details['region'] : undefined;
    if (region) this.context.state.region ??= region;
    await withApi(this.context, async (api) => {
      switch (entry.kind) {
        case 'instance':
          return removeInstance(api, entry.id);
        case 'key-pair':
          await api.call('DeleteKeyPair', () => api.ec2.send(new DeleteKeyPairCommand({ KeyPairId: entry.id })));
          return;
        case 'security-group':
          return removeGroup(api, entry.id);
        default:
          debug('ec2', `unknown resource kind ${entry.kind} (${entry.id}): nothing to remove`);
      }
    });
  }

  /** Reads the instance, keeping the record's addresses current (they change across stop and start). */
  private async refresh(api: Ec2Api): Promise<Instance | undefined> {
    try {
      const [instance] = await describe(api, [this.instanceId]);
      if (instance?.State?.Name === 'running') {
        const before = `${this.context.state.publicIp}/${this.context.state.privateIp}`;
        remember(this.context.state, instance);
        if (`${this.context.state.publicIp}/${this.context.state.privateIp}` !== before) await this.context.saveState();
      }
      return instance;
    } catch (error) {
      if (errorCode(error) === 'InvalidInstanceID.NotFound') return undefined;
      throw error;
    }
  }

  async start(): Promise<void> {
    await withApi(this.context, async (api) => {
      await api.call('StartInstances', () => api.ec2.send(new StartInstancesCommand({ InstanceIds: [this.instanceId] })));
      await waitRunning(api, [this.instanceId], this.context.signal);
      await this.refresh(api);
      const host = sshHostOf(this.context.options, this.context.state);
      if (host) await waitForSsh(this.context.machineName, host, 22, this.context.options.sshTimeoutSeconds * 1000, this.context.signal);
    });
  }

  private async stopWith(force: boolean): Promise<void> {
    await withApi(this.context, async (api) => {
      await api.call('StopInstances', () => api.ec2.send(new StopInstancesCommand({ InstanceIds: [this.instanceId], ...(force ? { Force: true } : {}) })));
      try {
        await waitUntilInstanceStopped({ client: api.ec2, maxWaitTime: RUNNING_WAIT_SECONDS, ...WAIT, abortSignal: this.context.signal }, { InstanceIds: [this.instanceId] });
      } catch (error) {
        if (this.context.signal.aborted) throw new DriverError('interrupted', `interrupted while ${this.instanceId} was stopping`);
        throw new DriverError('failed', `EC2 DescribeInstances: ${this.instanceId} did not stop`, { cause: error });
      }
    });
  }

  stop(): Promise<void> {
    return this.stopWith(false);
  }

  kill(): Promise<void> {
    return this.stopWith(true);
  }

  async restart(): Promise<void> {
    await withApi(this.context, async (api) => {
      await api.call('RebootInstances', () => api.ec2.send(new RebootInstancesCommand({ InstanceIds: [this.instanceId] })));
      const host = sshHostOf(this.context.options, this.context.state);
      if (host) await waitForSsh(this.context.machineName, host, 22, this.context.options.sshTimeoutSeconds * 1000, this.context.signal);
    });
  }

  async state(): Promise<HostState> {
    if (!this.context.state.instanceId) return 'not-found';
    return withApi(this.context, async (api) => hostState((await this.refresh(api))?.State?.Name ?? 'terminated'));
  }

  async addresses(): Promise<HostAddresses> {
    if (this.context.state.instanceId) await withApi(this.context, (api) => this.refresh(api));
    const reach = sshHostOf(this.context.options, this.context.state);
    if (!reach) throw new DriverError('not-found', `${this.context.machineName} has no address (is its instance running?)`, { hint: `tmachine start ${this.context.machineName}` });
    return { public: reach, ...(this.context.state.privateIp ? { private: this.context.state.privateIp } : {}) };
  }

  async sshTarget(): Promise<SshTarget> {
    const { public: host } = await this.addresses();
    return { host, port: 22, user: this.context.state.sshUser ?? this.context.options.sshUser ?? DEFAULT_SSH_USER };
  }

  openPorts(ports: PortToOpen[], sourceCidr: string): Promise<string | undefined> {
    return withApi(this.context, (api) => openPublishedPorts(api, this.context, ports, sourceCidr));
  }

  async publishedHostKeys(): Promise<string[] | undefined> {
    if (this.context.state.hostKeys?.length) return this.context.state.hostKeys;
    if (!this.context.state.instanceId) return undefined;
    return withApi(this.context, (api) => consoleHostKeys(api, this.instanceId)).catch(() => undefined);
  }
}

export const implementation: DriverImplementation<Ec2Options, Ec2State> = {
  open: (context) => new Ec2Driver(context),
  /** N identical machines in one RunInstances (MinCount=MaxCount=N); different options launch apart. */
  async createMany(contexts) {
    if (contexts.length === 0) return;
    const groups = new Map<string, Ec2Context[]>();
    for (const context of contexts) {
      const key = JSON.stringify([context.options, context.cluster ?? null]);
      groups.set(key, [...(groups.get(key) ?? []), context]);
    }
    await Promise.all([...groups.values()].map((group) => launch(group)));
  },
};
