/**
 * Issue 14 acceptance through the CLI: the ec2 driver, through @aws-sdk/client-ec2, against
 * the suite's own EC2 endpoint (test/fakes/ec2) whose instances are real test hosts. Every
 * command gets fake credentials through the environment; no output may show them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureCloudHostImage } from '../support/cloud-host.js';
import { repoRoot } from '../support/cli.js';
import { busyboxImageTarball, CACHE_DIR, describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { cloudHostBackend } from '../fakes/ec2/cloud-backend.js';
import { FakeEc2, type FakeSecurityGroup } from '../fakes/ec2/server.js';
import { isolatedAwsEnv } from '../support/aws-env.js';

const RANGE = '10.202.0.0/16';
const ACCESS_KEY_ID = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
const SECRET_ACCESS_KEY = randomBytes(30).toString('base64');

describeE2E('ec2 driver against the fake EC2 endpoint (instances are real hosts)', () => {
  let lab: Lab;
  let fake: FakeEc2;
  const s = labSession('ec2');
  const e1 = s.name('e1');
  const prefix = s.name('sw');
  const noHome = path.join(s.store, 'no-aws-home');
  /** The AWS credential chain sees only the environment: no real profile, no instance metadata. */
  const awsEnv = (withCredentials = true) =>
    isolatedAwsEnv(noHome, withCredentials ? { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } : undefined);
  const cli = (args: string[], withCredentials = true) => s.cli(args, { env: awsEnv(withCredentials) });
  const driverFlags = (sshTimeout = 90) => ['--driver', 'ec2', '--ec2-endpoint', fake.url, '--ec2-ssh-timeout', String(sshTimeout), '--ec2-console-timeout', '30'];
  let userGroup: FakeSecurityGroup;
  let userGroupBefore: string;

  /** What tmachine made that still exists in the fake (made for `machine`, when given). */
  const leftovers = (machine?: string) => {
    const mine = (name: string) => machine === undefined || name.includes(machine);
    return {
      instances: fake.liveInstances().filter((i) => machine === undefined || i.tags.some((t) => t.value === machine)).map((i) => i.instanceId),
      keyPairs: [...fake.keyPairs.values()].map((k) => k.keyName).filter(mine),
      groups: [...fake.groups.values()].filter((g) => g.tags.some((t) => t.key === 'tmachine:managed')).map((g) => g.groupName).filter(mine),
    };
  };
  const nothingLeft = { instances: [], keyPairs: [], groups: [] };

  const dockerThroughEnv = (env: string): string => execFileSync('bash', ['-c', `${env}\ndocker version --format '{{.Server.Version}}'`], { encoding: 'utf8', timeout: 30_000 }).trim();

  /** One line on stderr naming the failure, no stack trace. */
  const oneErrorLine = (stderr: string): string => {
    const errors = stderr.split('\n').filter((l) => l.startsWith('Error:'));
    expect(errors).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    return errors[0]!;
  };

  beforeAll(async () => {
    lab = await prepareLab();
    await ensureCloudHostImage(lab.docker, (m) => process.stderr.write(`[lab] ${m}\n`));
    const backend = await cloudHostBackend(lab.docker, { name: `tm-ec2-${randomBytes(3).toString('hex')}`, range: RANGE });
    fake = await FakeEc2.start({ backend });
    // A group the user made (and passes in): tmachine must leave it exactly as it is.
    userGroup = { groupId: 'sg-0user0000000001', groupName: 'user-made', description: 'made by the user', vpcId: fake.vpcId, tags: [{ key: 'owner', value: 'me' }], ingress: [{ protocol: 'tcp', fromPort: 8080, toPort: 8080, cidr: '198.51.100.0/24' }] };
    fake.groups.set(userGroup.groupId, userGroup);
    userGroupBefore = JSON.stringify(userGroup);
  });

  afterAll(async () => {
    if (lab) {
      const names = fs.existsSync(path.join(s.store, 'machines')) ? fs.readdirSync(path.join(s.store, 'machines')) : [];
      if (names.length > 0 && fake) await cli(['rm', '-f', '-y', ...names]).catch(() => undefined);
      await s.cleanup(lab.docker);
    }
    await fake?.close();
  });

  it('create: engine over TLS; one key pair, one group with exactly the rules, tags, IMDSv2, encrypted gp3; host key from the console; the second type when the first has no capacity', async () => {
    fake.faults.noCapacity = [{ instanceType: 't3.small' }];
    const created = await cli(['create', e1, ...driverFlags(), '--ec2-instance-type', 't3.small,t3.medium', '--ec2-security-group', 'user-made', '--engine-bundle', lab.bundlePath, '--debug']);
    fake.faults.noCapacity = [];
    ok(created);
    // The notes: the fallback, and what 0.0.0.0/0 means for 22 and 2376.
    expect(created.stderr + created.stdout).toMatch(/t3\.small in us-east-1a, t3\.small in us-east-1b, t3\.small in us-east-1c: no capacity; launched t3\.medium in us-east-1a/);
    expect(created.stderr + created.stdout).toMatch(/open to 0\.0\.0\.0\/0/);

    const env = ok(await cli(['env', e1])).stdout;
    expect(env).toContain('DOCKER_TLS_VERIFY="1"');
    // eval "$(tmachine env e1)" && docker version: the engine answers over TLS with the client certificate.
    expect(dockerThroughEnv(env)).toContain(lab.bundleVersion);
    const listening = ok(await cli(['ssh', e1, '--', 'sudo', 'ss', '-ltn'])).stdout;
    expect(listening).toMatch(/:2376\s/);
    expect(listening).not.toMatch(/:2375\s/);
    expect(ok(await cli(['ssh', e1, '--', 'whoami'])).stdout.trim()).toBe('admin');

    const [instance] = fake.liveInstances();
    expect(fake.liveInstances()).toHaveLength(1);
    expect(instance!.instanceType).toBe('t3.medium');
    expect(instance!.httpTokens).toBe('required');
    expect(Object.fromEntries(instance!.tags.map((t) => [t.key, t.value]))).toMatchObject({ Name: e1, 'tmachine:machine': e1, 'tmachine:managed': 'true' });
    const root = fake.volumes.get(instance!.volumeIds[0]!)!;
    expect([root.volumeType, root.encrypted, root.deleteOnTermination, root.size]).toEqual(['gp3', true, true, 16]);
    expect(ok(await cli(['ip', e1])).stdout.trim()).toBe(instance!.privateIp);

    const keyPairs = [...fake.keyPairs.values()];
    expect(keyPairs).toHaveLength(1);
    const machineKey = fs.readFileSync(path.join(s.store, 'machines', e1, 'id_ed25519.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    expect(keyPairs[0]!.publicKey).toBe(machineKey);
    expect(instance!.keyName).toBe(keyPairs[0]!.keyName);

    const groups = [...fake.groups.values()].filter((g) => g.tags.some((t) => t.key === 'tmachine:managed'));
    expect(groups.map((g) => g.groupName)).toEqual([`tmachine-${e1}`]);
    const group = groups[0]!;
    expect(instance!.groupIds.sort()).toEqual([group.groupId, userGroup.groupId].sort());
    const rules = group.ingress.map((r) => `${r.protocol} ${r.fromPort ?? ''}-${r.toPort ?? ''} ${r.cidr ?? (r.groupId === group.groupId ? 'self' : r.groupId)}`).sort();
    expect(rules).toEqual(['tcp 22-22 0.0.0.0/0', 'tcp 2376-2376 0.0.0.0/0', 'tcp 2377-2377 self', 'tcp 7946-7946 self', 'udp 4789-4789 self', 'udp 7946-7946 self'].sort());
    expect(JSON.stringify(userGroup)).toBe(userGroupBefore);

    // The pinned host key is the one the console published, read before the first connection.
    const record = JSON.parse(fs.readFileSync(path.join(s.store, 'machines', e1, 'config.json'), 'utf8')) as { ssh: { hostKey?: { key: string } }; driver: { state: { hostKeys?: string[] } } };
    const consoleKeys = record.driver.state.hostKeys ?? [];
    expect(consoleKeys.length).toBeGreaterThan(0);
    expect(consoleKeys.map((k) => k.split(' ')[1])).toContain(record.ssh.hostKey?.key);
    const consoleCall = fake.calls.findIndex((c) => c.action === 'GetConsoleOutput' && !c.error);
    expect(consoleCall).toBeGreaterThan(-1);
  });

  it('stop and start: the instance comes back on a new address, and the engine answers there over TLS', async () => {
    const before = ok(await cli(['ip', e1])).stdout.trim();
    ok(await cli(['stop', e1]));
    expect(ok(await cli(['status', e1])).stdout.trim()).toBe('Stopped');
    ok(await cli(['start', e1]));
    const after = ok(await cli(['ip', e1])).stdout.trim();
    expect(after).not.toBe(before);
    expect(after).toBe(fake.liveInstances()[0]!.privateIp);
    const env = ok(await cli(['env', e1])).stdout;
    expect(env).toContain(`tcp://${after}:2376`);
    expect(dockerThroughEnv(env)).toContain(lab.bundleVersion);
  });

  it('swarm bootstrap --managers 1 --workers 2 forms a real 3-node swarm; one RunInstances launches both workers', async () => {
    const runsBefore = fake.callsOf('RunInstances').length;
    const boot = await cli(['swarm', 'bootstrap', '--managers', '1', '--workers', '2', '--prefix', prefix, ...driverFlags(), '--engine-bundle', lab.bundlePath]);
    ok(boot);
    const runs = fake.callsOf('RunInstances').slice(runsBefore).filter((c) => !c.error);
    const counts = runs.map((c) => (c.params as Record<string, unknown>)['MinCount'] + '/' + (c.params as Record<string, unknown>)['MaxCount']).sort();
    expect(counts).toEqual(['1/1', '2/2']);
    const nodes = ok(await cli(['ssh', `${prefix}-manager-1`, '--', "sudo docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'"])).stdout.trim().split('\n');
    expect(nodes).toHaveLength(3);
    expect(nodes.every((n) => / Ready/.test(n))).toBe(true);
    expect(nodes.filter((n) => /Leader/.test(n))).toHaveLength(1);
    // One group for the cluster, shared by its three instances.
    const clusterGroup = [...fake.groups.values()].find((g) => g.groupName === `tmachine-${prefix}`)!;
    expect(fake.liveInstances().filter((i) => i.groupIds.includes(clusterGroup.groupId))).toHaveLength(3);
  });

  it('swarm deploy --open-ports opens the published port in the cluster group from --source-cidr only; again adds nothing; another range replaces it; the swarm ports stay between members', async () => {
    const { tarball } = await busyboxImageTarball(lab);
    ok(await cli(['swarm', 'load', tarball, '--cluster', prefix]));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tm-ec2-stack-')), 'web.yml');
    fs.writeFileSync(file, 'version: "3.8"\nservices:\n  web:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    ports: ["8080:80"]\n');
    const deploy = (cidr: string) => cli(['swarm', 'deploy', '-c', file, 'web', '--cluster', prefix, '--open-ports', '--source-cidr', cidr]);
    const group = () => [...fake.groups.values()].find((g) => g.groupName === `tmachine-${prefix}`)!;
    const rules = () => group().ingress.map((r) => `${r.protocol} ${r.fromPort ?? ''}-${r.toPort ?? ''} ${r.cidr ?? (r.groupId === group().groupId ? 'self' : r.groupId)}`).sort();
    const before = rules();
    expect(before.filter((r) => r.includes('8080'))).toEqual([]);
    try {
      const opened = ok(await deploy('198.51.100.0/24'));
      expect(opened.stderr).toMatch(new RegExp(`^cloud firewall: security group tmachine-${prefix} \\(${group().groupId}\\): 8080/tcp from 198\\.51\\.100\\.0/24$`, 'm'));
      expect(opened.stderr).not.toMatch(/Warning: port 8080/);
      expect(rules()).toEqual([...before, 'tcp 8080-8080 198.51.100.0/24'].sort());
      // The host firewall of every member has the port from that range too.
      for (const member of [`${prefix}-manager-1`, `${prefix}-worker-1`, `${prefix}-worker-2`]) {
        expect(ok(await cli(['ssh', member, '--', 'sudo -n iptables -w -S TMACHINE-PORTS'])).stdout).toContain('-A TMACHINE-PORTS -s 198.51.100.0/24 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN');
      }

      // The same deploy again: the rule holds, nothing is added.
      const authorized = fake.callsOf('AuthorizeSecurityGroupIngress').length;
      const again = ok(await deploy('198.51.100.0/24'));
      expect(again.stderr).toMatch(/^cloud firewall: security group \S+ \(sg-[0-9a-f]+\): 8080\/tcp from 198\.51\.100\.0\/24 \(already open\)$/m);
      expect(fake.callsOf('AuthorizeSecurityGroupIngress').length).toBe(authorized);
      expect(rules()).toEqual([...before, 'tcp 8080-8080 198.51.100.0/24'].sort());

      // Another range replaces the first, as in the host firewall.
      ok(await deploy('203.0.113.0/24'));
      expect(rules()).toEqual([...before, 'tcp 8080-8080 203.0.113.0/24'].sort());
      expect(fake.callsOf('RevokeSecurityGroupIngress').filter((c) => !c.error)).toHaveLength(1);

      // 2377, 7946 and 4789 are open from the group itself and from nowhere else.
      const swarmPorts = [2377, 7946, 4789];
      const covers = (r: { fromPort?: number; toPort?: number }, port: number) => r.fromPort === undefined || (r.fromPort <= port && port <= (r.toPort ?? r.fromPort));
      for (const port of swarmPorts) {
        const open = group().ingress.filter((r) => covers(r, port));
        expect(open.length, `rules covering ${port}`).toBeGreaterThan(0);
        expect(open.every((r) => r.groupId === group().groupId && r.cidr === undefined), `${port}: ${JSON.stringify(open)}`).toBe(true);
      }
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('rm -y of every machine leaves no instance, key pair or group that tmachine made; the user group is unchanged', async () => {
    const names = fs.readdirSync(path.join(s.store, 'machines'));
    expect(names.sort()).toEqual([e1, `${prefix}-manager-1`, `${prefix}-worker-1`, `${prefix}-worker-2`].sort());
    ok(await cli(['rm', '-y', `${prefix}-worker-1`]));
    // The cluster's group stays while other members use it.
    expect(leftovers().groups).toContain(`tmachine-${prefix}`);
    ok(await cli(['rm', '-y', e1, `${prefix}-manager-1`, `${prefix}-worker-2`]));
    expect(leftovers()).toEqual(nothingLeft);
    expect(fake.groups.get(userGroup.groupId)).toBeDefined();
    expect(JSON.stringify(userGroup)).toBe(userGroupBefore);
  });

  it('no capacity on any type or zone: one line naming RunInstances, non-zero exit, nothing left', async () => {
    fake.faults.noCapacity = [{}];
    const f1 = s.name('f1');
    const r = await cli(['create', f1, ...driverFlags(), '--ec2-instance-type', 't3.small,t3a.small', '--engine-bundle', lab.bundlePath]);
    fake.faults.noCapacity = [];
    expect(r.code).not.toBe(0);
    expect(oneErrorLine(r.stderr)).toMatch(/RunInstances: no capacity \(InsufficientInstanceCapacity\) for t3\.small, t3a\.small in us-east-1a, us-east-1b, us-east-1c/);
    expect(fake.callsOf('RunInstances').filter((c) => c.error === 'InsufficientInstanceCapacity').length).toBeGreaterThanOrEqual(6);
    expect(leftovers(f1)).toEqual(nothingLeft);
  });

  it('an image that does not exist: one line naming DescribeImages, nothing made', async () => {
    const calls = fake.calls.length;
    const f2 = s.name('f2');
    const r = await cli(['create', f2, ...driverFlags(), '--ec2-ami', 'ami-0000000000000dead', '--engine-bundle', lab.bundlePath]);
    expect(r.code).not.toBe(0);
    expect(oneErrorLine(r.stderr)).toMatch(/EC2 DescribeImages: the image does not exist in us-east-1: .*ami-0000000000000dead.* \(InvalidAMIID\.NotFound\)/);
    expect(fake.calls.slice(calls).map((c) => c.action)).not.toContain('RunInstances');
    expect(leftovers(f2)).toEqual(nothingLeft);
  });

  it('credentials missing: one line saying where the chain looked, nothing made', async () => {
    const calls = fake.calls.length;
    const f3 = s.name('f3');
    const r = await cli(['create', f3, ...driverFlags(), '--engine-bundle', lab.bundlePath], false);
    expect(r.code).not.toBe(0);
    const line = oneErrorLine(r.stderr);
    expect(line).toMatch(/no AWS credentials found \(looked in: environment \(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\)/);
    expect(line).toContain(path.join(noHome, 'credentials'));
    expect(fake.calls.length).toBe(calls);
    expect(leftovers(f3)).toEqual(nothingLeft);
  });

  it('an instance that never answers SSH: one line, non-zero exit, the instance, key pair and group removed', async () => {
    fake.faults.neverAnswerSsh = true;
    const f4 = s.name('f4');
    const r = await cli(['create', f4, ...driverFlags(8), '--engine-bundle', lab.bundlePath]);
    fake.faults.neverAnswerSsh = false;
    expect(r.code).not.toBe(0);
    expect(oneErrorLine(r.stderr)).toMatch(/did not answer SSH within 8s/);
    expect(fake.callsOf('TerminateInstances').length).toBeGreaterThan(0);
    expect(leftovers(f4)).toEqual(nothingLeft);
  });

  it('Ctrl-C while the instance is pending: it is terminated and nothing is left', async () => {
    fake.faults.pendingAtLeastMs = 120_000;
    const name = s.name('f5');
    const env: Record<string, string> = { ...(process.env as Record<string, string>), TMACHINE_STORAGE_PATH: s.store, TMACHINE_CACHE_PATH: CACHE_DIR };
    for (const [key, value] of Object.entries(awsEnv())) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), 'create', name, ...driverFlags(), '--engine-bundle', lab.bundlePath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    await eventually('the instance to be launched and pending', async () => (fake.liveInstances().some((i) => i.tags.some((t) => t.value === name)) ? true : undefined), 60_000);
    child.kill('SIGINT');
    const code = await exited;
    fake.faults.pendingAtLeastMs = 0;
    s.outputs.push(stdout, stderr);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/Interrupted/);
    expect(leftovers(name)).toEqual(nothingLeft);
    expect(fs.existsSync(path.join(s.store, 'machines', name))).toBe(false);
  });

  it('no credential, key or token in any output, --debug included', () => {
    const all = s.outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    expect(all).not.toContain(SECRET_ACCESS_KEY);
    expect(all).not.toContain(ACCESS_KEY_ID);
    expect(all).not.toMatch(/BEGIN OPENSSH PRIVATE KEY/);
    expect(all).not.toMatch(/SWMTKN-/);
  });
});
