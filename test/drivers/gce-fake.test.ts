/**
 * The Compute Engine fake's protocol, driven through `@google-cloud/compute` 7 with the
 * client options the driver uses, and the gce driver's error handling and fault paths
 * through the CLI. The instances here are backed by a stand-in (no host is started), so
 * only paths that end before SSH run here; test/e2e/gce.test.ts runs the rest on real hosts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FirewallsClient, InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { call, googleFailure, openClients, toDriverError, type GceClients } from '../../drivers/gce/client.js';
import { clusterTag, desiredRules, ensureRule, removeRuleIfUnused } from '../../drivers/gce/firewall.js';
import { instanceBody, parseImage, sshKeysMetadata } from '../../drivers/gce/instance.js';
import { waitOperation } from '../../drivers/gce/operations.js';
import { optionsSchema } from '../../drivers/gce/definition.js';
import { GceFake } from '../fakes/gce/server.js';
import { STUB_HOST_KEYS, stubBackend, type StubBackend } from '../fakes/gce/stub-backend.js';
import { runCli, tempStore } from '../support/cli.js';
import { gceSdkOptions } from '../support/cloud-fakes.js';

const ZONE = 'europe-west1-b';
const IMAGE = 'https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20261110';

let fake: GceFake;
let backend: StubBackend;

beforeAll(async () => {
  backend = stubBackend();
  fake = new GceFake({ backend, waitHoldMs: 2_000 });
  await fake.start();
});
afterAll(async () => {
  await fake.stop();
});

const sdkOptions = () => gceSdkOptions(fake);

const options = optionsSchema.parse({
  'gce-project': 'p', 'gce-zone': ZONE, 'gce-machine-type': ['e2-medium'], 'gce-image': 'projects/debian-cloud/global/images/family/debian-12', 'gce-disk-size': 10, 'gce-disk-type': 'pd-balanced',
  'gce-network': 'default', 'gce-service-account': 'default', 'gce-scopes': ['https://www.googleapis.com/auth/logging.write'], 'gce-preemptible': false, 'gce-spot': false,
  'gce-use-internal-ip': false, 'gce-use-internal-ip-only': false, 'gce-username': 'docker-user', 'gce-ssh-timeout': 300,
});

function body(name: string, extra: Record<string, unknown> = {}) {
  return { ...instanceBody({ options, zone: ZONE, machineType: 'e2-medium', image: { link: IMAGE, asked: 'debian-12' }, targetTag: 'tmachine', labels: { 'tmachine-managed': 'true' }, sshPublicKeys: ['ssh-ed25519 AAAAkey me@here'], bare: false }), name, ...extra };
}

describe('the fake, through the SDK', () => {
  let clients: GceClients;
  beforeAll(async () => {
    process.env['GOOGLE_OAUTH_ACCESS_TOKEN'] = 'test';
    clients = await openClients({ project: 'p', endpoint: fake.url });
  });
  afterAll(async () => {
    // What these tests made goes, so the CLI tests below start from an empty project.
    const instances = new InstancesClient(sdkOptions());
    for (const instance of fake.listInstances('p')) await instances.delete({ project: 'p', zone: ZONE, instance: String(instance['name']) });
    await fake.settle();
    delete process.env['GOOGLE_OAUTH_ACCESS_TOKEN'];
  });

  it('insert answers a PENDING operation that becomes DONE through .../wait; the instance reports the backing address', async () => {
    const instances = new InstancesClient(sdkOptions());
    const [op] = await instances.insert({ project: 'p', zone: ZONE, requestId: '0b0e7a3c-4c55-4f7a-9f0e-2a9f4b1d7e21', instanceResource: body('c1') });
    expect(op.latestResponse).toMatchObject({ kind: 'compute#operation', status: 'PENDING', operationType: 'insert' });
    const ops = new ZoneOperationsClient(sdkOptions());
    let status = '';
    for (let i = 0; i < 20 && status !== 'DONE'; i++) status = String((await ops.wait({ project: 'p', zone: ZONE, operation: String((op.latestResponse as { name: string }).name) }))[0].status);
    expect(status).toBe('DONE');
    const [instance] = await instances.get({ project: 'p', zone: ZONE, instance: 'c1' });
    expect(instance.status).toBe('RUNNING');
    expect(instance.networkInterfaces?.[0]?.networkIP).toBe('127.0.0.1');
    expect(instance.networkInterfaces?.[0]?.accessConfigs?.[0]?.natIP).toBe('127.0.0.1');
    expect(backend.launched.find((l) => l.instance === 'c1')?.sshKeys).toEqual([{ user: 'docker-user', key: 'ssh-ed25519 AAAAkey' }]);
  });

  it('a repeated requestId answers the same operation and launches nothing new', async () => {
    const instances = new InstancesClient(sdkOptions());
    const requestId = '1b0e7a3c-4c55-4f7a-9f0e-2a9f4b1d7e21';
    const [first] = await instances.insert({ project: 'p', zone: ZONE, requestId, instanceResource: body('c2') });
    const [again] = await instances.insert({ project: 'p', zone: ZONE, requestId, instanceResource: body('c2') });
    expect((again.latestResponse as { name: string }).name).toBe((first.latestResponse as { name: string }).name);
    await fake.settle();
    expect(backend.launched.filter((l) => l.instance === 'c2')).toHaveLength(1);
  });

  it('rejects what the real API rejects, with its error bodies', async () => {
    const instances = new InstancesClient(sdkOptions());
    const failure = async (request: Parameters<InstancesClient['insert']>[0]) => googleFailure(await instances.insert(request).then(() => undefined, (e: unknown) => e));
    expect(await failure({ project: 'p', zone: ZONE, instanceResource: body('c1') })).toMatchObject({ status: 409, reasons: ['alreadyExists'] });
    expect(await failure({ project: 'p', zone: ZONE, instanceResource: body('Bad_Name') })).toMatchObject({ status: 400, reasons: ['invalid'] });
    expect((await failure({ project: 'p', zone: ZONE, instanceResource: body('c3', { machineType: `zones/${ZONE}/machineTypes/e9-huge` }) })).message).toMatch(/Machine type with name 'e9-huge' does not exist/);
    expect(await failure({ project: 'p', zone: ZONE, instanceResource: body('c3', { labels: { Owner: 'X' } }) })).toMatchObject({ status: 400 });
    expect((await failure({ project: 'p', zone: ZONE, requestId: 'not-a-uuid', instanceResource: body('c3') })).message).toMatch(/requestId must be a valid UUID/);
    expect(await failure({ project: 'p', zone: 'mars-north1-a', instanceResource: body('c3') })).toMatchObject({ status: 404, reasons: ['notFound'] });
    const unauthenticated = await fetch(`${fake.url}/compute/v1/projects/p/zones/${ZONE}/instances`);
    expect(unauthenticated.status).toBe(401);
    expect(await unauthenticated.json()).toMatchObject({ error: { code: 401, errors: [{ reason: 'required' }] } });
  });

  it('publishes the host keys under hostkeys/ once guest attributes are on', async () => {
    const instances = new InstancesClient(sdkOptions());
    const [attributes] = await instances.getGuestAttributes({ project: 'p', zone: ZONE, instance: 'c1', queryPath: 'hostkeys/' });
    expect(attributes.queryValue?.items?.map((i) => `${i.key} ${i.value}`)).toEqual(STUB_HOST_KEYS.map((k) => k.split(' ').slice(0, 2).join(' ')));
    const [op] = await instances.insert({ project: 'p', zone: ZONE, instanceResource: { ...body('c4'), metadata: { items: [] } } });
    await waitOperation(clients, op.latestResponse as never, { call: 'insert c4', deadlineMs: 30_000 });
    const disabled = googleFailure(await instances.getGuestAttributes({ project: 'p', zone: ZONE, instance: 'c4', queryPath: 'hostkeys/' }).then(() => undefined, (e: unknown) => e));
    expect(disabled.message).toMatch(/Guest attributes are disabled/);
  });

  it('bulkInsert makes N instances in one call', async () => {
    const instances = new InstancesClient(sdkOptions());
    const before = fake.calls.length;
    const props = instanceBody({ options, zone: ZONE, machineType: 'e2-medium', image: { link: IMAGE, asked: 'debian-12' }, targetTag: 'tmachine', labels: {}, sshPublicKeys: ['ssh-ed25519 AAAAa a', 'ssh-ed25519 AAAAb b'], bare: true });
    const [op] = await instances.bulkInsert({ project: 'p', zone: ZONE, requestId: '2b0e7a3c-4c55-4f7a-9f0e-2a9f4b1d7e21', bulkInsertInstanceResourceResource: { count: 3, perInstanceProperties: { 'b-one': {}, 'b-two': {} }, namePattern: 'b-###', instanceProperties: props } });
    expect(fake.calls.slice(before).filter((c) => c.method === 'POST')).toHaveLength(1);
    const done = await waitOperation(clients, op.latestResponse as never, { call: 'bulkInsert', deadlineMs: 30_000 });
    expect(done.operationType).toBe('bulkInsert');
    expect(fake.listInstances('p').map((i) => i['name']).filter((n) => String(n).startsWith('b-')).sort()).toEqual(['b-001', 'b-one', 'b-two']);
    expect(backend.launched.find((l) => l.instance === 'b-one')?.sshKeys.map((k) => k.key)).toEqual(['ssh-ed25519 AAAAa', 'ssh-ed25519 AAAAb']);
  });

  it('firewall rules: created, kept when right, a foreign one is never edited, removed when unused', async () => {
    const [rule] = desiredRules({ tag: 'tmachine-fw', cluster: 'fw', network: 'default', sourceRanges: ['203.0.113.0/24'], dataPathPort: 4789, encryptedOverlay: false, openPorts: [] });
    let recorded = 0;
    expect(await ensureRule(clients, rule!, async () => void recorded++)).toBe('created');
    expect(await ensureRule(clients, rule!, async () => void recorded++)).toBe('kept');
    expect(recorded).toBe(1);
    fake.addForeignFirewall('p', { name: 'tmachine-other-ssh-engine', network: 'global/networks/default', sourceRanges: ['10.0.0.0/8'], targetTags: ['tmachine-other'], allowed: [{ IPProtocol: 'tcp', ports: ['22'] }] });
    const [other] = desiredRules({ tag: 'tmachine-other', cluster: 'other', network: 'default', sourceRanges: ['0.0.0.0/0'], dataPathPort: 4789, encryptedOverlay: false, openPorts: [] });
    await expect(ensureRule(clients, other!, async () => undefined)).rejects.toThrow('firewall rule tmachine-other-ssh-engine exists, was not made by tmachine');
    expect(fake.listFirewalls('p').find((r) => r['name'] === 'tmachine-other-ssh-engine')).toMatchObject({ sourceRanges: ['10.0.0.0/8'] });
    expect(fake.callsTo('PATCH', /firewalls/)).toEqual([]);
    // A rule tmachine made that no longer says what this create needs is brought in line.
    const [wider] = desiredRules({ tag: 'tmachine-fw', cluster: 'fw', network: 'default', sourceRanges: ['203.0.113.0/24', '198.51.100.0/24'], dataPathPort: 4789, encryptedOverlay: false, openPorts: [] });
    expect(await ensureRule(clients, wider!, async () => undefined)).toBe('updated');
    expect(fake.listFirewalls('p').find((r) => r['name'] === rule!.name)).toMatchObject({ sourceRanges: ['198.51.100.0/24', '203.0.113.0/24'] });
    expect(await removeRuleIfUnused(clients, rule!.name, 'tmachine-fw', undefined)).toBe('removed');
    expect(await removeRuleIfUnused(clients, 'tmachine-other-ssh-engine', 'tmachine-other', undefined)).toBe('in-use');
  });

  it('the swarm rule allows the data-path port and ESP only when asked', () => {
    const rules = desiredRules({ tag: clusterTag('prod'), cluster: 'prod', network: 'default', sourceRanges: ['0.0.0.0/0'], dataPathPort: 7789, encryptedOverlay: true, openPorts: ['8080/tcp', '53/udp'] });
    expect(rules.map((r) => r.name)).toEqual(['tmachine-prod-ssh-engine', 'tmachine-prod-swarm', 'tmachine-prod-esp', expect.stringMatching(/^tmachine-prod-open-[0-9a-f]{8}$/)]);
    expect(rules[1]!.allowed).toEqual([{ IPProtocol: 'tcp', ports: ['2377', '7946'] }, { IPProtocol: 'udp', ports: ['7946', '7789'] }]);
    expect(rules[2]).toMatchObject({ sourceTags: ['tmachine-prod'], allowed: [{ IPProtocol: 'esp' }] });
    expect(rules[3]).toMatchObject({ sourceRanges: ['0.0.0.0/0'], allowed: [{ IPProtocol: 'tcp', ports: ['8080'] }, { IPProtocol: 'udp', ports: ['53'] }] });
  });

  it('429 is retried with backoff; an operation ending in ZONE_RESOURCE_POOL_EXHAUSTED is a capacity error', async () => {
    fake.faults.throttleNext = 2;
    const before = fake.calls.length;
    await call('firewalls.list', clients, () => new FirewallsClient(sdkOptions()).list({ project: 'p' }));
    expect(fake.calls.slice(before).map((c) => c.status)).toEqual([429, 429, 200]);
    fake.faults.exhaustedZones.add(ZONE);
    try {
      const [op] = await new InstancesClient(sdkOptions()).insert({ project: 'p', zone: ZONE, instanceResource: body('c5') });
      await expect(waitOperation(clients, op.latestResponse as never, { call: 'instances.insert c5', deadlineMs: 30_000 })).rejects.toMatchObject({ kind: 'capacity', message: expect.stringMatching(/ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects\/p\/zones\/europe-west1-b' does not have enough resources/) });
    } finally {
      fake.faults.exhaustedZones.clear();
    }
    await fake.settle();
    expect(fake.listInstances('p').map((i) => i['name'])).not.toContain('c5');
  });

  it('403 insufficient scopes says how to give the VM access; QUOTA_EXCEEDED is a quota error', async () => {
    fake.faults.forbidden = 'scopes';
    try {
      const error = await call('instances.list', { ...clients, onGceVm: true }, () => new InstancesClient(sdkOptions()).list({ project: 'p', zone: ZONE })).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'auth', message: 'gce instances.list: Request had insufficient authentication scopes.' });
      expect((error as { hint: string }).hint).toMatch(/give the VM "Allow full access to all Cloud APIs"/);
    } finally {
      fake.faults.forbidden = undefined;
    }
    const quota = toDriverError('instances.insert', { status: 403, reasons: ['QUOTA_EXCEEDED'], message: "Quota 'CPUS' exceeded." });
    expect(quota.kind).toBe('quota');
    // The other answers that mean "no room here, try the next zone or type".
    expect(toDriverError('instances.bulkInsert', { reasons: ['VM_MIN_COUNT_NOT_REACHED'], message: 'x' }).kind).toBe('capacity');
    expect(toDriverError('instances.insert', { status: 503, reasons: ['insufficientCapacity'], message: 'x' }).kind).toBe('capacity');
  });
});

describe('credentials', () => {
  afterEach(() => {
    delete process.env['GOOGLE_APPLICATION_CREDENTIALS'];
  });

  it('a missing ADC file is one auth error naming it', async () => {
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = '/nonexistent/adc.json';
    await expect(openClients({ project: 'p' })).rejects.toMatchObject({ kind: 'auth', message: expect.stringMatching(/^gce: Application Default Credentials: .*\/nonexistent\/adc\.json/) });
  });

  it('no credentials anywhere: one auth error naming where it looked, and the metadata server is not probed off GCE', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-no-adc-'));
    const saved = { HOME: process.env['HOME'], CLOUDSDK_CONFIG: process.env['CLOUDSDK_CONFIG'], METADATA_SERVER_DETECTION: process.env['METADATA_SERVER_DETECTION'] };
    process.env['HOME'] = home;
    delete process.env['CLOUDSDK_CONFIG'];
    delete process.env['METADATA_SERVER_DETECTION'];
    try {
      const error = (await openClients({ project: 'p' }).catch((e: unknown) => e)) as { kind: string; message: string };
      expect(error.kind).toBe('auth');
      expect(error.message).toBe(
        `gce: Application Default Credentials: none found (looked in: $GOOGLE_APPLICATION_CREDENTIALS (not set); ${home}/.config/gcloud/application_default_credentials.json (no such file); the GCE metadata server (this computer is not a GCE VM))`,
      );
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('option helpers', () => {
  it('reads images as Docker Machine wrote them and as URLs', () => {
    expect(parseImage('projects/debian-cloud/global/images/family/debian-12', 'p')).toEqual({ project: 'debian-cloud', family: 'debian-12' });
    expect(parseImage('ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20261101', 'p')).toEqual({ project: 'ubuntu-os-cloud', image: 'ubuntu-2204-jammy-v20261101' });
    expect(parseImage('https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts', 'p')).toEqual({ project: 'ubuntu-os-cloud', family: 'ubuntu-2204-lts' });
  });
  it('builds the instance for spot, internal-only, a static address and a subnetwork', () => {
    const image = { link: IMAGE, asked: 'debian-12' };
    const make = (over: Record<string, unknown>) => instanceBody({ options: { ...options, ...over } as typeof options, zone: ZONE, machineType: 'e2-small', image, targetTag: 'tmachine-c', labels: {}, sshPublicKeys: ['ssh-ed25519 AAAAx x'], bare: false });
    expect(make({ 'gce-spot': true }).scheduling).toMatchObject({ provisioningModel: 'SPOT', automaticRestart: false });
    expect(make({ 'gce-preemptible': true }).scheduling).toMatchObject({ preemptible: true });
    expect(make({ 'gce-use-internal-ip-only': true }).networkInterfaces?.[0]?.accessConfigs).toEqual([]);
    expect(make({ 'gce-address': '203.0.113.7' }).networkInterfaces?.[0]?.accessConfigs).toEqual([{ type: 'ONE_TO_ONE_NAT', name: 'External NAT', natIP: '203.0.113.7' }]);
    expect(make({ 'gce-subnetwork': 'nodes' }).networkInterfaces?.[0]?.subnetwork).toBe('regions/europe-west1/subnetworks/nodes');
    expect(make({ 'gce-tags': ['web'] }).tags?.items).toEqual(['tmachine-c', 'web']);
    expect(make({}).serviceAccounts).toEqual([{ email: 'default', scopes: ['https://www.googleapis.com/auth/logging.write'] }]);
  });

  it('takes list flags repeated or comma-separated', () => {
    const parsed = optionsSchema.parse({ ...options, 'gce-zones': ['europe-west1-b,europe-west1-c', 'europe-west1-d'], 'gce-machine-type': ['e2-small,e2-medium'] });
    expect(parsed['gce-zones']).toEqual(['europe-west1-b', 'europe-west1-c', 'europe-west1-d']);
    expect(parsed['gce-machine-type']).toEqual(['e2-small', 'e2-medium']);
  });

  it('writes ssh-keys as USER:KEY USER', () => {
    expect(sshKeysMetadata('docker-user', ['ssh-ed25519 AAAAx tmachine@m1'])).toBe('docker-user:ssh-ed25519 AAAAx docker-user');
  });
});

describe('faults through the CLI: one line, non-zero exit, nothing left', () => {
  const store = tempStore('tmachine-gce-faults-');
  afterAll(() => store.cleanup());
  const flags = () => ['--gce-project', 'p', '--gce-zone', ZONE, '--gce-endpoint', fake.url];

  async function failedCreate(name: string, extra: string[], errorLine: RegExp, env: Record<string, string | undefined> = { GOOGLE_OAUTH_ACCESS_TOKEN: 'test' }): Promise<void> {
    const instancesBefore = fake.listInstances('p').length;
    const rulesBefore = fake.listFirewalls('p').length;
    const result = await runCli(['create', name, '--driver', 'gce', ...flags(), ...extra], { store: store.path, env, timeoutMs: 60_000 });
    expect(result.code, result.stderr).not.toBe(0);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('Error:'));
    expect(errors, result.stderr).toHaveLength(1);
    expect(errors[0]).toMatch(errorLine);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    await fake.settle();
    expect(fake.listInstances('p').map((i) => i['name'])).not.toContain(name);
    expect(fake.listInstances('p')).toHaveLength(instancesBefore);
    expect(fake.listFirewalls('p')).toHaveLength(rulesBefore);
    expect(fs.existsSync(path.join(store.path, 'machines', name))).toBe(false);
  }

  it('QUOTA_EXCEEDED', async () => {
    fake.faults.quotaExceeded = true;
    try {
      await failedCreate('quota1', [], /^Error: (quota1: )?gce instances\.insert quota1: Quota 'CPUS' exceeded\..*\(raise the quota/);
    } finally {
      fake.faults.quotaExceeded = false;
    }
  });

  it('ZONE_RESOURCE_POOL_EXHAUSTED in every listed zone', async () => {
    fake.faults.exhaustedZones = new Set([ZONE, 'europe-west1-c']);
    try {
      await failedCreate('full1', ['--gce-zones=europe-west1-b,europe-west1-c'], /no capacity in europe-west1-b \(e2-medium\), europe-west1-c \(e2-medium\): .*ZONE_RESOURCE_POOL_EXHAUSTED/);
    } finally {
      fake.faults.exhaustedZones = new Set();
    }
  });

  it('an operation that ends in error', async () => {
    fake.faults.operationError = { code: 'UNSUPPORTED_OPERATION', message: 'The feature is not supported in this zone.' };
    await failedCreate('operr1', [], /gce instances\.insert operr1 in europe-west1-b \(operation operation-\S+\): UNSUPPORTED_OPERATION: The feature is not supported/);
  });

  it('an image family that does not exist', async () => {
    await failedCreate('image1', ['--gce-image', 'projects/debian-cloud/global/images/family/debian-99'], /images\.getFromFamily debian-cloud\/debian-99: .*no image family "debian-99" in project debian-cloud/);
  });

  it('credentials missing: no call reaches the endpoint', async () => {
    const before = fake.calls.length;
    await failedCreate('creds1', [], /no credentials for http:\/\/127\.0\.0\.1:\d+: \$GOOGLE_OAUTH_ACCESS_TOKEN is not set/, {});
    expect(fake.calls.length).toBe(before);
  });

  it('a firewall rule of that name that tmachine did not make', async () => {
    fake.addForeignFirewall('p', { name: 'tmachine-ssh-engine', network: 'global/networks/default', sourceRanges: ['10.0.0.0/8'], targetTags: ['tmachine'], allowed: [{ IPProtocol: 'tcp', ports: ['22'] }] });
    await failedCreate('foreign1', [], /firewall rule tmachine-ssh-engine exists, was not made by tmachine/);
    expect(fake.listFirewalls('p').find((r) => r['name'] === 'tmachine-ssh-engine')).toMatchObject({ sourceRanges: ['10.0.0.0/8'] });
  });
});
