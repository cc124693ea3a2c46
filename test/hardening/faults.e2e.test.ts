/**
 * Faults in the middle of `create` and `swarm bootstrap` on docker-driver hosts, each
 * injected the moment the CLI's progress shows the step (never after a sleep): a host
 * stopped during its engine install (one of three creates failing), sshd killed during the
 * bundle upload over SFTP (a generic machine), a worker cut off by a firewall DROP during its
 * join, and the manager's engine killed while a worker joins. Each time: one line naming the
 * host and the step, the other hosts finish, the store is valid, nothing is left that no
 * record names, and the same command again completes the cluster with no duplicate node.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeE2E, eventually, ok, prepareLab, type Lab } from '../support/lab.js';
import { errorLines, execIn, hardeningSession, machines, nodeList, orphans, runWatching, STACK_TRACE } from './support.js';

describeE2E('faults during create and swarm bootstrap', () => {
  vi.setConfig({ testTimeout: 420_000 });
  let lab: Lab;
  const s = hardeningSession('hflt', [30, 49]);

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
  });

  async function containerOf(machine: string): Promise<string> {
    const found = await lab.docker.listContainers({ all: true, filters: { label: [`tmachine.machine=${machine}`] } });
    if (!found[0]) throw new Error(`no container for ${machine}`);
    return found[0].Id;
  }

  /** The store answers and names no half-made machine. */
  async function storeIsValid(): Promise<void> {
    const all = await machines(s);
    expect(all.filter((m) => m.creating).map((m) => m.name)).toEqual([]);
  }

  async function removeAll(prefix: string): Promise<void> {
    const names = (await machines(s)).map((m) => m.name).filter((n) => n.startsWith(prefix));
    if (names.length > 0) ok(await s.cli(['rm', '-f', '-y', ...names]));
  }

  it('one of three creates fails (its host stopped during the engine install): one line, the other two finish, the same create then completes it', async () => {
    const [a, b, c] = [s.name('c1'), s.name('c2'), s.name('c3')];
    const r = await runWatching(s, ['create', '--driver', 'docker', a, b, c], new RegExp(`❯ ${b}: install the engine binaries`), async () => {
      await lab.docker.getContainer(await containerOf(b)).stop({ t: 0 });
    });
    expect(r.triggered).toBe(true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    const lines = errorLines(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(b);
    expect(lines[0]).toMatch(/install the engine binaries|provision|engine/);
    expect(lines[0]).not.toContain(a);
    await storeIsValid();
    const names = (await machines(s)).map((m) => m.name);
    expect(names).toContain(a);
    expect(names).toContain(c);
    for (const name of [a, c]) expect(ok(await s.cli(['ssh', name, '--', 'docker', 'info', '--format', '{{.ServerVersion}}'])).stdout).toMatch(/^20\.10/);
    expect(await orphans(lab.docker, s, s.name('c'))).toEqual([]);
    // Again: the two that exist are left alone (said so), the failed one is made.
    const again = await s.cli(['create', '--driver', 'docker', b]);
    ok(again);
    expect(ok(await s.cli(['ssh', b, '--', 'docker', 'info', '--format', '{{.ServerVersion}}'])).stdout).toMatch(/^20\.10/);
    expect(await orphans(lab.docker, s, s.name('c'))).toEqual([]);
    await removeAll(s.name('c'));
  });

  it('sshd killed during the bundle upload over SFTP (generic machine): one line, nothing recorded, the same create completes', async () => {
    // A host made in another store, its engine removed again, adopted as a generic machine:
    // generic machines get the bundle over SFTP (the docker driver copies it through its engine).
    const base = hardeningSession('hflb', [30, 49]);
    try {
      const host = base.name('h');
      ok(await base.cli(['create', '--driver', 'docker', host]));
      const record = (await machines(base)).find((m) => m.name === host)!;
      ok(await base.cli(['ssh', host, '--', 'sudo systemctl disable --now docker.socket docker containerd >/dev/null 2>&1; sudo rm -f /usr/local/bin/dockerd /usr/local/bin/docker /usr/local/bin/containerd']));
      const id = await containerOf(host);
      const name = s.name('g1');
      const args = [
        'create', '--driver', 'generic', '--generic-ip-address', record.ssh.host, '--generic-ssh-user', record.ssh.user,
        '--generic-ssh-key', path.join(base.store, 'machines', host, record.ssh.keyPath), name,
      ];
      const r = await runWatching(s, args, new RegExp(`❯ ${name}: upload the engine bundle`), async () => {
        // The listener and every session process: the upload's connection drops mid-file.
        await execIn(lab.docker, id, 'systemctl stop ssh.socket ssh.service 2>/dev/null; pkill -9 -x sshd; true');
      });
      expect(r.triggered).toBe(true);
      expect(r.code).not.toBe(0);
      expect(r.stderr).not.toMatch(STACK_TRACE);
      const lines = errorLines(r);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(name);
      expect(lines[0]).toMatch(/upload the engine bundle|SSH|ssh/);
      await storeIsValid();
      expect((await machines(s)).map((m) => m.name)).not.toContain(name);
      // sshd back, the same command completes.
      expect((await execIn(lab.docker, id, 'systemctl start ssh.service && echo started')).output).toContain('started');
      await eventually('sshd answers again', async () => ((await base.cli(['ssh', host, '--', 'true'])).code === 0 ? true : undefined));
      ok(await s.cli(args));
      expect(ok(await s.cli(['ssh', name, '--', 'docker', 'info', '--format', '{{.ServerVersion}}'])).stdout).toMatch(/^20\.10/);
      ok(await s.cli(['rm', '-y', name]));
    } finally {
      await base.cleanup(lab.docker);
    }
  });

  it('a worker cut off by a firewall DROP during its join: one line naming it, the rest of the swarm forms, the same bootstrap completes with no duplicate node', async () => {
    const prefix = s.name('fw');
    const args = ['swarm', 'bootstrap', '--managers', '1', '--workers', '2', '--prefix', prefix];
    const worker = `${prefix}-worker-1`;
    let id = '';
    const r = await runWatching(s, args, new RegExp(`❯ ${worker}: join the swarm as worker`), async () => {
      id = await containerOf(worker);
      const cut = await execIn(lab.docker, id, 'iptables -I INPUT -j DROP && iptables -I OUTPUT -j DROP && echo cut');
      expect(cut.output).toContain('cut');
    });
    expect(r.triggered).toBe(true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    const lines = errorLines(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(worker);
    await storeIsValid();
    // The manager and the other worker finished.
    const nodes = await nodeList(s, `${prefix}-manager-1`);
    expect(nodes).toContain(`${prefix}-manager-1 Ready`);
    expect(nodes).toContain(`${prefix}-worker-2 Ready`);
    expect(await orphans(lab.docker, s, prefix)).toEqual([]);
    // The network heals; the same command completes the cluster, one node per host.
    await execIn(lab.docker, id, 'iptables -D INPUT -j DROP; iptables -D OUTPUT -j DROP');
    ok(await s.cli(args));
    expect(await nodeList(s, `${prefix}-manager-1`)).toEqual([`${prefix}-manager-1 Ready`, `${prefix}-worker-1 Ready`, `${prefix}-worker-2 Ready`]);
    expect(await orphans(lab.docker, s, prefix)).toEqual([]);
    await removeAll(prefix);
  });

  it("the manager's engine killed while a worker joins: at most one line naming the step, the same bootstrap completes with no duplicate node", async () => {
    const prefix = s.name('ek');
    const args = ['swarm', 'bootstrap', '--managers', '1', '--workers', '1', '--prefix', prefix];
    const manager = `${prefix}-manager-1`;
    const r = await runWatching(s, args, new RegExp(`❯ ${prefix}-worker-1: join the swarm as worker`), async () => {
      const killed = await execIn(lab.docker, await containerOf(manager), 'pkill -9 -x dockerd && echo killed');
      expect(killed.output).toContain('killed');
    });
    expect(r.triggered).toBe(true);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    // systemd restarts the engine: the join may ride it out; if not, one line says where it stopped.
    if (r.code !== 0) {
      const lines = errorLines(r);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^Error: step "[^"]+" failed on ${prefix}-(worker|manager)-1: `));
      expect(lines[0]).not.toMatch(/^Error: connect E/);
    }
    await storeIsValid();
    expect(await orphans(lab.docker, s, prefix)).toEqual([]);
    await eventually('the manager engine is back', async () => ((await s.cli(['ssh', manager, '--', 'docker', 'info'])).code === 0 ? true : undefined), 90_000);
    ok(await s.cli(args));
    expect(await nodeList(s, manager)).toEqual([`${manager} Ready`, `${prefix}-worker-1 Ready`]);
    await removeAll(prefix);
  });
});
