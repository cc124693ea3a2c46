/**
 * Issue 17, "Adopting what exists", on real hosts (docker driver): a swarm formed by hand is
 * recorded by `swarm bootstrap` instead of a second one being started, and a host whose engine
 * was set up as the DCCN manual's nodes are (a systemd drop-in with -H tcp://0.0.0.0:2375) is
 * refused with one line, then moved to TLS on 2376 with --engine-migrate-tls.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tcpAnswers } from '../../drivers/kit/wait.js';
import { errorLines, STACK_TRACE } from '../support/cli.js';
import { describeE2E, labSession, ok, prepareLab, type Lab } from '../support/lab.js';

const DROP_IN = '/etc/systemd/system/docker.service.d/override.conf';

interface Record_ {
  name: string;
  ssh: { host: string; user: string; keyPath: string };
  addresses: { public: string };
}

describeE2E('adopting what exists: a swarm formed by hand, an engine on plain TCP', () => {
  let lab: Lab;
  const s = labSession('adopt');
  const src = labSession('adsrc');
  // Subnets of this file's range (10.209.0.0/16), a different /24 per run.
  const octet = 10 + Math.floor(Math.random() * 200);
  const subnet = (n: number) => `10.209.${octet + n}.0/24`;

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) {
      await s.cleanup(lab.docker);
      await src.cleanup(lab.docker);
    }
  });

  const inspect = async (session: typeof s, name: string) => JSON.parse(ok(await session.cli(['inspect', name, '--format', 'json'])).stdout) as Record_;
  const onHost = async (session: typeof s, name: string, command: string) => ok(await session.cli(['ssh', name, '--', command])).stdout.trim();

  it('swarm bootstrap over three hosts that already form a swarm records that swarm: same cluster ID and node IDs, no second swarm', async () => {
    const [m1, w1, w2] = [s.name('m1'), s.name('w1'), s.name('w2')];
    ok(await s.cli(['create', '-d', 'docker', '--docker-subnet', subnet(0), '--engine-bundle', lab.bundlePath, m1, w1, w2]));
    // The swarm as its users formed it, by hand.
    const ip = (await inspect(s, m1)).addresses.public;
    await onHost(s, m1, `docker swarm init --advertise-addr ${ip} >/dev/null`);
    const token = await onHost(s, m1, 'docker swarm join-token -q worker');
    for (const w of [w1, w2]) await onHost(s, w, `docker swarm join --token ${token} ${ip}:2377 >/dev/null`);
    const clusterId = await onHost(s, m1, "docker info --format '{{.Swarm.Cluster.ID}}'");
    const nodeIds = (await onHost(s, m1, 'docker node ls -q')).split('\n').sort();
    expect(nodeIds).toHaveLength(3);

    const cluster = s.name('c');
    const r = ok(await s.cli(['swarm', 'bootstrap', '--prefix', cluster, '--manager', m1, '--worker', w1, '--worker', w2]));
    expect(r.stderr).toContain(`${cluster}: recorded the swarm that ${m1} already manages (cluster ${clusterId.slice(0, 12)}); no second swarm was started`);
    expect(await onHost(s, m1, "docker info --format '{{.Swarm.Cluster.ID}}'")).toBe(clusterId);
    expect((await onHost(s, m1, 'docker node ls -q')).split('\n').sort()).toEqual(nodeIds);
    for (const w of [w1, w2]) expect(await onHost(s, w, "docker info --format '{{.Swarm.LocalNodeState}}'")).toBe('active');
    // The cluster is tmachine's now: status names its three members, a re-run changes nothing.
    const status = JSON.parse(ok(await s.cli(['swarm', 'status', '--cluster', cluster, '--json'])).stdout) as { nodes: Array<{ machine: string; role: string; nodeId: string }> };
    expect(status.nodes.map((n) => `${n.machine} ${n.role}`).sort()).toEqual([`${m1} manager`, `${w1} worker`, `${w2} worker`].sort());
    expect(status.nodes.map((n) => n.nodeId).sort()).toEqual(nodeIds);
    const again = JSON.parse(ok(await s.cli(['swarm', 'bootstrap', '--prefix', cluster, '--manager', m1, '--worker', w1, '--worker', w2, '--json'])).stdout) as { unchanged: boolean };
    expect(again.unchanged).toBe(true);
    ok(await s.cli(['rm', '-y', '-f', m1, w1, w2]));
  });

  it("a host set up as the manual's (drop-in with -H tcp://0.0.0.0:2375): --engine-install none reports it in one line and changes nothing; --engine-migrate-tls ends with TLS on 2376 and nothing on 2375", async () => {
    // A host with an engine, then configured by hand as the manual's nodes are.
    const h = src.name('manual');
    ok(await src.cli(['create', '-d', 'docker', '--docker-subnet', subnet(1), '--engine-bundle', lab.bundlePath, h]));
    const host = await inspect(src, h);
    await onHost(
      src,
      h,
      [
        `sudo mkdir -p ${path.dirname(DROP_IN)}`,
        `sudo sh -c 'printf "[Service]\\nExecStart=\\nExecStart=/usr/local/bin/dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375 --containerd=/run/containerd/containerd.sock\\n" > ${DROP_IN}'`,
        'sudo rm -f /etc/docker/daemon.json',
        'sudo systemctl daemon-reload',
        'sudo systemctl restart docker',
      ].join(' && '),
    );
    const ip = host.addresses.public;
    expect((await tcpAnswers(ip, 2375, 5_000)).ok).toBe(true);

    const name = s.name('adopted');
    const args = [
      'create', '--driver', 'generic', '--generic-ip-address', host.ssh.host, '--generic-ssh-user', host.ssh.user,
      '--generic-ssh-key', path.join(src.store, 'machines', h, host.ssh.keyPath), '--engine-install', 'none', name,
    ];
    const refused = await s.cli(args);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).not.toMatch(STACK_TRACE);
    const errors = errorLines(refused);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(name);
    expect(errors[0]).toContain(`tcp://0.0.0.0:2375 (plain TCP, no TLS) in ${DROP_IN}`);
    expect(refused.stderr).toContain('--engine-migrate-tls');
    // Nothing changed: no machine recorded, the drop-in in place, the engine still on 2375.
    expect(ok(await s.cli(['ls', '-q'])).stdout.trim().split('\n')).not.toContain(name);
    expect(await onHost(src, h, `test -f ${DROP_IN} && echo present`)).toBe('present');
    expect((await tcpAnswers(ip, 2375, 5_000)).ok).toBe(true);

    const migrated = ok(await s.cli([...args.slice(0, -1), '--engine-migrate-tls', name]));
    expect(migrated.stderr).not.toMatch(STACK_TRACE);
    expect(await onHost(s, name, `test ! -e ${DROP_IN} && test -f ${DROP_IN}.tmachine-moved && echo moved`)).toBe('moved');
    expect(await onHost(s, name, "ss -Hltn 'sport = :2375' | wc -l")).toBe('0');
    expect((await tcpAnswers(ip, 2375, 5_000)).reason).toBe('ECONNREFUSED');
    // TLS on 2376 with the new store's client certificate, as a user reaches it.
    const env = ok(await s.cli(['env', name])).stdout;
    const config = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-adopt-docker-'));
    try {
      const version = execFileSync('bash', ['-c', `${env}\ndocker version --format '{{.Server.Version}}'`], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: config } }).trim();
      expect(version).toMatch(/^20\.10\./);
    } finally {
      fs.rmSync(config, { recursive: true, force: true });
    }
    // Again: nothing left to move, nothing changes.
    const again = ok(await s.cli(['provision', name]));
    expect(again.stderr + again.stdout).not.toContain('moved aside');
  });
});
