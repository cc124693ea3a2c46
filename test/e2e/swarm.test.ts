/**
 * Issue 4 acceptance on docker-driver hosts: a 3-manager, 2-worker swarm bootstrapped by
 * tmachine, a labelled stack deployed through it, idempotent re-runs, manager loss, quorum
 * loss and recovery; and join tokens never printed.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { busyboxImageTarball, describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';

interface StatusJson {
  nodes: Array<{ machine: string; nodeId: string; role: string; status: string; managerStatus: string; labels: Record<string, string> }>;
  services: Array<{ name: string; running: number; desired: number }>;
}

describeE2E('swarm on real hosts', () => {
  // Each step waits on a real cluster converging; deadlines live in eventually().
  vi.setConfig({ testTimeout: 600_000 });
  let lab: Lab;
  const s = labSession('sw');
  const prefix = s.name('c');
  const m = (i: number) => `${prefix}-manager-${i}`;
  const w = (i: number) => `${prefix}-worker-${i}`;
  const bootstrapArgs = ['swarm', 'bootstrap', '--managers', '3', '--workers', '2', '--prefix', prefix, '--debug'];
  const tokens = new Set<string>();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-swarm-'));

  const status = async (): Promise<StatusJson> => JSON.parse(ok(await s.cli(['swarm', 'status', '--json'])).stdout) as StatusJson;
  /** Join tokens straight from the engine API (never through tmachine's output). */
  const collectTokens = async (machine: string) => {
    const record = JSON.parse(ok(await s.cli(['inspect', machine])).stdout) as { addresses: { public: string } };
    const certs = path.join(s.store, 'certs');
    const docker = new Docker({ host: record.addresses.public, port: 2376, protocol: 'https', ca: fs.readFileSync(path.join(certs, 'ca.pem')), cert: fs.readFileSync(path.join(certs, 'cert.pem')), key: fs.readFileSync(path.join(certs, 'key.pem')) });
    const swarm = (await docker.swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } };
    tokens.add(swarm.JoinTokens.Worker);
    tokens.add(swarm.JoinTokens.Manager);
  };

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('bootstraps 3 managers and 2 workers: 5 Ready nodes, one Leader, and warns that this kernel has no IPVS', async () => {
    const r = ok(await s.cli(bootstrapArgs));
    expect(r.stderr).toMatch(/^Warning: the kernel of .* has no IPVS: .*dnsrr.*mode: host$/m);
    expect(r.stdout).toMatch(/MACHINE\s+ROLE/);
    const nodeLs = ok(await s.cli(['ssh', m(1), '--', 'docker', 'node', 'ls', '--format', "'{{.Hostname}} {{.Status}} {{.ManagerStatus}}'"])).stdout.trim().split('\n');
    expect(nodeLs).toHaveLength(5);
    expect(nodeLs.every((l) => l.split(' ')[1] === 'Ready')).toBe(true);
    expect(nodeLs.filter((l) => / (Leader|Reachable)$/.test(l))).toHaveLength(3);
    expect(nodeLs.filter((l) => / Leader$/.test(l))).toHaveLength(1);
    await collectTokens(m(1));
  });

  it('deploys a labelled stack: tasks on labelled nodes, ports answer, tasks reach each other over the overlay', async () => {
    const labelled = [w(1), w(2), m(3)];
    for (const node of labelled) ok(await s.cli(['swarm', 'label', node, 'function=production']));
    const { tarball, image } = await busyboxImageTarball(lab);
    ok(await s.cli(['swarm', 'load', tarball]));
    const stack = path.join(work, 'stack.yml');
    fs.writeFileSync(
      stack,
      [
        'version: "3.8"',
        'services:',
        '  web:',
        `    image: ${image}`,
        '    command: ["sh", "-c", "while true; do echo hello-from-$$(hostname) | nc -l -p 8080; done"]',
        '    networks: [appnet]',
        '    ports: [{ target: 8080, published: 8080, protocol: tcp, mode: host }]',
        '    deploy:',
        '      endpoint_mode: dnsrr',
        '      replicas: 3',
        '      placement: { constraints: ["node.labels.function == production"] }',
        'networks:',
        '  appnet: { driver: overlay }',
        '',
      ].join('\n'),
    );
    ok(await s.cli(['swarm', 'deploy', '-c', stack, 'app']));
    await eventually('3 running tasks', async () => ((await status()).services.find((x) => x.name === 'app_web')?.running === 3 ? true : undefined), 120_000);

    const placed = ok(await s.cli(['ssh', m(1), '--', 'docker', 'service', 'ps', 'app_web', '--filter', 'desired-state=running', '--format', "'{{.Node}}'"])).stdout.trim().split('\n').sort();
    expect(placed).toEqual([...labelled].sort());
    for (const node of placed) {
      const ip = ok(await s.cli(['ip', node])).stdout.trim();
      expect(await readTcp(ip, 8080)).toMatch(/^hello-from-/);
    }
    // From the task on worker-1, every task address that DNS returns answers over the overlay.
    const probe = ok(
      await s.cli(['ssh', w(1), '--', `c=$(docker ps -q --filter label=com.docker.swarm.service.name=app_web); for ip in $(docker exec $c nslookup tasks.web | awk '/^Address/ && $NF !~ /:53$/ {print $NF}'); do echo "$ip $(docker exec $c sh -c "nc -w 3 $ip 8080 </dev/null")"; done`]),
    ).stdout;
    const answers = probe.trim().split('\n').filter((l) => / hello-from-/.test(l));
    expect(answers.length).toBe(3);
    expect(new Set(answers.map((l) => l.split(' ')[1])).size).toBe(3);
  });

  it('running the same bootstrap again changes nothing (node IDs unchanged)', async () => {
    const before = (await status()).nodes.map((n) => n.nodeId).sort();
    const r = ok(await s.cli(bootstrapArgs));
    expect(r.stderr).toContain('Every step was already done; nothing changed.');
    expect((await status()).nodes.map((n) => n.nodeId).sort()).toEqual(before);
  });

  it('with one manager of three stopped: status shows it down and deploy still works; started again it is Ready and Reachable', async () => {
    ok(await s.cli(['stop', m(2)]));
    const down = await eventually('manager-2 shown down', async () => {
      const st = await status();
      const node = st.nodes.find((n) => n.machine === m(2));
      return node && node.status === 'down' && node.managerStatus === 'unreachable' ? st : undefined;
    });
    expect(down.nodes.filter((n) => n.role === 'manager')).toHaveLength(3);
    const stack = path.join(work, 'stack2.yml');
    fs.writeFileSync(stack, `version: "3.8"\nservices:\n  idle:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    deploy: { endpoint_mode: dnsrr, replicas: 1 }\n`);
    ok(await s.cli(['swarm', 'deploy', '-c', stack, 'second']));
    ok(await s.cli(['start', m(2)]));
    await eventually('manager-2 Ready and Reachable', async () => {
      const node = (await status()).nodes.find((n) => n.machine === m(2));
      return node?.status === 'ready' && node.managerStatus === 'reachable' ? true : undefined;
    }, 120_000);
  });

  it('with two managers of three stopped: status says quorum is lost and how to recover; swarm recover brings the cluster back', async () => {
    ok(await s.cli(['stop', m(2), m(3)]));
    const lost = await eventually('quorum loss reported', async () => {
      const r = await s.cli(['swarm', 'status']);
      return r.code !== 0 && /quorum lost/.test(r.stderr) ? r : undefined;
    }, 120_000);
    expect(lost.stderr.trim().split('\n')).toHaveLength(1);
    expect(lost.stderr).toContain(`tmachine swarm recover ${m(1)}`);

    ok(await s.cli(['swarm', 'recover', m(1)]));
    const st = await status();
    expect(st.nodes.filter((n) => n.role === 'manager' && n.status === 'ready')).toHaveLength(3);
    const stack = path.join(work, 'stack3.yml');
    fs.writeFileSync(stack, `version: "3.8"\nservices:\n  after:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    deploy: { endpoint_mode: dnsrr, replicas: 2 }\n`);
    ok(await s.cli(['swarm', 'deploy', '-c', stack, 'third']));
    await eventually('the new stack runs', async () => ((await status()).services.find((x) => x.name === 'third_after')?.running === 2 ? true : undefined), 120_000);
    await collectTokens(m(1));
  });

  it('never prints a join token, --debug included', () => {
    expect(tokens.size).toBeGreaterThanOrEqual(2);
    const all = s.outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const token of tokens) expect(all).not.toContain(token);
  });
});

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
