/**
 * `tmachine import` of a Docker Machine amazonec2 machine, against the fake EC2 endpoint
 * (driven through the official SDK, no hosts): the machine keeps its identity, its state
 * comes from the ec2 driver, `rm -y` terminates its instance, and the Docker Machine store
 * is left as it was.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEc2 } from '../fakes/ec2/server.js';
import { isolatedAwsEnv } from '../support/aws-env.js';
import { launchEc2Instance } from '../support/cloud-fakes.js';
import { runCli, tempStore } from '../support/cli.js';
import { treeChecksum, writeDockerMachineMachine } from '../support/docker-machine-store.js';

const ACCESS_KEY_ID = 'AKIAFAKEIMPORT000001';
const SECRET_ACCESS_KEY = 'import-secret-key';

describe('import of a Docker Machine amazonec2 machine (fake EC2)', () => {
  let fake: FakeEc2;
  let instanceId = '';
  const store = tempStore();
  const dm = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-ec2-'));
  const noHome = path.join(dm, '..', `${path.basename(dm)}-aws-home`);
  let before = '';
  const env = { ...isolatedAwsEnv(noHome, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }), MACHINE_STORAGE_PATH: dm };
  const cli = (args: string[]) => runCli(args, { store: store.path, env });

  beforeAll(async () => {
    fake = await FakeEc2.start();
    instanceId = await launchEc2Instance(fake, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    // The address is 127.0.0.x so that nothing the test does leaves this machine.
    writeDockerMachineMachine(
      dm,
      'aws1',
      'amazonec2',
      { IPAddress: '127.0.0.3', SSHUser: 'ubuntu', InstanceId: instanceId, Region: 'us-east-1', Zone: 'a', InstanceType: 't3.small', KeyName: 'aws1', Endpoint: fake.url },
      { id_rsa: 'not a key\n' },
    );
    before = treeChecksum(dm);
  });
  afterAll(async () => {
    await fake?.close();
    store.cleanup();
    fs.rmSync(dm, { recursive: true, force: true });
  });

  it('adopts it with its instance id and region; its state comes from EC2', async () => {
    const r = await cli(['import', '--no-contact', 'aws1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/imported aws1 \(ec2, 127\.0\.0\.3\); its key pair aws1 and security group stay when it is removed/);
    const record = JSON.parse((await cli(['inspect', 'aws1', '--format', 'json'])).stdout) as { driver: { name: string; state: Record<string, unknown>; resources: Array<{ kind: string; id: string }> } };
    expect(record.driver.name).toBe('ec2');
    expect(record.driver.state).toMatchObject({ instanceId, region: 'us-east-1', zone: 'us-east-1a' });
    expect(record.driver.resources).toEqual([expect.objectContaining({ kind: 'instance', id: instanceId })]);
    const status = await cli(['status', 'aws1']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout.trim()).toMatch(/^(Running|Starting)$/);
    expect(fake.callsOf('DescribeInstances').length).toBeGreaterThan(0);
  });

  it('rm -y terminates the instance in EC2; the Docker Machine store is unchanged', async () => {
    const r = await cli(['rm', '-y', 'aws1']);
    expect(r.code, r.stderr).toBe(0);
    expect(fake.callsOf('TerminateInstances').length).toBe(1);
    expect(fake.liveInstances().map((i) => i.instanceId)).not.toContain(instanceId);
    expect((await cli(['ls', '-q'])).stdout.trim()).toBe('');
    expect(treeChecksum(dm)).toBe(before);
  });
});
