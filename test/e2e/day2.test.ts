/**
 * Issue 17 acceptance on docker-driver hosts, on one shared cluster of 3 managers and 2
 * workers: ordered shutdown and start (node IDs survive, stacks back in order), recovery to
 * the full manager count after quorum loss, a private registry behind a CA the test makes,
 * and no credential or token in any output.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import Docker from 'dockerode';
import { busyboxImageTarball, CACHE_DIR, describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';

interface StatusJson {
  nodes: Array<{ machine: string; nodeId: string; role: string; status: string; availability: string; managerStatus: string }>;
  services: Array<{ name: string; running: number; desired: number }>;
}

describeE2E('day-2 operations on real hosts', () => {
  vi.setConfig({ testTimeout: 600_000 });
  let lab: Lab;
  const s = labSession('d2');
  const prefix = s.name('c');
  const m = (i: number) => `${prefix}-manager-${i}`;
  const w = (i: number) => `${prefix}-worker-${i}`;
  const all = [m(1), m(2), m(3), w(1), w(2)];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-day2-'));
  /** Values that must never appear in any output (filled as the tests learn them). */
  const secrets = new Set<string>();

  const status = async (): Promise<StatusJson> => JSON.parse(ok(await s.cli(['swarm', 'status', '--json'])).stdout) as StatusJson;
  const onHost = async (host: string, cmd: string) => ok(await s.cli(['ssh', host, '--', cmd])).stdout.trim();
  const running = (st: StatusJson, service: string) => st.services.find((x) => x.name === service)?.running ?? 0;
  const stackFile = (name: string, body: string) => {
    const file = path.join(work, `${name}.yml`);
    fs.writeFileSync(file, body);
    return file;
  };
  const idleStack = (service: string, replicas: number) =>
    `version: "3.8"\nservices:\n  ${service}:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    deploy: { endpoint_mode: dnsrr, replicas: ${replicas} }\n`;

  beforeAll(async () => {
    lab = await prepareLab();
    ok(await s.cli(['swarm', 'bootstrap', '--managers', '3', '--workers', '2', '--prefix', prefix, '--docker-subnet', '10.206.17.0/24', '--debug']));
    const { tarball } = await busyboxImageTarball(lab);
    ok(await s.cli(['swarm', 'load', tarball]));
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('shutdown --dry-run prints the ordered plan per host and changes nothing; shutdown then start keeps node IDs, 3 managers and both stacks, the --first stack first', async () => {
    ok(await s.cli(['swarm', 'deploy', '-c', stackFile('base', idleStack('db', 1)), 'base']));
    ok(await s.cli(['swarm', 'deploy', '-c', stackFile('app', idleStack('web', 2)), 'app']));
    await eventually('both stacks running', async () => {
      const st = await status();
      return running(st, 'base_db') === 1 && running(st, 'app_web') === 2 ? true : undefined;
    }, 120_000);
    const before = await status();
    const ids = Object.fromEntries(before.nodes.map((n) => [n.machine, n.nodeId]));
    const leader = before.nodes.find((n) => n.managerStatus === 'leader')!.machine;

    const dry = ok(await s.cli(['swarm', 'shutdown', '--dry-run']));
    const lines = dry.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/: would run: record 2 stack\(s\) \(base, app\) and 3 manager\(s\)$/);
    for (const other of before.nodes.filter((n) => n.role === 'manager' && n.machine !== leader)) {
      expect(lines).toContain(`${other.machine}: would run: demote to worker (${leader} stays the last manager)`);
    }
    const order = ['demote to worker', 'remove stacks', 'stop the engine', 'stop the engine (last manager)'].map((t) => lines.findIndex((l) => l.includes(`would run: ${t}`)));
    expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!))).toBe(true);
    expect(lines).toContain(`${leader}: would run: stop the engine (last manager)`);
    const unchanged = await status();
    expect(unchanged.nodes.filter((n) => n.role === 'manager')).toHaveLength(3);
    expect(running(unchanged, 'app_web')).toBe(2);

    ok(await s.cli(['swarm', 'shutdown']));
    for (const host of all) expect(await onHost(host, 'systemctl is-active docker || true')).toBe('inactive');
    const down = await s.cli(['swarm', 'status']);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(/^Error: cluster ".*" was shut down at .* \(bring it back with `tmachine swarm start`\)$/m);

    ok(await s.cli(['swarm', 'start', '--first', 'base']));
    const after = await eventually('both stacks running again', async () => {
      const st = await status();
      return running(st, 'base_db') === 1 && running(st, 'app_web') === 2 ? st : undefined;
    }, 120_000);
    expect(Object.fromEntries(after.nodes.map((n) => [n.machine, n.nodeId]))).toEqual(ids);
    expect(after.nodes.filter((n) => n.role === 'manager' && n.status === 'ready')).toHaveLength(3);
    expect(after.nodes.every((n) => n.status === 'ready')).toBe(true);
    const created = async (service: string) => BigInt(await onHost(leader, `docker service inspect --format '{{.CreatedAt.UnixNano}}' ${service}`));
    expect(await created('base_db')).toBeLessThan(await created('app_web'));
  });

  it('a private registry behind a CA the test makes: login refused with one x509 line before the CA is trusted; after registry-ca add and registry login, an image pushed on one node runs on every other node', async () => {
    const registryHost = w(2);
    const ip = ok(await s.cli(['ip', registryHost])).stdout.trim();
    const registry = `${ip}:5000`;
    const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
    secrets.add(password);
    // The CA and the registry's certificate (its IP in the SANs), made with openssl here.
    const certs = path.join(work, 'registry');
    fs.mkdirSync(certs);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certs, stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tm day2 test CA');
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${ip}`);
    fs.writeFileSync(path.join(certs, 'san.ext'), `subjectAltName=IP:${ip}\nbasicConstraints=CA:FALSE\n`);
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
    secrets.add(fs.readFileSync(path.join(certs, 'server.key'), 'utf8').split('\n')[1]!);
    fs.writeFileSync(path.join(certs, 'htpasswd'), `deploy:${bcrypt.hashSync(password, 10)}\n`);
    fs.writeFileSync(path.join(certs, 'pw'), password);
    fs.writeFileSync(
      path.join(certs, 'config.yml'),
      'version: 0.1\nstorage: { filesystem: { rootdirectory: /var/lib/tm-registry } }\nhttp: { addr: ":5000", tls: { certificate: /etc/tm-registry/server.crt, key: /etc/tm-registry/server.key } }\nauth: { htpasswd: { realm: tm-day2, path: /etc/tm-registry/htpasswd } }\n',
    );
    // Debian's docker-registry package: its binary, run as a transient systemd unit on the node.
    const deb = path.join(work, 'deb');
    fs.mkdirSync(deb);
    execFileSync('apt-get', ['download', 'docker-registry'], { cwd: deb, stdio: 'ignore' });
    execFileSync('dpkg', ['-x', fs.readdirSync(deb).find((f) => f.endsWith('.deb'))!, 'x'], { cwd: deb });
    ok(await s.cli(['scp', path.join(deb, 'x', 'usr', 'bin', 'docker-registry'), `${registryHost}:/tmp/docker-registry`]));
    for (const f of ['server.crt', 'server.key', 'htpasswd', 'config.yml', 'pw']) ok(await s.cli(['scp', path.join(certs, f), `${registryHost}:/tmp/reg-${f}`]));
    await onHost(
      registryHost,
      'sudo -n sh -c "mkdir -p /etc/tm-registry /var/lib/tm-registry && for f in server.crt server.key htpasswd config.yml; do install -m 0600 /tmp/reg-\\$f /etc/tm-registry/\\$f && rm -f /tmp/reg-\\$f || exit 1; done && install -m 0755 /tmp/docker-registry /usr/local/bin/docker-registry && systemd-run --unit tm-registry /usr/local/bin/docker-registry serve /etc/tm-registry/config.yml"',
    );

    await eventually('the registry listening', async () => ((await s.cli(['ssh', m(1), '--', `timeout 2 bash -c '</dev/tcp/${ip}/5000'`])).code === 0 ? true : undefined), 60_000);
    // Without the CA, the manager's login fails, and says why in one line.
    const untrusted = await s.cli(['registry', 'login', registry, '-u', 'deploy', '--password-stdin'], { stdin: password });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr.trim().split('\n')).toHaveLength(1);
    expect(untrusted.stderr).toMatch(/^Error: .*x509: certificate signed by unknown authority/);

    // A node whose engine is still coming back (after the shutdown test) is recorded as pending;
    // adding again (idempotent) installs it once its engine answers.
    const added = await eventually('the CA installed on every node', async () => {
      const r = JSON.parse(ok(await s.cli(['swarm', 'registry-ca', 'add', registry, path.join(certs, 'ca.crt'), '--json'])).stdout) as { installed: string[] };
      return r.installed.length === all.length ? r : undefined;
    }, 120_000);
    expect(added.installed.sort()).toEqual([...all].sort());
    for (const host of all) expect(await onHost(host, `cat /etc/docker/certs.d/${registry}/ca.crt`)).toBe(fs.readFileSync(path.join(certs, 'ca.crt'), 'utf8').trim());
    // Push from the registry's own node (its password from a file, never on a command line).
    await eventually('the registry answering', async () => ((await s.cli(['ssh', registryHost, '--', `docker login ${registry} -u deploy --password-stdin < /tmp/reg-pw`])).code === 0 ? true : undefined), 60_000);
    await onHost(registryHost, `rm -f /tmp/reg-pw; docker tag tmachine/busybox:test ${registry}/tm/busybox:pushed && docker push ${registry}/tm/busybox:pushed >/dev/null && docker logout ${registry} >/dev/null && docker rmi ${registry}/tm/busybox:pushed >/dev/null`);

    const login = ok(await s.cli(['registry', 'login', registry, '-u', 'deploy', '--password-stdin', '--debug'], { stdin: password }));
    expect(login.stdout).toMatch(/credentials for .* kept \(login checked on /);
    const stored = fs.readFileSync(path.join(s.store, 'registries', 'credentials.json'));
    expect(fs.statSync(path.join(s.store, 'registries', 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(stored.toString()).toContain(registry);

    const pulled = stackFile(
      'pulled',
      `version: "3.8"\nservices:\n  spread:\n    image: ${registry}/tm/busybox:pushed\n    command: ["sleep", "100000"]\n    deploy:\n      mode: global\n      endpoint_mode: dnsrr\n      placement: { constraints: ["node.hostname != ${registryHost}"] }\n`,
    );
    ok(await s.cli(['swarm', 'deploy', '-c', pulled, 'pulled', '--debug']));
    const placed = await eventually('the pulled image running on the 4 other nodes', async () => {
      const nodes = (await onHost(m(1), "docker service ps pulled_spread --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'")).split('\n').filter((l) => / Running /.test(l));
      return nodes.length === 4 ? nodes.map((l) => l.split(' ')[0]!).sort() : undefined;
    }, 120_000);
    expect(placed).toEqual(all.filter((h) => h !== registryHost).sort());
    // The manager was logged out again after the deploy.
    expect(await onHost(m(1), `grep -c '${registry}' ~/.docker/config.json 2>/dev/null || true`)).toMatch(/^0?$/);
    ok(await s.cli(['swarm', 'rm', 'pulled']));
  });

  it('quorum lost (2 of 3 managers stopped): swarm recover brings back 3 managers with every service; status says what was done and what is next; the stopped managers rejoin cleanly on the next bootstrap', async () => {
    const servicesBefore = (await status()).services.map((x) => `${x.name} ${x.desired}`).sort();
    expect(servicesBefore).toEqual(['app_web 2', 'base_db 1']);
    ok(await s.cli(['stop', m(2), m(3)]));
    await eventually('quorum loss reported', async () => {
      const r = await s.cli(['swarm', 'status']);
      return r.code !== 0 && /quorum lost/.test(r.stderr) ? true : undefined;
    }, 120_000);

    const recovered = JSON.parse(ok(await s.cli(['swarm', 'recover', m(1), '--json'])).stdout) as { forcedNewCluster: boolean; managers: number; pending: string[] };
    expect(recovered.forcedNewCluster).toBe(true);
    expect(recovered.managers).toBe(3);
    expect(recovered.pending.sort()).toEqual([m(2), m(3)].sort());
    const st = await eventually('services back at full count', async () => {
      const now = await status();
      return running(now, 'app_web') === 2 && running(now, 'base_db') === 1 ? now : undefined;
    }, 120_000);
    expect(st.nodes.filter((n) => n.role === 'manager' && n.status === 'ready').map((n) => n.machine).sort()).toEqual([m(1), w(1), w(2)].sort());
    expect(st.nodes.map((n) => n.machine).sort()).toEqual([m(1), w(1), w(2)].sort());
    const text = ok(await s.cli(['swarm', 'status'])).stdout;
    expect(text).toMatch(new RegExp(`^recovered at .* from ${m(1)} \\(forced a new cluster\\): .*promoted to manager`, 'm'));
    expect(text).toMatch(new RegExp(`^next: ${[m(2), m(3)].sort().join(', ')} did not answer`, 'm'));
    // A second recover on the healthy swarm forces nothing.
    expect((JSON.parse(ok(await s.cli(['swarm', 'recover', '--json'])).stdout) as { forcedNewCluster: boolean }).forcedNewCluster).toBe(false);

    ok(await s.cli(['start', m(2), m(3)]));
    ok(await s.cli(['swarm', 'bootstrap', '--managers', '3', '--workers', '2', '--prefix', prefix, '--docker-subnet', '10.206.17.0/24']));
    const after = await eventually('5 Ready nodes, the 3 listed managers', async () => {
      const now = await status();
      const managers = now.nodes.filter((n) => n.role === 'manager' && n.status === 'ready').map((n) => n.machine).sort();
      return now.nodes.length === 5 && now.nodes.every((n) => n.status === 'ready') && managers.join() === [m(1), m(2), m(3)].sort().join() ? now : undefined;
    }, 120_000);
    expect(after.services.map((x) => `${x.name} ${x.desired}`).sort()).toEqual(servicesBefore);
    expect(ok(await s.cli(['swarm', 'status'])).stdout).toMatch(/^next: nothing, every machine is back$/m);

    // swarm leave takes the node out of the node list; joined again, it gets the cluster's registry CA.
    ok(await s.cli(['swarm', 'leave', w(2)]));
    expect((await status()).nodes.map((n) => n.machine)).not.toContain(w(2));
    ok(await s.cli(['swarm', 'join', w(2), '--role', 'worker']));
    const one = JSON.parse(ok(await s.cli(['swarm', 'status', w(2), '--json'])).stdout) as { role: string; status: string; availability: string };
    expect(one).toMatchObject({ role: 'worker', status: 'ready', availability: 'active' });
    expect(ok(await s.cli(['swarm', 'status', m(1)])).stdout).toMatch(/^Manager Status:\s+(leader|reachable)$/m);
  });

  it('rolling upgrade to another engine bundle: one node at a time, --dry-run first; sampled every second, a 3-replica service never drops below 2 running tasks and 2 of 3 managers always have control', async () => {
    const bundle = await alternativeBundle(lab);
    // A cache of its own: the new bundle must not become the newest bundle of the shared cache.
    const cache = path.join(work, 'cache');
    fs.mkdirSync(cache);
    const env = { TMACHINE_CACHE_PATH: cache };
    fs.mkdirSync(path.join(cache, 'bundles'));
    for (const f of fs.readdirSync(path.join(CACHE_DIR, 'bundles')).filter((x) => x.startsWith(lab.bundleSha256))) fs.copyFileSync(path.join(CACHE_DIR, 'bundles', f), path.join(cache, 'bundles', f));
    ok(await s.cli(['swarm', 'deploy', '-c', stackFile('rolling', `version: "3.8"\nservices:\n  idle:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    deploy: { endpoint_mode: dnsrr, replicas: 3, placement: { max_replicas_per_node: 1 } }\n`), 'rolling']));
    await eventually('3 rolling tasks', async () => (running(await status(), 'rolling_idle') === 3 ? true : undefined), 120_000);

    const dry = ok(await s.cli(['swarm', 'upgrade', '--engine-bundle', bundle.path, '--dry-run'], { env })).stdout.trim().split('\n');
    expect(dry).toHaveLength(5);
    const leader = (await status()).nodes.find((n) => n.managerStatus === 'leader')!.machine;
    expect(dry.map((l) => l.split(':')[0])).toEqual([...[m(1), m(2), m(3)].filter((x) => x !== leader).sort(), leader, w(1), w(2)]);
    expect(dry.every((l) => /: would run: drain, install engine .*, wait Ready and tasks rescheduled, activate$/.test(l))).toBe(true);

    const engines = await engineClients(s, all);
    const samples: Array<{ at: string; tasks: number; managers: number }> = [];
    let upgrading = true;
    const sampler = (async () => {
      while (upgrading) {
        const started = Date.now();
        const counts = await Promise.all(
          all.map(async (host) => {
            const docker = engines.get(host)!;
            const info = (await withTimeout(docker.info(), 3_000).catch(() => undefined)) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } } | undefined;
            const containers = (await withTimeout(docker.listContainers({ filters: { label: ['com.docker.swarm.service.name=rolling_idle'] } }), 3_000).catch(() => undefined)) as unknown[] | undefined;
            // A manager is up when its engine runs in the swarm with control; `docker info` can be
            // slow on a busy machine, so an engine that answers the container list but not info
            // in time still counts as running (it is a member of the raft group either way).
            const up = info ? info.Swarm?.LocalNodeState === 'active' && info.Swarm.ControlAvailable === true : containers !== undefined;
            return { tasks: containers?.length ?? 0, manager: up && [m(1), m(2), m(3)].includes(host) };
          }),
        );
        samples.push({ at: new Date().toISOString(), tasks: counts.reduce((a, c) => a + c.tasks, 0), managers: counts.filter((c) => c.manager).length });
        await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (Date.now() - started))));
      }
    })();
    const upgraded = await s.cli(['swarm', 'upgrade', '--engine-bundle', bundle.path, '--batch', '1'], { env });
    upgrading = false;
    await sampler;
    ok(upgraded);
    expect(upgraded.stdout).toMatch(/^upgraded .* to engine /m);
    expect(samples.length).toBeGreaterThan(20);
    expect(samples.filter((x) => x.tasks < 2)).toEqual([]);
    expect(samples.filter((x) => x.managers < 2)).toEqual([]);
    for (const host of all) {
      expect((JSON.parse(ok(await s.cli(['inspect', host])).stdout) as { engine: { bundleSha256: string } }).engine.bundleSha256).toBe(bundle.sha256);
      expect(await onHost(host, 'sha256sum /usr/local/bin/containerd | cut -c1-64')).toBe(bundle.containerdSha256);
    }
    const after = await status();
    expect(after.nodes.every((n) => n.status === 'ready' && n.availability === 'active')).toBe(true);
    expect(running(after, 'rolling_idle')).toBe(3);
    // Run again: every node is on the bundle already, nothing is drained.
    expect(ok(await s.cli(['swarm', 'upgrade', '--engine-bundle', bundle.path], { env })).stdout).toMatch(/^every node already runs bundle /m);
  });

  it('deploy refuses a stack whose bind-mount source is missing on a node its placement allows, naming the service, the node and the path', async () => {
    const file = stackFile(
      'binds',
      'version: "3.8"\nservices:\n  reader:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    volumes: ["/srv/day2-data:/data:ro"]\n    deploy:\n      mode: global\n      endpoint_mode: dnsrr\n      placement: { constraints: ["node.role == worker"] }\n',
    );
    await onHost(w(1), 'sudo -n mkdir -p /srv/day2-data');
    const refused = await s.cli(['swarm', 'deploy', '-c', file, 'binds']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(`Error: service reader of stack binds bind-mounts /srv/day2-data, which is missing on ${w(2)} (`);
    expect(ok(await s.cli(['ssh', m(1), '--', "docker stack ls --format '{{.Name}}'"])).stdout.split('\n')).not.toContain('binds');
    await onHost(w(2), 'sudo -n mkdir -p /srv/day2-data');
    ok(await s.cli(['swarm', 'deploy', '-c', file, 'binds']));
    await eventually('a reader on each worker', async () => (running(await status(), 'binds_reader') === 2 ? true : undefined), 120_000);
    ok(await s.cli(['swarm', 'rm', 'binds']));
  });

  it('swarm mount installs a systemd mount unit on every node, idempotently, and it is mounted again after a host restart (tmpfs: this kernel has no NFS client)', async () => {
    const target = '/srv/day2-scratch';
    const dry = ok(await s.cli(['swarm', 'mount', 'tmpfs', target, '--type', 'tmpfs', '-o', 'size=8m', '--dry-run'])).stdout.trim().split('\n');
    expect(dry.sort()).toEqual(all.map((h) => `${h}: would run: mount tmpfs on ${target} (srv-day2\\x2dscratch.mount)`).sort());
    expect(await onHost(w(1), `findmnt -n -o FSTYPE ${target} || echo none`)).toBe('none');
    ok(await s.cli(['swarm', 'mount', 'tmpfs', target, '--type', 'tmpfs', '-o', 'size=8m']));
    for (const host of all) expect(await onHost(host, `findmnt -n -o FSTYPE,OPTIONS ${target}`)).toMatch(/^tmpfs\s+\S*size=8192k/);
    expect(ok(await s.cli(['swarm', 'mount', 'tmpfs', target, '--type', 'tmpfs', '-o', 'size=8m'])).stdout).toContain(`${target}: already mounted on every node`);
    ok(await s.cli(['restart', w(1)]));
    await eventually(`${w(1)} back with the mount`, async () => ((await s.cli(['ssh', w(1), '--', `findmnt -n -o FSTYPE ${target}`])).stdout.trim() === 'tmpfs' ? true : undefined), 120_000);
    expect(await onHost(w(1), 'systemctl is-enabled srv-day2\\\\x2dscratch.mount')).toBe('enabled');
    await eventually(`${w(1)} Ready again`, async () => ((await status()).nodes.find((n) => n.machine === w(1))?.status === 'ready' ? true : undefined), 240_000).catch(async (error: unknown) => {
      // Say what the host was doing, so a red run can be read.
      const seen = await s.cli(['ssh', w(1), '--', "systemctl is-active docker; docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.Error}}'; sudo -n journalctl -u docker -n 15 --no-pager -o cat"]);
      throw new Error(`${String(error)}\n${seen.stdout}${seen.stderr}\n${(await s.cli(['swarm', 'status'])).stdout}`);
    });
  });

  it('deploy warns for each published port it did not open; with --open-ports the port answers from --source-cidr only', async () => {
    const ip = ok(await s.cli(['ip', w(1)])).stdout.trim();
    const file = stackFile(
      'ports',
      `version: "3.8"\nservices:\n  web:\n    image: tmachine/busybox:test\n    command: ["sh", "-c", "while true; do echo hello-ports | nc -l -p 8090; done"]\n    ports: [{ target: 8090, published: 8090, protocol: tcp, mode: host }]\n    deploy:\n      endpoint_mode: dnsrr\n      placement: { constraints: ["node.hostname == ${w(1)}"] }\n`,
    );
    const warned = ok(await s.cli(['swarm', 'deploy', '-c', file, 'ports']));
    expect(warned.stderr).toMatch(/^Warning: port 8090\/tcp of service web is published but tmachine did not open it in the host or cloud firewall \(pass --open-ports --source-cidr CIDR\)$/m);
    const fromManager = `timeout 4 bash -c 'exec 3<>/dev/tcp/${ip}/8090; head -1 <&3' || echo refused`;
    await eventually('the port answering from a manager', async () => ((await onHost(m(1), fromManager)) === 'hello-ports' ? true : undefined), 120_000);
    const here = /\bsrc (\S+)/.exec(execFileSync('ip', ['route', 'get', ip]).toString())![1]!;
    const opened = ok(await s.cli(['swarm', 'deploy', '-c', file, 'ports', '--open-ports', '--source-cidr', `${here}/32`]));
    expect(opened.stderr).not.toMatch(/Warning: port 8090/);
    expect(await readTcp(ip, 8090)).toBe('hello-ports');
    expect(await onHost(m(1), fromManager)).toBe('refused');
    expect(await onHost(w(1), 'sudo -n iptables -w -S TMACHINE-PORTS')).toContain(`-A TMACHINE-PORTS -s ${here}/32 -p tcp -m conntrack --ctorigdstport 8090 --ctdir ORIGINAL -j RETURN`);
    const bad = await s.cli(['swarm', 'deploy', '-c', file, 'ports', '--open-ports', '--source-cidr', '10.0.0.0/99']);
    expect(bad.stderr.trim()).toBe('Error: --source-cidr "10.0.0.0/99" is not an address range (for example 203.0.113.0/24)');
    ok(await s.cli(['swarm', 'rm', 'ports']));
  });

  it('the rules --open-ports added are back after a host restart (saved on the host, restored once the engine is up)', async () => {
    const rules = await onHost(w(1), 'sudo -n iptables -w -S TMACHINE-PORTS');
    expect(rules).toMatch(/--ctorigdstport 8090 --ctdir ORIGINAL -j RETURN/);
    expect(await onHost(w(1), 'systemctl is-enabled tmachine-ports.service')).toBe('enabled');
    ok(await s.cli(['restart', w(1)]));
    await eventually(`${w(1)} back with its engine`, async () => ((await s.cli(['ssh', w(1), '--', 'systemctl is-active docker tmachine-ports.service'])).stdout.trim() === 'active\nactive' ? true : undefined), 240_000);
    expect(await onHost(w(1), 'sudo -n iptables -w -S TMACHINE-PORTS')).toBe(rules);
    for (const chain of ['DOCKER-USER', 'INPUT']) expect(await onHost(w(1), `sudo -n iptables -w -S ${chain} | grep -c -e '-j TMACHINE-PORTS'`)).toBe('1');
    await eventually(`${w(1)} Ready again`, async () => ((await status()).nodes.find((n) => n.machine === w(1))?.status === 'ready' ? true : undefined), 240_000);
  });

  it('backup of the 3-manager swarm holding a service, an overlay network and a secret; every host removed; restore onto a fresh host brings all three back', async () => {
    ok(await s.cli(['swarm', 'deploy', '-c', stackFile('kept', idleStack('svc', 1)), 'kept']));
    await onHost(m(1), 'head -c 24 /dev/urandom | base64 | docker secret create day2secret - >/dev/null && docker network create -d overlay --attachable day2net >/dev/null');
    const file = path.join(work, 'backup.tgz');
    const dry = ok(await s.cli(['swarm', 'backup', '-o', file, '--dry-run'])).stdout;
    expect(dry).toMatch(/: would run: stop the engine for a consistent copy/);
    expect(fs.existsSync(file)).toBe(false);
    const backup = JSON.parse(ok(await s.cli(['swarm', 'backup', '-o', file, '--json'])).stdout) as { file: string; meta: { from: string; managers: number } };
    expect(backup.file).toBe(file);
    expect(backup.meta.managers).toBe(3);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // The manager it stopped is back, and the swarm kept its 3 managers throughout.
    const st = await status();
    expect(st.nodes.filter((n) => n.role === 'manager' && (n.managerStatus === 'leader' || n.managerStatus === 'reachable'))).toHaveLength(3);

    ok(await s.cli(['rm', '-f', '-y', ...all]));
    const fresh = s.name('fresh');
    ok(await s.cli(['create', '--driver', 'docker', '--docker-subnet', '10.206.17.0/24', fresh]));
    const restored = JSON.parse(ok(await s.cli(['swarm', 'restore', file, '--to', fresh, '--cluster', 'restored', '--json'])).stdout) as { services: string[] };
    expect(restored.services).toContain('kept_svc');
    expect((await onHost(fresh, "docker service ls --format '{{.Name}}'")).split('\n')).toContain('kept_svc');
    expect((await onHost(fresh, "docker network ls --filter driver=overlay --format '{{.Name}}'")).split('\n')).toContain('day2net');
    expect((await onHost(fresh, "docker secret ls --format '{{.Name}}'")).split('\n')).toContain('day2secret');
    const nodes = (await onHost(fresh, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")).split('\n');
    expect(nodes).toEqual([`${fresh} Ready Leader`]);
  });

  it('never prints a registry password, key or join token, --debug included', () => {
    expect(secrets.size).toBeGreaterThanOrEqual(2);
    const everything = s.outputs.join('\n');
    expect(everything.length).toBeGreaterThan(1000);
    for (const secret of secrets) expect(everything).not.toContain(secret);
    expect(everything).not.toMatch(/SWMTKN-1-[0-9a-z]+-[0-9a-z]+/i);
  });
});

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms))]);
}

/** Engine clients straight to each host (TLS with the store's client certificate), for sampling. */
async function engineClients(s: ReturnType<typeof labSession>, hosts: string[]): Promise<Map<string, Docker>> {
  const certs = path.join(s.store, 'certs');
  const tls = { ca: fs.readFileSync(path.join(certs, 'ca.pem')), cert: fs.readFileSync(path.join(certs, 'cert.pem')), key: fs.readFileSync(path.join(certs, 'key.pem')) };
  const out = new Map<string, Docker>();
  for (const host of hosts) {
    const record = JSON.parse(ok(await s.cli(['inspect', host])).stdout) as { addresses: { public: string } };
    out.set(host, new Docker({ host: record.addresses.public, port: 2376, protocol: 'https', ...tls, timeout: 3_000 }));
  }
  return out;
}

/**
 * A second engine bundle that differs from the lab's for real: the same docker.io, with
 * containerd from bookworm-security (1.6.20~ds1-1+deb12u2) instead of bookworm's point
 * release (+deb12u3), the only two Docker-related builds Debian's archive has for bookworm.
 */
async function alternativeBundle(lab: Lab): Promise<{ path: string; sha256: string; containerdSha256: string }> {
  const dir = path.join(CACHE_DIR, 'day2-alt-bundle');
  const file = path.join(dir, 'engine-bundle-containerd-deb12u2.tgz');
  const sum = (f: string) => execFileSync('sha256sum', [f]).toString().slice(0, 64);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const build = fs.mkdtempSync(path.join(dir, 'build-'));
    try {
      execFileSync('tar', ['xzf', lab.bundlePath, '-C', build]);
      execFileSync('apt-get', ['download', 'containerd=1.6.20~ds1-1+deb12u2'], { cwd: build, stdio: 'ignore' });
      execFileSync('dpkg', ['-x', fs.readdirSync(build).find((f) => f.endsWith('.deb'))!, 'x'], { cwd: build });
      for (const bin of ['containerd', 'containerd-shim-runc-v2', 'ctr']) fs.copyFileSync(path.join(build, 'x', 'usr', 'bin', bin), path.join(build, 'docker', bin));
      execFileSync('tar', ['czf', `${file}.part`, '-C', build, 'docker']);
      fs.renameSync(`${file}.part`, file);
    } finally {
      fs.rmSync(build, { recursive: true, force: true });
    }
  }
  const inner = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-day2-bundle-'));
  try {
    execFileSync('tar', ['xzf', file, '-C', inner, 'docker/containerd']);
    return { path: file, sha256: sum(file), containerdSha256: sum(path.join(inner, 'docker', 'containerd')) };
  } finally {
    fs.rmSync(inner, { recursive: true, force: true });
  }
}

function readTcp(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let data = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer from ${host}:${port}`)));
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve(data.trim()));
    socket.on('error', reject);
  });
}
