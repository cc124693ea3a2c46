/**
 * Partition and loss (issue 20) on docker-driver hosts, each test on its own network and
 * store: the leader's host removed underneath tmachine (its container gone, the store still
 * naming it), and the leader cut off by a firewall DROP and healed. Each time the other
 * managers keep the swarm, `swarm status` (plain and --json) says what is wrong, that quorum
 * holds, and the next command; that command (or the healed network) brings the swarm back
 * to 3 reachable managers with one node entry per host.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { removeCgroupLeftovers } from '../../drivers/docker/local-engine.js';
import { busyboxImageTarball, describeE2E, eventually, ok, prepareLab, type Lab } from '../support/lab.js';
import { execIn, hardeningSession, resourcesOf, type HardeningSession } from './support.js';

interface StatusJson {
  nodes: Array<{ machine: string; nodeId: string; role: string; status: string; managerStatus: string }>;
  services: Array<{ name: string; running: number; desired: number }>;
  health: {
    state: string;
    quorumHeld: boolean;
    managers: { wanted: number; listed: number; reachable: number; quorum: number };
    problems: Array<{ machine: string; role: string; host: string; why: string }>;
    summary: string;
    next?: string;
  };
}

describeE2E('partition and loss of a manager', () => {
  vi.setConfig({ testTimeout: 600_000 });
  let lab: Lab;
  const sessions: HardeningSession[] = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-partition-'));
  const session = (prefix: string, octets: [number, number]) => {
    const s = hardeningSession(prefix, octets);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    for (const s of sessions) if (lab) await s.cleanup(lab.docker);
    fs.rmSync(work, { recursive: true, force: true });
  });

  const status = async (s: HardeningSession): Promise<StatusJson> => JSON.parse(ok(await s.cli(['swarm', 'status', '--json'])).stdout) as StatusJson;
  const leaderOf = (st: StatusJson) => st.nodes.find((n) => n.managerStatus === 'leader')?.machine;
  /** `docker node ls` on a manager: "hostname status manager-status" per node, sorted. */
  const nodeLs = async (s: HardeningSession, manager: string) =>
    ok(await s.cli(['ssh', manager, '--', 'docker', 'node', 'ls', '--format', "'{{.Hostname}} {{.Status}} {{.ManagerStatus}}'"])).stdout.trim().split('\n').map((l) => l.trim()).sort();
  async function containerOf(machine: string): Promise<string> {
    const found = await lab.docker.listContainers({ all: true, filters: { label: [`tmachine.machine=${machine}`] } });
    if (!found[0]) throw new Error(`no container for ${machine}`);
    return found[0].Id;
  }

  it("the leader's host removed underneath (its container gone, the store still naming it): a new leader, the service kept, status explains and names `swarm recover`, which gets back to 3 managers; bootstrap again restores the declared cluster", async () => {
    const s = session('hprg', [110, 129]);
    const prefix = s.name('g');
    const m = (i: number) => `${prefix}-manager-${i}`;
    const worker = `${prefix}-worker-1`;
    const bootstrap = ['swarm', 'bootstrap', '--managers', '3', '--workers', '1', '--prefix', prefix];
    ok(await s.cli(bootstrap));
    ok(await s.cli(['swarm', 'load', (await busyboxImageTarball(lab)).tarball]));
    const stack = path.join(work, 'keep.yml');
    fs.writeFileSync(stack, 'version: "3.8"\nservices:\n  idle:\n    image: tmachine/busybox:test\n    command: ["sleep", "100000"]\n    deploy: { endpoint_mode: dnsrr, replicas: 2 }\n');
    ok(await s.cli(['swarm', 'deploy', '-c', stack, 'keep']));
    await eventually('2 tasks of keep_idle running', async () => ((await status(s)).services.find((x) => x.name === 'keep_idle')?.running === 2 ? true : undefined), 120_000);
    const before = await status(s);
    expect(before.health.state).toBe('healthy');
    const leader = leaderOf(before)!;
    expect([m(1), m(2), m(3)]).toContain(leader);
    const others = [m(1), m(2), m(3)].filter((x) => x !== leader);

    // The host goes away under tmachine: its container removed through the lab engine.
    const id = await containerOf(leader);
    const nested = (await execIn(lab.docker, id, 'docker ps -aq --no-trunc')).output.match(/[0-9a-f]{64}/g) ?? [];
    await lab.docker.getContainer(id).remove({ force: true });
    await removeCgroupLeftovers([...nested, id]);

    const lost = await eventually('a new leader among the other managers, the old one unreachable', async () => {
      const st = await status(s);
      const gone = st.nodes.find((n) => n.machine === leader);
      // Settled: every other node reports to the new leader again.
      const settled = st.nodes.every((n) => n.machine === leader || n.status === 'ready');
      return others.includes(leaderOf(st) ?? '') && gone?.managerStatus === 'unreachable' && settled ? st : undefined;
    }, 180_000);
    expect(lost.services.find((x) => x.name === 'keep_idle')?.desired).toBe(2);
    await eventually('keep_idle back at 2 running tasks', async () => ((await status(s)).services.find((x) => x.name === 'keep_idle')?.running === 2 ? true : undefined), 120_000);

    // What status says, as JSON and as text: the lost manager, quorum held, the next command.
    expect(lost.health.state).toBe('degraded');
    expect(lost.health.quorumHeld).toBe(true);
    expect(lost.health.managers).toEqual({ wanted: 3, listed: 3, reachable: 2, quorum: 2 });
    expect(lost.health.problems).toEqual([{ machine: leader, role: 'manager', status: expect.any(String), managerStatus: 'unreachable', host: 'not-found', why: 'its host is gone' }]);
    expect(lost.health.next).toBe(`\`tmachine swarm recover\` removes ${leader} from the swarm and promotes a worker to get back to 3 managers`);
    const text = ok(await s.cli(['swarm', 'status'])).stdout;
    expect(text).toMatch(new RegExp(`^state: degraded: manager ${leader} is unreachable \\(its host is gone\\); quorum held: 2 of 3 managers reachable \\(quorum needs 2\\); losing one more manager loses quorum$`, 'm'));
    expect(text).toContain(`\nnext: \`tmachine swarm recover\` removes ${leader} from the swarm and promotes a worker to get back to 3 managers\n`);

    // The next command, as status names it.
    const recovered = JSON.parse(ok(await s.cli(['swarm', 'recover', '--json'])).stdout) as { forcedNewCluster: boolean; managers: number; gone: string[]; pending: string[]; done: string[] };
    expect(recovered.forcedNewCluster).toBe(false);
    expect(recovered.managers).toBe(3);
    expect(recovered.gone).toEqual([leader]);
    expect(recovered.pending).toEqual([]);
    expect(recovered.done).toContain(`${leader}: its host is gone; taken out of the swarm and the cluster (\`tmachine rm -f ${leader}\` forgets the machine)`);
    // The lost manager's entry is gone; the worker is the third manager; no Down entry is left.
    const three = await nodeLs(s, others[0]!);
    expect(three.map((n) => n.split(' ')[0])).toEqual([...others, worker].sort());
    expect(three.filter((n) => !/ Ready (Leader|Reachable)$/.test(n))).toEqual([]);
    expect(three.filter((n) => n.endsWith(' Leader'))).toHaveLength(1);
    const healed = await status(s);
    expect(healed.health.state).toBe('healthy');
    expect(healed.health.next).toBeUndefined();
    // A node that had to rejoin has its task started again elsewhere or on itself.
    await eventually('keep_idle at 2 running tasks after the recovery', async () => ((await status(s)).services.find((x) => x.name === 'keep_idle')?.running === 2 ? true : undefined), 120_000);
    expect(ok(await s.cli(['swarm', 'status'])).stdout).toMatch(/^state: healthy: 3 of 3 managers reachable \(quorum needs 2\), every node ready$/m);

    // As recover says: forget the machine; the same bootstrap then makes it again, as declared.
    ok(await s.cli(['rm', '-f', '-y', leader]));
    expect(await resourcesOf(lab.docker, leader)).toEqual([]);
    ok(await s.cli(bootstrap));
    const declared = await eventually('3 managers and the worker, each once and Ready', async () => {
      const nodes = await nodeLs(s, others[0]!);
      return nodes.length === 4 && nodes.every((n) => / Ready /.test(`${n} `)) ? nodes : undefined;
    }, 180_000);
    expect(declared.map((n) => n.split(' ')[0])).toEqual([m(1), m(2), m(3), worker].sort());
    expect(declared.find((n) => n.startsWith(`${worker} `))).toBe(`${worker} Ready`);
    expect((await status(s)).health.state).toBe('healthy');
  });

  it('the leader cut off by a firewall DROP: status shows it unreachable with quorum held; healed, it is a reachable manager again and bootstrap again changes nothing', async () => {
    const s = session('hprc', [130, 149]);
    const prefix = s.name('c');
    const managers = [1, 2, 3].map((i) => `${prefix}-manager-${i}`);
    const bootstrap = ['swarm', 'bootstrap', '--managers', '3', '--prefix', prefix];
    ok(await s.cli(bootstrap));
    const before = await status(s);
    expect(before.health.state).toBe('healthy');
    const ids = before.nodes.map((n) => n.nodeId).sort();
    const cut = leaderOf(before)!;
    const others = managers.filter((x) => x !== cut);
    const id = await containerOf(cut);

    expect((await execIn(lab.docker, id, 'iptables -I INPUT -j DROP && iptables -I OUTPUT -j DROP && echo cut')).output).toContain('cut');
    try {
      const split = await eventually('the cut-off manager unreachable, a leader among the others', async () => {
        const st = await status(s);
        const settled = st.nodes.every((n) => n.machine === cut || n.status === 'ready');
        return others.includes(leaderOf(st) ?? '') && st.nodes.find((n) => n.machine === cut)?.managerStatus === 'unreachable' && settled ? st : undefined;
      }, 180_000);
      expect(split.health.state).toBe('degraded');
      expect(split.health.quorumHeld).toBe(true);
      expect(split.health.managers).toEqual({ wanted: 3, listed: 3, reachable: 2, quorum: 2 });
      expect(split.health.problems.map((p) => [p.machine, p.host])).toEqual([[cut, 'running']]);
      const next = `restore the network or the engine of ${cut} (\`tmachine ssh ${cut} -- docker info\`); it rejoins as a manager by itself once the others reach it`;
      expect(split.health.next).toBe(next);
      const text = ok(await s.cli(['swarm', 'status'])).stdout;
      expect(text).toMatch(new RegExp(`^state: degraded: manager ${cut} is unreachable \\(its host runs, but the swarm does not reach it \\(network cut, or its engine is down\\)\\); quorum held: 2 of 3 managers reachable`, 'm'));
      expect(text).toContain(`\nnext: ${next}`);
    } finally {
      await execIn(lab.docker, id, 'iptables -D INPUT -j DROP; iptables -D OUTPUT -j DROP');
    }

    const back = await eventually(`${cut} Ready and a reachable manager again`, async () => {
      const nodes = await nodeLs(s, others[0]!);
      return nodes.length === 3 && nodes.every((n) => / Ready (Leader|Reachable)$/.test(n)) ? nodes : undefined;
    }, 180_000);
    expect(back.map((n) => n.split(' ')[0])).toEqual([...managers].sort());
    const healthy = await eventually('status healthy', async () => {
      const st = await status(s);
      return st.health.state === 'healthy' ? st : undefined;
    }, 60_000);
    expect(healthy.health.managers).toEqual({ wanted: 3, listed: 3, reachable: 3, quorum: 2 });
    expect(healthy.nodes.map((n) => n.nodeId).sort()).toEqual(ids);

    const again = ok(await s.cli(bootstrap));
    expect(again.stderr).toContain('Every step was already done; nothing changed.');
    expect((await status(s)).nodes.map((n) => n.nodeId).sort()).toEqual(ids);
    expect((await nodeLs(s, others[0]!)).map((n) => n.split(' ')[0])).toEqual([...managers].sort());
  });
});
