/**
 * Instances in the EC2 and Compute Engine fakes made and read as their owner would, through
 * the official SDKs: for tests that need an instance tmachine did not create (one Docker
 * Machine made, say) and check what became of it.
 */
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand, type _InstanceType } from '@aws-sdk/client-ec2';
import { InstancesClient } from '@google-cloud/compute';
import { OAuth2Client } from 'google-auth-library';
import { DEBIAN_12_AMD64, type FakeEc2 } from '../fakes/ec2/server.js';
import type { GceFake } from '../fakes/gce/server.js';

export interface Ec2Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

function ec2Client(fake: FakeEc2, credentials: Ec2Credentials): EC2Client {
  return new EC2Client({ endpoint: fake.url, region: fake.region, credentials });
}

/** RunInstances of one Debian 12 instance; its instance id. */
export async function launchEc2Instance(fake: FakeEc2, credentials: Ec2Credentials, instanceType: _InstanceType = 't3.small'): Promise<string> {
  const ec2 = ec2Client(fake, credentials);
  try {
    const launched = await ec2.send(new RunInstancesCommand({ ImageId: DEBIAN_12_AMD64.imageId, InstanceType: instanceType, MinCount: 1, MaxCount: 1 }));
    return launched.Instances![0]!.InstanceId!;
  } finally {
    ec2.destroy();
  }
}

/** The instance's state name as DescribeInstances reports it (`running`, `terminated`, ...). */
export async function ec2InstanceState(fake: FakeEc2, credentials: Ec2Credentials, instanceId: string): Promise<string | undefined> {
  const ec2 = ec2Client(fake, credentials);
  try {
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return described.Reservations?.[0]?.Instances?.[0]?.State?.Name;
  } finally {
    ec2.destroy();
  }
}

/** `@google-cloud/compute` options that reach the fake (cloud-fakes.md), with a token that is never refreshed. */
export function gceSdkOptions(fake: GceFake) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3_600_000 });
  return { apiEndpoint: '127.0.0.1', port: fake.port, protocol: 'http', fallback: true, authClient };
}

export interface GceInstanceRef {
  project: string;
  zone: string;
  instance: string;
}

/** instances.insert of a small Debian 12 instance, settled (RUNNING once its backing host booted). */
export async function insertGceInstance(fake: GceFake, ref: GceInstanceRef, machineType = 'e2-small'): Promise<void> {
  const instances = new InstancesClient(gceSdkOptions(fake));
  await instances.insert({
    project: ref.project,
    zone: ref.zone,
    instanceResource: {
      name: ref.instance,
      machineType: `zones/${ref.zone}/machineTypes/${machineType}`,
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: 'projects/debian-cloud/global/images/family/debian-12' } }],
      networkInterfaces: [{ network: 'global/networks/default', accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] }],
    },
  });
  await fake.settle();
}

/** instances.stop, settled: the instance is TERMINATED (GCE's word for stopped). */
export async function stopGceInstance(fake: GceFake, ref: GceInstanceRef): Promise<void> {
  await new InstancesClient(gceSdkOptions(fake)).stop(ref);
  await fake.settle();
}

/** The instance's status as instances.get reports it (`RUNNING`, `TERMINATED`, ...). */
export async function gceInstanceStatus(fake: GceFake, ref: GceInstanceRef): Promise<string | undefined> {
  const [instance] = await new InstancesClient(gceSdkOptions(fake)).get(ref);
  return instance.status ?? undefined;
}
