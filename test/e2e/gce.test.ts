/**
 * Issue 15 acceptance through the CLI: the gce driver, driven through `@google-cloud/compute`
 * against the suite's Compute Engine endpoint (test/fakes/gce), whose instances are real
 * hosts (cloud-init applies the ssh-keys metadata) on a test network with GCE's MTU of 1460.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureCloudHostImage, ensureTestNetwork, removeByLabel, removeTestNetwork } from '../support/cloud-host.js';
import { busyboxImageTarball, describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { repoRoot } from '../support/cli.js';
import { cloudHostBackend } from '../fakes/gce/cloud-host-backend.js';
import { GceFake } from '../fakes/gce/server.js';

const TOKEN = 'ya29.test-token-for-the-fake';
const RUN_LABEL = 'tmachine.test.gce';

describeE2E('gce driver on the Compute Engine fake (real hosts, MTU 1460)', () => {
  let lab: Lab;
  let fake: GceFake;
  const s = labSession('g');
  const runId = s.name('x').replace(/-x$/, '');
  const networkName = `tm-gce-${runId}`;
  const labels = { [RUN_LABEL]: runId };
  const worker1 = s.name('worker1');

  const gceFlags = () => ['--gce-project', 'p', '--gce-zone', 'europe-west1-b', '--gce-endpoint', fake.url];
  const cli = (args: string[], env: Record<string, string | undefined> = {}) => s.cli(args, { env: { GOOGLE_OAUTH_ACCESS_TOKEN: TOKEN, ...env } });

  beforeAll(async () => {
    lab = await prepareLab();
    await ensureCloudHostImage(lab.docker, (m) => process.stderr.write(`[gce] ${m}\n`));
    await ensureTestNetwork(lab.docker, networkName, { range: '10.203.0.0/16', mtu: 1460, labels });
    fake = new GceFake({ backend: cloudHostBackend(lab.docker, { network: networkName, mtu: 1460, prefix: `tm-gce-${runId}`, labels }) });
    await fake.start();
  }, 600_000);

  afterAll(async () => {
    if (!lab) return;
    await s.cleanup(lab.docker).catch(() => undefined);
    await fake?.stop();
    await removeByLabel(lab.docker, RUN_LABEL, runId);
    await removeTestNetwork(lab.docker, networkName);
  }, 300_000);

  it('create: the engine answers over TLS; the firewall rules, the instance and its host key are as promised', async () => {
    const created = ok(await cli(['create', '--driver', 'gce', ...gceFlags(), '--engine-bundle', lab.bundlePath, worker1]));
    // The one-line note on SSH and the engine being open to the world.
    expect(created.stderr).toMatch(/open to 0\.0\.0\.0\/0 .*--gce-source-range/);

    const env = ok(await cli(['env', worker1])).stdout;
    const info = execFileSync('bash', ['-c', `${env}\ndocker info --format '{{.ServerVersion}}'`], { encoding: 'utf8' });
    expect(info.trim()).toContain(lab.bundleVersion);

    const instances = fake.listInstances('p');
    expect(instances).toHaveLength(1);
    const instance = instances[0]!;
    expect(instance['name']).toBe(worker1);
    expect(String(instance['zone'])).toMatch(/\/zones\/europe-west1-b$/);
    expect(instance['labels']).toEqual({ 'tmachine-managed': 'true', 'tmachine-machine': worker1 });
    expect((instance['tags'] as { items: string[] }).items).toEqual(['tmachine']);
    const metadata = Object.fromEntries((instance['metadata'] as { items: Array<{ key: string; value: string }> }).items.map((i) => [i.key, i.value]));
    expect(metadata['enable-guest-attributes']).toBe('TRUE');
    expect(metadata['ssh-keys']).toMatch(/^docker-user:ssh-ed25519 \S+ docker-user$/);
    const disk = (instance['disks'] as Array<{ initializeParams: { sourceImage: string; diskType: string } }>)[0]!;
    expect(disk.initializeParams.sourceImage).toMatch(/projects\/debian-cloud\/global\/images\/debian-12-/);
    expect(disk.initializeParams.diskType).toMatch(/diskTypes\/pd-balanced$/);

    // The address the API reports is the backing host's, and it is what tmachine uses.
    const ip = ok(await cli(['ip', worker1])).stdout.trim();
    const nic = (instance['networkInterfaces'] as Array<{ networkIP: string; accessConfigs: Array<{ natIP: string }> }>)[0]!;
    expect(ip).toBe(nic.accessConfigs[0]!.natIP);
    expect(nic.networkIP).toBe(ip);

    // Firewall rules exactly as issue 15 lists them, for machines outside a cluster.
    const rules = Object.fromEntries(fake.listFirewalls('p').map((r) => [r['name'], r]));
    expect(Object.keys(rules).sort()).toEqual(['tmachine-ssh-engine', 'tmachine-swarm']);
    expect(rules['tmachine-ssh-engine']).toMatchObject({ sourceRanges: ['0.0.0.0/0'], targetTags: ['tmachine'], allowed: [{ IPProtocol: 'tcp', ports: ['22', '2376'] }] });
    expect(rules['tmachine-ssh-engine']).not.toHaveProperty('sourceTags');
    expect(rules['tmachine-swarm']).toMatchObject({ sourceTags: ['tmachine'], targetTags: ['tmachine'], allowed: [{ IPProtocol: 'tcp', ports: ['2377', '7946'] }, { IPProtocol: 'udp', ports: ['7946', '4789'] }] });
    expect(rules['tmachine-swarm']).not.toHaveProperty('sourceRanges');

    // Every insert carried a requestId; the key was read from the guest attributes before the first SSH login.
    const inserts = fake.calls.filter((c) => c.method === 'POST' && /\/(instances|firewalls)$/.test(c.path));
    expect(inserts.length).toBe(3);
    for (const insert of inserts) expect(insert.query['requestId']).toMatch(/^[0-9a-f-]{36}$/);
    expect(fake.callsTo('GET', /\/instances\/[^/]+\/getGuestAttributes$/).map((c) => c.query['queryPath'])).toContain('hostkeys/');
    const record = JSON.parse(fs.readFileSync(path.join(s.store, 'machines', worker1, 'config.json'), 'utf8')) as { ssh: { hostKey: { algorithm: string; key: string } } };
    const published = await fake.publishedHostKeys('p', 'europe-west1-b', worker1);
    expect(published.map((line) => line.split(/\s+/).slice(0, 2).join(' '))).toContain(`${record.ssh.hostKey.algorithm} ${record.ssh.hostKey.key}`);
  }, 300_000);

  it('stop, start, kill and status go through the API; ip stays the host address', async () => {
    ok(await cli(['stop', worker1]));
    expect(ok(await cli(['status', worker1])).stdout.trim()).toMatch(/stopped/i);
    expect(fake.listInstances('p')[0]!['status']).toBe('TERMINATED');
    ok(await cli(['start', worker1]));
    expect(ok(await cli(['status', worker1])).stdout.trim()).toMatch(/running/i);
    const nic = (fake.listInstances('p')[0]!['networkInterfaces'] as Array<{ accessConfigs: Array<{ natIP: string }> }>)[0]!;
    expect(ok(await cli(['ip', worker1])).stdout.trim()).toBe(nic.accessConfigs[0]!.natIP);
    // --debug shows the API calls, never the access token.
    ok(await cli(['kill', '--debug', worker1]));
    expect(s.outputs.join('\n')).not.toContain(TOKEN);
    expect(fake.callsTo('POST', /\/instances\/[^/]+\/reset$/)).toHaveLength(1);
    const hostname = await eventually('ssh after the reset', async () => {
      const r = await cli(['ssh', worker1, '--', 'hostname']);
      return r.code === 0 ? r.stdout.trim() : undefined;
    }, 120_000);
    expect(hostname).toBe(worker1);
  }, 300_000);

  it('rm -y leaves no instance and no firewall rule that tmachine made', async () => {
    ok(await cli(['rm', '-y', worker1]));
    await fake.settle();
    expect(fake.listInstances('p')).toEqual([]);
    expect(fake.listFirewalls('p')).toEqual([]);
  });

  it('swarm bootstrap: 3 nodes on the fake, one bulkInsert for the workers, zone fallback, overlay MTU 1410 and 1 MB between two nodes', async () => {
    const cluster = `${runId}c`;
    const [manager, workerA, workerB] = [`${cluster}-manager-1`, `${cluster}-worker-1`, `${cluster}-worker-2`];
    const calls = (method: string, pattern: RegExp) => fake.callsTo(method, pattern).filter((c) => c.at >= bootStarted);
    const bootStarted = Date.now();
    // No capacity in the first zone: every node goes to the second, and a note says so.
    fake.faults.exhaustedZones = new Set(['europe-west1-b']);
    let boot;
    try {
      boot = await cli(['swarm', 'bootstrap', '--driver', 'gce', '--managers', '1', '--workers', '2', '--prefix', cluster, '--gce-project', 'p', '--gce-zones=europe-west1-b,europe-west1-c', '--gce-endpoint', fake.url, '--engine-bundle', lab.bundlePath]);
    } finally {
      fake.faults.exhaustedZones = new Set();
    }
    ok(boot);
    expect(boot.stderr).toMatch(/e2-medium in europe-west1-b had no capacity \(ZONE_RESOURCE_POOL_EXHAUSTED\); used e2-medium in europe-west1-c/);
    expect(boot.stderr).toMatch(/e2-medium in europe-west1-b had no capacity \(ZONE_RESOURCE_POOL_EXHAUSTED\); created \S+-worker-1, \S+-worker-2 as e2-medium in europe-west1-c/);

    // The workers came from one bulkInsert that succeeded; no worker was inserted on its own.
    const bulk = calls('POST', /\/instances\/bulkInsert$/).filter((c) => c.status === 200);
    const madeWorkers = bulk.filter((c) => c.path.includes('/zones/europe-west1-c/'));
    expect(madeWorkers).toHaveLength(1);
    const bulkBody = madeWorkers[0]!.body as { count: string; perInstanceProperties: Record<string, unknown> };
    expect(Number(bulkBody.count)).toBe(2);
    expect(Object.keys(bulkBody.perInstanceProperties).sort()).toEqual([workerA, workerB]);
    const singles = calls('POST', /\/instances$/).map((c) => (c.body as { name: string }).name);
    expect(singles.filter((n) => n !== manager)).toEqual([]);
    for (const call of [...bulk, ...calls('POST', /\/instances$/)]) expect(call.query['requestId']).toMatch(/^[0-9a-f-]{36}$/);

    const instances = fake.listInstances('p');
    expect(instances.map((i) => i['name']).sort()).toEqual([manager, workerA, workerB]);
    for (const instance of instances) {
      expect(String(instance['zone'])).toMatch(/\/zones\/europe-west1-c$/);
      expect(instance['labels']).toEqual({ 'tmachine-managed': 'true', 'tmachine-machine': instance['name'], 'tmachine-cluster': cluster });
      expect((instance['tags'] as { items: string[] }).items).toEqual([`tmachine-${cluster}`]);
    }
    const rules = Object.fromEntries(fake.listFirewalls('p').map((r) => [r['name'], r]));
    expect(Object.keys(rules).sort()).toEqual([`tmachine-${cluster}-ssh-engine`, `tmachine-${cluster}-swarm`]);
    expect(rules[`tmachine-${cluster}-swarm`]).toMatchObject({ sourceTags: [`tmachine-${cluster}`], targetTags: [`tmachine-${cluster}`] });

    const onManager = async (command: string) => ok(await cli(['ssh', manager, '--', command])).stdout.trim();
    const nodes = await onManager("docker node ls --format '{{.Hostname}} {{.Status}}'");
    expect(nodes.split('\n').sort()).toEqual([`${manager} Ready`, `${workerA} Ready`, `${workerB} Ready`]);

    // GCE's MTU: the NICs have 1460, so the ingress network got 1410.
    expect(await onManager("ip -o link show eth0 | grep -o 'mtu [0-9]*'")).toBe('mtu 1460');
    expect(await onManager(`docker network inspect ingress --format '{{index .Options "com.docker.network.driver.mtu"}}'`)).toBe('1410');

    // 1 MB (busybox itself, ~2 MB) from a task on one worker to a task on the other, over an overlay network at 1410.
    const { tarball } = await busyboxImageTarball(lab);
    ok(await cli(['swarm', 'load', tarball, '--cluster', cluster]));
    const stackFile = path.join(os.tmpdir(), `gce-stack-${runId}.yml`);
    fs.writeFileSync(
      stackFile,
      `version: "3.8"
services:
  srv:
    image: tmachine/busybox:test
    command: ["sh", "-c", "ls -l /bin/busybox; while true; do nc -l -p 5000 -e cat /bin/busybox; done"]
    networks: [data]
    deploy: { endpoint_mode: dnsrr, placement: { constraints: ["node.hostname == ${workerA}"] } }
  cli:
    image: tmachine/busybox:test
    command: ["sh", "-c", "while true; do nc srv 5000 > /got; ls -l /got; sleep 1; done"]
    networks: [data]
    deploy: { endpoint_mode: dnsrr, placement: { constraints: ["node.hostname == ${workerB}"] } }
networks:
  data:
    driver: overlay
    driver_opts: { com.docker.network.driver.mtu: "1410" }
`,
    );
    try {
      ok(await cli(['swarm', 'deploy', '-c', stackFile, 'app', '--cluster', cluster]));
    } finally {
      fs.rmSync(stackFile, { force: true });
    }
    expect(await onManager(`docker network inspect app_data --format '{{index .Options "com.docker.network.driver.mtu"}}'`)).toBe('1410');
    // busybox `ls -l` lines: "-rw-r--r--    1 0        0          1982256 Dec  1 21:18 /got".
    const sizeOf = (logs: string, file: string) => logs.split('\n').filter((l) => l.trim().endsWith(` ${file}`)).map((l) => Number(l.trim().split(/\s+/)[4]));
    const expected = await eventually('the server task to report its file size', async () => sizeOf(await onManager('docker service logs --raw app_srv 2>&1'), '/bin/busybox')[0], 120_000);
    expect(expected).toBeGreaterThan(1_000_000);
    const received = await eventually('a complete transfer to the client task', async () => (sizeOf(await onManager('docker service logs --raw app_cli 2>&1'), '/got').includes(expected) ? expected : undefined), 120_000);
    expect(received).toBe(expected);
    const placed = await onManager("docker service ps app_srv app_cli --filter desired-state=running --format '{{.Name}} {{.Node}}'");
    expect(placed).toContain(`app_srv.1 ${workerA}`);
    expect(placed).toContain(`app_cli.1 ${workerB}`);

    // swarm deploy --open-ports: one rule for the published port, from that range only, to the cluster's tag.
    const webFile = path.join(os.tmpdir(), `gce-web-${runId}.yml`);
    fs.writeFileSync(webFile, 'version: "3.8"\nservices:\n  web:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    ports: ["8080:80"]\n');
    const deployWeb = (cidr: string) => cli(['swarm', 'deploy', '-c', webFile, 'web', '--cluster', cluster, '--open-ports', '--source-cidr', cidr]);
    const portRule = `tmachine-${cluster}-port-8080-tcp`;
    const firewalls = () => Object.fromEntries(fake.listFirewalls('p').map((r) => [String(r['name']), r]));
    const baseRules = JSON.stringify([rules[`tmachine-${cluster}-ssh-engine`], rules[`tmachine-${cluster}-swarm`]]);
    const firewallWrites = () => fake.calls.filter((c) => /\/global\/firewalls(\/|$)/.test(c.path) && c.method !== 'GET').length;
    try {
      const opened = ok(await deployWeb('198.51.100.0/24'));
      expect(opened.stderr).toMatch(new RegExp(`^cloud firewall: firewall rule ${portRule}: 8080/tcp from 198\\.51\\.100\\.0/24 to tag tmachine-${cluster}$`, 'm'));
      expect(Object.keys(firewalls()).sort()).toEqual([portRule, `tmachine-${cluster}-ssh-engine`, `tmachine-${cluster}-swarm`]);
      expect(firewalls()[portRule]).toMatchObject({ direction: 'INGRESS', sourceRanges: ['198.51.100.0/24'], targetTags: [`tmachine-${cluster}`], allowed: [{ IPProtocol: 'tcp', ports: ['8080'] }] });
      expect(firewalls()[portRule]).not.toHaveProperty('sourceTags');
      // Every member's undo log names the rule, so the last of them to go removes it.
      for (const member of [manager, workerA, workerB]) {
        const resources = (JSON.parse(fs.readFileSync(path.join(s.store, 'machines', member, 'config.json'), 'utf8')) as { driver: { resources: Array<{ kind: string; id: string; shared?: boolean }> } }).driver.resources;
        expect(resources).toContainEqual(expect.objectContaining({ kind: 'firewall', id: portRule, shared: true }));
      }
      expect(await onManager('sudo -n iptables -w -S TMACHINE-PORTS')).toContain('-A TMACHINE-PORTS -s 198.51.100.0/24 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN');

      // Again: the rule is right, so no insert and no patch.
      const writes = firewallWrites();
      const again = ok(await deployWeb('198.51.100.0/24'));
      expect(again.stderr).toMatch(/^cloud firewall: firewall rule \S+: 8080\/tcp from 198\.51\.100\.0\/24 to tag \S+ \(already open\)$/m);
      expect(firewallWrites()).toBe(writes);
      expect(Object.keys(firewalls())).toHaveLength(3);

      // Another range replaces the first (the rule is patched), as in the host firewall.
      ok(await deployWeb('203.0.113.0/24'));
      expect(firewalls()[portRule]).toMatchObject({ sourceRanges: ['203.0.113.0/24'], allowed: [{ IPProtocol: 'tcp', ports: ['8080'] }] });
      expect(fake.callsTo('PATCH', new RegExp(`/global/firewalls/${portRule}$`))).toHaveLength(1);

      // The swarm ports are still open between members only: the base rules are unchanged, and no other rule allows 2377, 7946 or 4789.
      const now = firewalls();
      expect(JSON.stringify([now[`tmachine-${cluster}-ssh-engine`], now[`tmachine-${cluster}-swarm`]])).toBe(baseRules);
      const allowsSwarmPort = (r: Record<string, unknown>) =>
        ((r['allowed'] as Array<{ ports?: string[] }>) ?? []).some((a) => !a.ports?.length || a.ports.some((p) => ['2377', '7946', '4789'].includes(p)));
      expect(Object.values(now).filter(allowsSwarmPort).map((r) => r['name'])).toEqual([`tmachine-${cluster}-swarm`]);
    } finally {
      fs.rmSync(webFile, { force: true });
    }

    // rm -y of every machine: no instance and no firewall rule left.
    ok(await cli(['rm', '-y', manager, workerA, workerB]));
    await fake.settle();
    expect(fake.listInstances('p')).toEqual([]);
    expect(fake.listFirewalls('p')).toEqual([]);
  }, 600_000);

  it('Ctrl-C while the insert operation runs: one line, and the instance and rules are removed', async () => {
    fake.faults.slowOperationsMs = 120_000;
    const name = s.name('intr');
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), 'create', '--driver', 'gce', ...gceFlags(), '--engine-bundle', lab.bundlePath, name], {
      env: { ...process.env, TMACHINE_STORAGE_PATH: s.store, GOOGLE_OAUTH_ACCESS_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    let code: number;
    try {
      // Interrupt once the instance runs (its host booted) and its insert operation has not finished.
      const running = await Promise.race([
        eventually('the instance running while its insert operation runs', async () => (fake.listInstances('p').some((i) => i['name'] === name && i['status'] === 'RUNNING') ? true : undefined), 180_000),
        exited.then((early) => {
          throw new Error(`create ended before the interrupt (exit ${early}): ${stderr}`);
        }),
      ]);
      expect(running).toBe(true);
      child.kill('SIGINT');
      code = await exited;
    } finally {
      fake.faults.slowOperationsMs = 0;
    }
    expect(code, stderr).not.toBe(0);
    const errors = stderr.split('\n').filter((line) => line.startsWith('Error:'));
    expect(errors, stderr).toHaveLength(1);
    expect(errors[0]).toMatch(/interrupt/i);
    await fake.settle();
    expect(fake.listInstances('p')).toEqual([]);
    expect(fake.listFirewalls('p')).toEqual([]);
    expect(fake.callsTo('DELETE', new RegExp(`/instances/${name}$`))).toHaveLength(1);
    // The host behind the instance is gone too.
    expect((await lab.docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${runId}`] } })).map((c) => c.Names)).toEqual([]);
    expect(fs.existsSync(path.join(s.store, 'machines', name))).toBe(false);
  }, 300_000);

});
