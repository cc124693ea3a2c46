/**
 * The ec2 driver's checks before anything is made, against the fake endpoint (no hosts
 * needed): each failure is one DriverError line naming the API call, of the kind the core
 * acts on, and nothing is launched.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definition, type Ec2Options, type Ec2State } from '../../drivers/ec2/definition.js';
import { DriverError, parseOptions, resolveRawOptions, type DriverContext } from '../../drivers/kit/index.js';
import { DEBIAN_12_ARM64, FakeEc2 } from '../fakes/ec2/server.js';

let fake: FakeEc2;

beforeAll(async () => {
  fake = await FakeEc2.start();
});
afterAll(async () => {
  await fake?.close();
});

async function preCreateFailure(given: Record<string, unknown>, engineArch?: string): Promise<DriverError> {
  const options = parseOptions(
    definition.optionsSchema,
    resolveRawOptions(definition.flags, { 'ec2-access-key': 'AKIAFAKEERRORS000001', 'ec2-secret-key': 'errors-secret', 'ec2-region': 'us-east-1', 'ec2-endpoint': fake.url, ...given }),
    definition.flags,
  );
  const context: DriverContext<Ec2Options, Ec2State> = {
    machineName: 'err1',
    machineDir: '/nonexistent',
    cacheDir: '/nonexistent',
    options,
    state: {},
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq9iWqGpsR9n1tJ5Yb9nS8cB1w0Q0o5dN3o8u2C3jN5',
    undo: { record: async () => undefined, forget: async () => undefined, entries: () => [] },
    signal: new AbortController().signal,
    report: () => undefined,
    note: () => undefined,
    saveState: async () => undefined,
    ...(engineArch ? { engineArch } : {}),
  };
  const driver = (await definition.load()).open(context);
  try {
    await driver.preCreateCheck();
  } catch (error) {
    expect(error).toBeInstanceOf(DriverError);
    expect((error as DriverError).userLine).not.toContain('\n');
    return error as DriverError;
  }
  throw new Error('expected preCreateCheck to fail');
}

describe('ec2 driver: failures before anything is made', () => {
  it('UnauthorizedOperation names the IAM action', async () => {
    fake.faults.unauthorized = ['ec2:DescribeInstanceTypes'];
    const error = await preCreateFailure({});
    fake.faults.unauthorized = [];
    expect(error.kind).toBe('auth');
    expect(error.message).toBe('EC2 DescribeInstanceTypes: not authorized to call ec2:DescribeInstanceTypes (UnauthorizedOperation)');
    expect(error.hint).toContain('allow ec2:DescribeInstanceTypes');
  });

  it('RequestLimitExceeded only after the SDK retried', async () => {
    const before = fake.calls.length;
    fake.faults.throttleNext = 100;
    const error = await preCreateFailure({ 'ec2-retries': 2 });
    fake.faults.throttleNext = 0;
    expect(error.message).toBe('EC2 DescribeInstanceTypes: still throttled after 2 retries (RequestLimitExceeded)');
    expect(fake.calls.slice(before).filter((c) => c.error === 'RequestLimitExceeded')).toHaveLength(3);
  });

  it('an image parameter that does not exist, and an image of the wrong architecture', async () => {
    const missing = await preCreateFailure({ 'ec2-image-parameter': '/aws/service/debian/release/99/latest/amd64' });
    expect(missing.kind).toBe('not-found');
    expect(missing.message).toBe('SSM GetParameter: the image parameter does not exist in us-east-1 (ParameterNotFound)');
    const arch = await preCreateFailure({ 'ec2-ami': DEBIAN_12_ARM64.imageId, 'ec2-instance-type': ['t3.small'] });
    expect(arch.kind).toBe('invalid-input');
    expect(arch.message).toBe(`image ${DEBIAN_12_ARM64.imageId} is arm64 but t3.small is x86_64`);
    const mixed = await preCreateFailure({ 'ec2-instance-type': ['t3.small,t4g.small'] });
    expect(mixed.message).toMatch(/^--ec2-instance-type mixes x86_64 and arm64 types/);
    const unknown = await preCreateFailure({ 'ec2-instance-type': ['t9.huge'] });
    expect(unknown.kind).toBe('invalid-input');
    expect(unknown.message).toMatch(/^EC2 DescribeInstanceTypes: .*t9\.huge.* \(InvalidInstanceType\)$/);
  });

  it('an engine bundle of another architecture than the instance type, before anything is launched', async () => {
    const error = await preCreateFailure({ 'ec2-instance-type': ['t4g.small'] }, 'x86_64');
    expect(error.kind).toBe('invalid-input');
    expect(error.message).toBe('the engine bundle is for x86_64 but t4g.small is arm64');
    expect(error.hint).toContain('--engine-bundle');
  });

  it('an endpoint that does not answer', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const error = await preCreateFailure({ 'ec2-endpoint': `http://127.0.0.1:${closed}`, 'ec2-retries': 0 });
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe(`EC2 DescribeInstanceTypes: http://127.0.0.1:${closed} did not answer (ECONNREFUSED)`);
  });

  it('launched nothing', () => {
    expect(fake.callsOf('RunInstances')).toEqual([]);
    expect(fake.keyPairs.size).toBe(0);
  });
});
