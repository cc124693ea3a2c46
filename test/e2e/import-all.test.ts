/**
 * Issue 18's import acceptance with all four drivers: one Docker Machine 0.16 store holding a
 * generic machine (a real test host with an engine, made by tmachine in another store), an
 * amazonec2 machine (an instance in the fake EC2), a google machine (an instance in the fake
 * Compute Engine, stopped) and a virtualbox machine (a powered-off VM in the fake
 * VBoxManage). `tmachine import` adopts all four; each one's state comes from its driver;
 * ssh and env + docker info work on the generic one; `rm -y` of the amazonec2 one terminates
 * its instance; the Docker Machine store is left as it was.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FakeEc2 } from '../fakes/ec2/server.js';
import { GceFake } from '../fakes/gce/server.js';
import { stubBackend } from '../fakes/gce/stub-backend.js';
import { startFakeVBox, type FakeVBox } from '../fakes/vboxmanage/backend.js';
import { isolatedAwsEnv } from '../support/aws-env.js';
import { ec2InstanceState, gceInstanceStatus, insertGceInstance, launchEc2Instance, stopGceInstance } from '../support/cloud-fakes.js';
import { treeChecksum, writeDockerMachineCopy, writeDockerMachineMachine } from '../support/docker-machine-store.js';
import { describeE2E, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { freePort } from '../support/sshd.js';

const CREDENTIALS = { accessKeyId: 'AKIAFAKEIMPORTALL001', secretAccessKey: 'import-all-secret-key' };
const GCE_TOKEN = 'ya29.test-token-for-the-import';

describeE2E('import of a Docker Machine store with generic, amazonec2, google and virtualbox machines', () => {
  let lab: Lab;
  let ec2: FakeEc2 | undefined;
  let gce: GceFake | undefined;
  let vbox: FakeVBox | undefined;
  const s = labSession('dmall');
  // Where the generic machine's host is made, as docker-machine would have made it.
  const src = labSession('dmallsrc');
  const legacy = src.name('legacy');
  const google = { project: 'p', zone: 'europe-west1-b', instance: 'gce1' };
  const dm = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-all-'));
  const noHome = path.join(dm, '..', `${path.basename(dm)}-aws-home`);
  let instanceId = '';
  let legacyAddress = '';
  let before = '';
  let env: Record<string, string | undefined> = {};
  const cli = (args: string[]) => s.cli(args, { env });

  beforeAll(async () => {
    lab = await prepareLab();
    ok(await src.cli(['create', '-d', 'docker', '--docker-subnet', `10.208.${10 + Math.floor(Math.random() * 200)}.0/24`, '--engine-bundle', lab.bundlePath, legacy]));
    legacyAddress = writeDockerMachineCopy(dm, src.store, legacy).address;

    // The cloud and VM machines: SSH on 127.0.0.x at a port nothing listens on, so the first
    // contact import makes stays on this machine (and fails there, as for a stopped host).
    const closed = await freePort();
    // Docker Machine copied the CA and its client certificate into every machine's directory.
    const tls = Object.fromEntries(['ca.pem', 'cert.pem', 'key.pem'].map((f) => [f, fs.readFileSync(path.join(dm, 'certs', f))]));
    // The key docker-machine made for each machine: RSA in PEM.
    const key = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    const files = { id_rsa: key, ...tls };
    ec2 = await FakeEc2.start();
    instanceId = await launchEc2Instance(ec2, CREDENTIALS);
    writeDockerMachineMachine(
      dm,
      'aws1',
      'amazonec2',
      { IPAddress: '127.0.0.3', SSHPort: closed, SSHUser: 'ubuntu', InstanceId: instanceId, Region: 'us-east-1', Zone: 'a', InstanceType: 't3.small', KeyName: 'aws1', Endpoint: ec2.url },
      files,
    );

    gce = new GceFake({ backend: stubBackend() });
    await gce.start();
    await insertGceInstance(gce, google);
    await stopGceInstance(gce, google);
    writeDockerMachineMachine(
      dm,
      google.instance,
      'google',
      { IPAddress: '127.0.0.4', SSHPort: closed, SSHUser: 'docker-user', Project: google.project, Zone: google.zone, MachineType: 'e2-small' },
      files,
    );

    const run = s.name('vb');
    vbox = await startFakeVBox(lab.docker, { label: 'tmachine.test', value: run, prefix: `tm-${run}` });
    // A VM as docker-machine registered it, powered off.
    execFileSync('VBoxManage', ['createvm', '--name', 'vbox1', '--register'], { env: { ...process.env, ...vbox.env() }, encoding: 'utf8' });
    writeDockerMachineMachine(dm, 'vbox1', 'virtualbox', { IPAddress: '192.168.99.100', SSHPort: closed, CPU: 1, Memory: 1024 }, files);

    env = {
      ...isolatedAwsEnv(noHome, CREDENTIALS),
      ...vbox.env(),
      // tmachine's gce driver reaches the fake through its endpoint setting, read at import.
      GOOGLE_COMPUTE_ENDPOINT: gce.url,
      GOOGLE_OAUTH_ACCESS_TOKEN: GCE_TOKEN,
      MACHINE_STORAGE_PATH: dm,
    };
    before = treeChecksum(dm);
  });

  afterAll(async () => {
    if (lab) {
      // Machines a failed test left behind go through their drivers while the fakes still answer.
      const left = fs.existsSync(path.join(s.store, 'machines')) ? fs.readdirSync(path.join(s.store, 'machines')) : [];
      if (left.length > 0) await s.cli(['rm', '-f', '-y', ...left], { env });
      await s.cleanup(lab.docker);
      await src.cleanup(lab.docker);
    }
    await vbox?.close();
    await gce?.stop();
    await ec2?.close();
    fs.rmSync(dm, { recursive: true, force: true });
  });

  it('import adopts all four machines, none skipped, and leaves the Docker Machine store unchanged', async () => {
    const r = ok(await cli(['import']));
    // First contact: the generic host's key is pinned; the others do not answer SSH here.
    for (const name of ['aws1', 'gce1', 'vbox1']) expect(r.stderr).toMatch(new RegExp(`${name}: not reached over SSH now \\(.*did not answer SSH within 15s: connection refused\\)`));
    expect(r.stderr).not.toContain(`${legacy}: not reached`);
    const pinned = JSON.parse(ok(await cli(['inspect', legacy, '--format', 'json'])).stdout) as { ssh: { hostKey?: { fingerprint: string } } };
    expect(pinned.ssh.hostKey?.fingerprint).toMatch(/^SHA256:/);
    expect(r.stderr).toContain(`imported ${legacy} (generic, ${legacyAddress})`);
    expect(r.stderr).toContain('imported aws1 (ec2, 127.0.0.3); its key pair aws1 and security group stay when it is removed');
    expect(r.stderr).toContain('imported gce1 (gce, 127.0.0.4)');
    expect(r.stderr).toContain('imported vbox1 (virtualbox, 192.168.99.100)');
    expect(r.stderr).not.toContain('skipped');
    expect(ok(await cli(['ls', '-q'])).stdout.trim().split('\n')).toEqual(['aws1', legacy, 'gce1', 'vbox1'].sort());
    expect(treeChecksum(dm)).toBe(before);
  });

  it('ls shows all four with the state each driver reports (asked of EC2, Compute Engine and VBoxManage)', async () => {
    const describedBefore = ec2!.callsOf('DescribeInstances').length;
    const gotBefore = gce!.callsTo('GET', /\/zones\/europe-west1-b\/instances\/gce1$/).length;
    const vboxBefore = vbox!.calls().length;
    const rows = ok(await cli(['ls', '--format', '{{.Name}} {{.DriverName}} {{.State}}'])).stdout.trim().split('\n');
    expect(rows).toEqual(['aws1 ec2 Running', `${legacy} generic Running`, 'gce1 gce Stopped', 'vbox1 virtualbox Stopped'].sort());
    expect(ec2!.callsOf('DescribeInstances').length).toBeGreaterThan(describedBefore);
    expect(gce!.callsTo('GET', /\/zones\/europe-west1-b\/instances\/gce1$/).length).toBeGreaterThan(gotBefore);
    expect(vbox!.calls().slice(vboxBefore)).toContainEqual(['showvminfo', 'vbox1', '--machinereadable']);

    // The default table, as docker-machine ls printed it: STATE Running/Stopped, DOCKER v<version>.
    const table = ok(await cli(['ls'])).stdout.trim().split('\n');
    expect(table[0]).toMatch(/^NAME\s+ACTIVE\s+DRIVER\s+STATE\s+URL\s+SWARM\s+DOCKER\s+ERRORS$/);
    const row = (name: string) => table.find((l) => l.startsWith(`${name} `))?.trim().split(/\s+/);
    expect(row(legacy)?.slice(0, 5)).toEqual([legacy, '-', 'generic', 'Running', `tcp://${legacyAddress}:2376`]);
    // The engine's own version string (Debian's docker.io says 20.10.24+dfsg1), with Docker Machine's "v".
    expect(row(legacy)?.[5]?.startsWith(`v${lab.bundleVersion}`), table.join('\n')).toBe(true);
    expect(row('gce1')?.slice(0, 4)).toEqual(['gce1', '-', 'gce', 'Stopped']);
    expect(row('vbox1')?.slice(0, 4)).toEqual(['vbox1', '-', 'virtualbox', 'Stopped']);
    expect(row('aws1')?.slice(0, 4)).toEqual(['aws1', '-', 'ec2', 'Running']);

    // status prints what docker-machine status printed, from the same drivers.
    expect(ok(await cli(['status', 'gce1'])).stdout).toBe('Stopped\n');
    expect(ok(await cli(['status', 'vbox1'])).stdout).toBe('Stopped\n');
    expect(ok(await cli(['status', 'aws1'])).stdout).toBe('Running\n');
    expect(await gceInstanceStatus(gce!, google)).toBe('TERMINATED');
  });

  it('ssh and eval "$(tmachine env NAME)" && docker info work on the generic machine', async () => {
    const hostname = ok(await src.cli(['ssh', legacy, 'hostname'])).stdout.trim();
    expect(hostname).not.toBe('');
    expect(ok(await cli(['ssh', legacy, 'hostname'])).stdout.trim()).toBe(hostname);
    const [name, version] = s.shell(`eval "$(tmachine env ${legacy})" && docker info --format '{{.Name}} {{.ServerVersion}}'`, env).trim().split(' ');
    expect(name).toBe(hostname);
    expect(version).toContain(lab.bundleVersion);
  });

  it('rm -y of the amazonec2 machine terminates its instance; the others stay; the Docker Machine store is unchanged', async () => {
    expect(await ec2InstanceState(ec2!, CREDENTIALS, instanceId)).toBe('running');
    ok(await cli(['rm', '-y', 'aws1']));
    expect(await ec2InstanceState(ec2!, CREDENTIALS, instanceId)).toBe('terminated');
    expect(ec2!.callsOf('TerminateInstances')).toHaveLength(1);
    expect(ok(await cli(['ls', '-q'])).stdout.trim().split('\n')).toEqual([legacy, 'gce1', 'vbox1'].sort());
    expect(treeChecksum(dm)).toBe(before);
  });
});
