/**
 * Contract tests of the fake EC2/SSM endpoint, through the official SDK: what the SDK sends
 * is accepted, what the fake answers parses with the fields the driver reads, errors reach
 * the caller as exceptions named by EC2's code, and state persists between calls.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  RevokeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeImagesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  DescribeVpcsCommand,
  EC2Client,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  StartInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_12_AMD64, DEBIAN_12_ARM64, FakeEc2 } from '../fakes/ec2/server.js';

const credentials = { accessKeyId: 'AKIAFAKECONTRACT0001', secretAccessKey: 'contract-secret-key' };
let fake: FakeEc2;
let ec2: EC2Client;
let ssm: SSMClient;

async function rejection(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  fake = await FakeEc2.start({ instanceProfiles: ['tm-profile'] });
  ec2 = new EC2Client({ region: 'us-east-1', endpoint: fake.url, credentials });
  ssm = new SSMClient({ region: 'us-east-1', endpoint: fake.url, credentials });
});

afterAll(async () => {
  ec2?.destroy();
  ssm?.destroy();
  await fake?.close();
});

describe('fake EC2 through @aws-sdk/client-ec2', () => {
  it('requires a SigV4 Authorization header and answers EC2 error XML without one', async () => {
    const res = await fetch(fake.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=DescribeVpcs&Version=2016-11-15' });
    expect(res.status).toBe(401);
    const text = await res.text();
    expect(text).toContain('<Code>MissingAuthenticationToken</Code>');
    expect(text).toContain('<RequestID>');
  });

  it('answers unknown actions and missing parameters with the real codes', async () => {
    const missing = await rejection(ec2.send(new RunInstancesCommand({ ImageId: DEBIAN_12_AMD64.imageId } as never)));
    expect(missing.name).toBe('MissingParameter');
    expect(missing.message).toContain('MinCount');
    const group = await rejection(ec2.send(new CreateSecurityGroupCommand({ GroupName: 'no-description' } as never)));
    expect(group.name).toBe('MissingParameter');
    expect(group.message).toContain('GroupDescription');
  });

  it('has a default VPC with a default subnet per zone, the Debian images and their SSM parameters', async () => {
    const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
    expect(vpcs.Vpcs?.map((v) => v.VpcId)).toEqual([fake.vpcId]);
    const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [fake.vpcId] }, { Name: 'default-for-az', Values: ['true'] }, { Name: 'availability-zone', Values: ['us-east-1b'] }] }));
    expect(subnets.Subnets).toHaveLength(1);
    expect(subnets.Subnets?.[0]?.AvailabilityZone).toBe('us-east-1b');

    const amd64 = await ssm.send(new GetParameterCommand({ Name: '/aws/service/debian/release/12/latest/amd64' }));
    expect(amd64.Parameter?.Value).toBe(DEBIAN_12_AMD64.imageId);
    expect(amd64.Parameter?.LastModifiedDate).toBeInstanceOf(Date);
    const arm64 = await ssm.send(new GetParameterCommand({ Name: '/aws/service/debian/release/12/latest/arm64' }));
    expect(arm64.Parameter?.Value).toBe(DEBIAN_12_ARM64.imageId);
    const missing = await rejection(ssm.send(new GetParameterCommand({ Name: '/aws/service/debian/release/99/latest/amd64' })));
    expect(missing.name).toBe('ParameterNotFound');

    const images = await ec2.send(new DescribeImagesCommand({ ImageIds: [DEBIAN_12_ARM64.imageId] }));
    expect(images.Images?.[0]?.Architecture).toBe('arm64');
    expect(images.Images?.[0]?.RootDeviceName).toBe('/dev/xvda');
    const nope = await rejection(ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-0000000000000dead'] })));
    expect(nope.name).toBe('InvalidAMIID.NotFound');

    const types = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: ['t3.small', 't4g.small'] }));
    expect(types.InstanceTypes?.map((t) => [t.InstanceType, t.ProcessorInfo?.SupportedArchitectures])).toEqual([
      ['t3.small', ['x86_64']],
      ['t4g.small', ['arm64']],
    ]);
  });

  it('imports key pairs, finds them by tag, refuses a duplicate name', async () => {
    const line = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq9iWqGpsR9n1tJ5Yb9nS8cB1w0Q0o5dN3o8u2C3jN5 tm@test';
    const imported = await ec2.send(
      new ImportKeyPairCommand({ KeyName: 'tm-k1', PublicKeyMaterial: new TextEncoder().encode(line), TagSpecifications: [{ ResourceType: 'key-pair', Tags: [{ Key: 'tmachine:machine', Value: 'k1' }] }] }),
    );
    expect(imported.KeyPairId).toMatch(/^key-/);
    const found = await ec2.send(new DescribeKeyPairsCommand({ Filters: [{ Name: 'tag:tmachine:machine', Values: ['k1'] }], IncludePublicKey: true }));
    expect(found.KeyPairs?.map((k) => k.KeyName)).toEqual(['tm-k1']);
    expect(found.KeyPairs?.[0]?.PublicKey).toBe(line.split(' ').slice(0, 2).join(' '));
    const duplicate = await rejection(ec2.send(new ImportKeyPairCommand({ KeyName: 'tm-k1', PublicKeyMaterial: new TextEncoder().encode(line) })));
    expect(duplicate.name).toBe('InvalidKeyPair.Duplicate');
    const notFound = await rejection(ec2.send(new DescribeKeyPairsCommand({ KeyNames: ['tm-nope'] })));
    expect(notFound.name).toBe('InvalidKeyPair.NotFound');
    const badKey = await rejection(ec2.send(new ImportKeyPairCommand({ KeyName: 'tm-bad', PublicKeyMaterial: new TextEncoder().encode('not a key') })));
    expect(badKey.name).toBe('InvalidKey.Format');
  });

  it('keeps security group rules, including rules that reference a group, and refuses duplicates', async () => {
    const created = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'tm-contract', Description: 'contract', VpcId: fake.vpcId, TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'tmachine:managed', Value: 'true' }] }] }));
    const groupId = created.GroupId!;
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '0.0.0.0/0', Description: 'ssh' }] },
          { IpProtocol: 'tcp', FromPort: 2377, ToPort: 2377, UserIdGroupPairs: [{ GroupId: groupId }] },
          { IpProtocol: '50', UserIdGroupPairs: [{ GroupId: groupId }] },
        ],
      }),
    );
    const described = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }));
    const permissions = described.SecurityGroups?.[0]?.IpPermissions ?? [];
    expect(permissions.map((p) => [p.IpProtocol, p.FromPort, p.ToPort, p.IpRanges?.map((r) => r.CidrIp), p.UserIdGroupPairs?.map((g) => g.GroupId)])).toEqual([
      ['tcp', 22, 22, ['0.0.0.0/0'], []],
      ['tcp', 2377, 2377, [], [groupId]],
      ['50', undefined, undefined, [], [groupId]],
    ]);
    const duplicate = await rejection(ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] })));
    expect(duplicate.name).toBe('InvalidPermission.Duplicate');
    const dupGroup = await rejection(ec2.send(new CreateSecurityGroupCommand({ GroupName: 'tm-contract', Description: 'again', VpcId: fake.vpcId })));
    expect(dupGroup.name).toBe('InvalidGroup.Duplicate');
    const missingPeer = await rejection(ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [{ IpProtocol: 'udp', FromPort: 7946, ToPort: 7946, UserIdGroupPairs: [{ GroupId: 'sg-00000000' }] }] })));
    expect(missingPeer.name).toBe('InvalidGroup.NotFound');
    const byTag = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'tag:tmachine:managed', Values: ['true'] }, { Name: 'group-name', Values: ['tm-contract'] }] }));
    expect(byTag.SecurityGroups?.map((g) => g.GroupId)).toEqual([groupId]);
  });

  it('revokes the rules that match; a rule the group does not have is no error, the answer names it as unknown', async () => {
    const { GroupId: groupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'tm-revoke', Description: 'revoke', VpcId: fake.vpcId }));
    const rule = (cidr: string) => ({ IpProtocol: 'tcp', FromPort: 8080, ToPort: 8080, IpRanges: [{ CidrIp: cidr }] });
    await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [rule('198.51.100.0/24'), rule('203.0.113.0/24')] }));
    const revoked = await ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [rule('198.51.100.0/24'), rule('192.0.2.0/24')] }));
    expect(revoked.Return).toBe(true);
    expect(revoked.UnknownIpPermissions?.map((p) => [p.IpProtocol, p.FromPort, p.IpRanges?.map((r) => r.CidrIp)])).toEqual([['tcp', 8080, ['192.0.2.0/24']]]);
    const left = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId!] }))).SecurityGroups?.[0]?.IpPermissions ?? [];
    expect(left.map((p) => [p.FromPort, p.IpRanges?.map((r) => r.CidrIp)])).toEqual([[8080, ['203.0.113.0/24']]]);
    const noGroup = await rejection(ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: 'sg-0000000000000dead', IpPermissions: [rule('203.0.113.0/24')] })));
    expect(noGroup.name).toBe('InvalidGroup.NotFound');
  });

  it('launches MinCount=MaxCount=N in one reservation, honours ClientToken, and keeps instance state', async () => {
    const group = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'tm-run', Description: 'run', VpcId: fake.vpcId }));
    const input = {
      ImageId: DEBIAN_12_AMD64.imageId,
      InstanceType: 't3.small' as const,
      MinCount: 3,
      MaxCount: 3,
      ClientToken: 'contract-token-1',
      SecurityGroupIds: [group.GroupId!],
      MetadataOptions: { HttpTokens: 'required' as const, HttpEndpoint: 'enabled' as const },
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 20, VolumeType: 'gp3' as const, Encrypted: true, DeleteOnTermination: true } }],
      TagSpecifications: [
        { ResourceType: 'instance' as const, Tags: [{ Key: 'tmachine:managed', Value: 'true' }] },
        { ResourceType: 'volume' as const, Tags: [{ Key: 'tmachine:managed', Value: 'true' }] },
      ],
    };
    const first = await ec2.send(new RunInstancesCommand(input));
    expect(first.Instances).toHaveLength(3);
    const again = await ec2.send(new RunInstancesCommand(input));
    expect(again.ReservationId).toBe(first.ReservationId);
    expect(again.Instances?.map((i) => i.InstanceId)).toEqual(first.Instances?.map((i) => i.InstanceId));
    expect(fake.liveInstances()).toHaveLength(3);
    const mismatch = await rejection(ec2.send(new RunInstancesCommand({ ...input, InstanceType: 't3.medium' })));
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    // The SDK fills in a ClientToken of its own when none is given.
    await ec2.send(new RunInstancesCommand({ ...input, ClientToken: undefined, MinCount: 1, MaxCount: 1 }));
    expect(String((fake.callsOf('RunInstances').at(-1)!.params as Record<string, unknown>)['ClientToken'])).toMatch(/^[0-9a-f-]{36}$/);

    const ids = first.Instances!.map((i) => i.InstanceId!);
    await waitUntilInstanceRunning({ client: ec2, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { InstanceIds: ids });
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
    const instance = described.Reservations?.[0]?.Instances?.[0];
    expect(described.Reservations).toHaveLength(1);
    expect(instance?.State?.Name).toBe('running');
    expect(instance?.MetadataOptions?.HttpTokens).toBe('required');
    expect(instance?.SecurityGroups?.map((g) => g.GroupId)).toEqual([group.GroupId]);
    expect(instance?.Tags).toEqual([{ Key: 'tmachine:managed', Value: 'true' }]);
    // Without a backing host there is no address to report, and none is invented.
    expect(instance?.PublicIpAddress).toBeUndefined();
    expect(instance?.PrivateIpAddress).toBeUndefined();

    const volumes = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [ids[0]!] }] }));
    expect(volumes.Volumes?.map((v) => [v.VolumeType, v.Size, v.Encrypted, v.Attachments?.[0]?.DeleteOnTermination, v.Tags?.[0]?.Key])).toEqual([['gp3', 20, true, true, 'tmachine:managed']]);

    const inUse = await rejection(ec2.send(new DeleteSecurityGroupCommand({ GroupId: group.GroupId! })));
    expect(inUse.name).toBe('DependencyViolation');

    await ec2.send(new StopInstancesCommand({ InstanceIds: [ids[0]!] }));
    await waitUntilInstanceStopped({ client: ec2, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { InstanceIds: [ids[0]!] });
    await ec2.send(new StartInstancesCommand({ InstanceIds: [ids[0]!] }));
    await waitUntilInstanceRunning({ client: ec2, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { InstanceIds: [ids[0]!] });

    const all = fake.liveInstances().map((i) => i.instanceId);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: all }));
    await waitUntilInstanceTerminated({ client: ec2, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { InstanceIds: all });
    const gone = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [ids[0]!] }] }));
    expect(gone.Volumes).toEqual([]);
    await ec2.send(new DeleteSecurityGroupCommand({ GroupId: group.GroupId! }));
    const deleted = await rejection(ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [group.GroupId!] })));
    expect(deleted.name).toBe('InvalidGroup.NotFound');
    const unknown = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })));
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    const console = await ec2.send(new GetConsoleOutputCommand({ InstanceId: ids[0]!, Latest: true }));
    expect(console.Output).toBeUndefined();
  });

  it('refuses an image whose architecture does not match the instance type', async () => {
    const error = await rejection(ec2.send(new RunInstancesCommand({ ImageId: DEBIAN_12_ARM64.imageId, InstanceType: 't3.small', MinCount: 1, MaxCount: 1 })));
    expect(error.name).toBe('InvalidParameterValue');
    expect(error.message).toContain("architecture 'x86_64' of the specified instance type");
  });

  it('switches faults on: capacity per type and zone, authorisation, throttling, missing image', async () => {
    const launch = (InstanceType: 't3.small' | 't3.medium', zone: string) =>
      ec2.send(new RunInstancesCommand({ ImageId: DEBIAN_12_AMD64.imageId, InstanceType, MinCount: 1, MaxCount: 1, Placement: { AvailabilityZone: zone } }));
    fake.faults.noCapacity = [{ instanceType: 't3.small', zone: 'us-east-1a' }];
    const capacity = await rejection(launch('t3.small', 'us-east-1a'));
    expect(capacity.name).toBe('InsufficientInstanceCapacity');
    expect((await launch('t3.small', 'us-east-1b')).Instances?.[0]?.Placement?.AvailabilityZone).toBe('us-east-1b');
    expect((await launch('t3.medium', 'us-east-1a')).Instances?.[0]?.InstanceType).toBe('t3.medium');
    fake.faults.noCapacity = [];

    fake.faults.unauthorized = ['ec2:RunInstances'];
    const denied = await rejection(launch('t3.small', 'us-east-1a'));
    expect(denied.name).toBe('UnauthorizedOperation');
    expect(denied.message).toContain('ec2:RunInstances');
    expect(denied.$metadata?.httpStatusCode).toBe(403);
    fake.faults.unauthorized = [];

    fake.faults.throttleNext = 2;
    const vpcs = await ec2.send(new DescribeVpcsCommand({}));
    expect(vpcs.$metadata.attempts).toBe(3);
    expect(fake.calls.slice(-3).map((c) => c.error)).toEqual(['RequestLimitExceeded', 'RequestLimitExceeded', undefined]);

    fake.faults.imageNotFound = true;
    const image = await rejection(launch('t3.small', 'us-east-1a'));
    expect(image.name).toBe('InvalidAMIID.NotFound');
    fake.faults.imageNotFound = false;

    const calls = fake.callsOf('RunInstances').length;
    expect(calls).toBeGreaterThan(5);
    expect(fake.calls.every((c) => c.accessKeyId === '' || c.accessKeyId === credentials.accessKeyId)).toBe(true);
  });

  it('holds an instance in pending while the slow-pending fault is on', async () => {
    fake.faults.pendingAtLeastMs = 60_000;
    const run = await ec2.send(new RunInstancesCommand({ ImageId: DEBIAN_12_AMD64.imageId, InstanceType: 't3.small', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances![0]!.InstanceId!;
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('pending');
    fake.faults.pendingAtLeastMs = 0;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await waitUntilInstanceTerminated({ client: ec2, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { InstanceIds: [id] });
  });
});
