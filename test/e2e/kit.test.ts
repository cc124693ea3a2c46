/**
 * Issue 13 acceptance on docker-driver hosts: Ctrl-C at three points of a 3-node bootstrap
 * leaves only complete machines and nothing the store does not name, and a re-run completes
 * the cluster; host keys pinned from the engine; two bootstraps of one cluster at once; a
 * third-party driver installed from a package directory; and the defects found trying
 * tmachine as a new user would (custom image, counts, data-path port, engine settings).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { errorLines, repoRoot, runCli, type CliResult } from '../support/cli.js';
import { describeE2E, eventually, labSession, ok, prepareLab, CACHE_DIR, OFFLINE_HOSTS_ENV, type Lab } from '../support/lab.js';

interface MachineJson {
  name: string;
  creating?: boolean;
  ssh: { host: string; hostKey?: { key: string } };
  driver: { state: { containerId?: string } };
}

describeE2E('driver kit and plan runner on real hosts', () => {
  vi.setConfig({ testTimeout: 600_000 });
  let lab: Lab;
  const s = labSession('kit');
  const prefix = s.name('c');
  const bootstrap = ['swarm', 'bootstrap', '--managers', '1', '--workers', '2', '--prefix', prefix];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-kit-'));

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** Runs the CLI and sends SIGINT the moment its progress shows `trigger`. */
  function interruptAt(args: string[], trigger: RegExp): Promise<CliResult & { triggered: boolean }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), ...args], {
        env: { ...process.env, TMACHINE_STORAGE_PATH: s.store, TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: s.network, ...OFFLINE_HOSTS_ENV },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let triggered = false;
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (!triggered && trigger.test(stdout)) {
          triggered = true;
          child.kill('SIGINT');
        }
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr, triggered });
      });
    });
  }

  const machines = async (): Promise<MachineJson[]> => {
    const names = ok(await s.cli(['ls', '--quiet'])).stdout.split('\n').filter(Boolean);
    return Promise.all(names.map(async (n) => JSON.parse(ok(await s.cli(['inspect', n])).stdout) as MachineJson));
  };

  /** Containers and volumes of this run's machines that no record in the store names. */
  async function orphans(): Promise<string[]> {
    return orphansOf(prefix);
  }

  async function orphansOf(prefix: string): Promise<string[]> {
    const known = new Set((await machines()).map((m) => m.name));
    const containers = await lab.docker.listContainers({ all: true, filters: { label: ['tmachine.machine'] } });
    const volumes = (await lab.docker.listVolumes({ filters: { label: ['tmachine.machine'] } })).Volumes ?? [];
    const ours = (machine: string | undefined) => machine !== undefined && machine.startsWith(prefix);
    return [
      ...containers.filter((c) => ours(c.Labels['tmachine.machine']) && !known.has(c.Labels['tmachine.machine']!)).map((c) => `container ${c.Names[0]}`),
      ...volumes.filter((v) => ours(v.Labels?.['tmachine.machine']) && !known.has(v.Labels!['tmachine.machine']!)).map((v) => `volume ${v.Name}`),
    ];
  }


  for (const [point, trigger] of [
    ['creating the hosts', /❯ \S+: make the host \(docker\)/],
    ['uploading the engine', /❯ \S+: upload the engine bundle/],
    ['joining the workers', /❯ \S+: join the swarm as worker/],
  ] as const) {
    it(`Ctrl-C while ${point}: one line, only complete machines left, nothing the store does not name`, async () => {
      const r = await interruptAt(bootstrap, trigger);
      expect(r.triggered).toBe(true);
      expect(r.code).toBe(130);
      expect(errorLines(r)).toEqual([expect.stringMatching(/^Error: interrupted; unfinished machines were removed/)]);
      expect(r.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/);
      const left = await machines();
      expect(left.filter((m) => m.creating).map((m) => m.name)).toEqual([]);
      expect(await orphans()).toEqual([]);
    });
  }

  it('a second Ctrl-C exits at once and names what is left with the command that removes it', async () => {
    const other = s.name('twice');
    const args = ['swarm', 'bootstrap', '--managers', '1', '--workers', '1', '--prefix', other];
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), ...args], {
      env: { ...process.env, TMACHINE_STORAGE_PATH: s.store, TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: s.network, ...OFFLINE_HOSTS_ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = 0;
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (sent === 0 && /❯ \S+: make the host \(docker\)/.test(stdout)) {
        sent = 1;
        child.kill('SIGINT');
        // The second one comes while the first is still cleaning up.
        setTimeout(() => child.kill('SIGINT'), 50);
      }
    });
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    expect(code).toBe(130);
    const line = stderr.split('\n').find((l) => l.startsWith('Error:')) ?? '';
    const left = /left unfinished: (.*) \(remove them with `tmachine rm -f -y (.*)`\)$/.exec(line);
    if (left) {
      ok(await s.cli(['rm', '-f', '-y', ...left[2]!.split(' ')]));
    } else {
      expect(line).toBe('Error: interrupted twice; nothing unfinished is left');
    }
    expect((await machines()).filter((m) => m.name.startsWith(other))).toEqual([]);
    expect(await orphansOf(other)).toEqual([]);
  });

  it('a bootstrap that fails on one machine keeps the complete ones recorded, so `swarm down --rm` finds them', async () => {
    const other = s.name('half');
    const file = path.join(work, 'half.yml');
    // The workers' image does not exist: their creates fail; the manager's succeeds.
    fs.writeFileSync(file, [`name: ${other}`, 'driver: { name: docker }', 'managers: 1', 'workers:', '  - count: 1', '    driver: { name: docker, image: "nope/none:2" }', ''].join('\n'));
    const r = await s.cli(['swarm', 'bootstrap', '-f', file]);
    expect(r.code).not.toBe(0);
    expect(errorLines(r)).toEqual([expect.stringMatching(/host image "nope\/none:2" does not exist/)]);
    const names = (await machines()).map((m) => m.name).filter((n) => n.startsWith(other));
    expect(names).toEqual([`${other}-manager-1`]);
    ok(await s.cli(['swarm', 'down', '--rm', '-y', '--cluster', other]));
    expect((await machines()).map((m) => m.name).filter((n) => n.startsWith(other))).toEqual([]);
    expect(await orphansOf(other)).toEqual([]);
  });

  it('parallel creates with one --engine-registry-ca each get the CA (the shared option is not mutated)', async () => {
    // A real CA certificate: create checks that the file is one before anything is made.
    const ca = path.join(work, 'registry-ca.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=kit registry CA', '-keyout', path.join(work, 'registry-ca.key'), '-out', ca], { stdio: 'ignore' });
    const [a, b] = [s.name('ca1'), s.name('ca2')];
    ok(await s.cli(['create', '--driver', 'docker', '--engine-registry-ca', `registry.example:5000=${ca}`, a, b]));
    for (const name of [a, b]) {
      const installed = ok(await s.cli(['ssh', name, '--', 'sudo cat /etc/docker/certs.d/registry.example:5000/ca.crt'])).stdout;
      expect(installed.trim()).toBe(fs.readFileSync(ca, 'utf8').trim());
    }
    ok(await s.cli(['rm', '-y', a, b]));
  });

  it('after the interruptions the same bootstrap completes the cluster, pinning host keys read through the engine', async () => {
    ok(await s.cli(bootstrap));
    const nodes = ok(await s.cli(['ssh', `${prefix}-manager-1`, '--', 'docker', 'node', 'ls', '--format', "'{{.Hostname}} {{.Status}}'"])).stdout.trim().split('\n');
    expect(nodes.sort()).toEqual([`${prefix}-manager-1 Ready`, `${prefix}-worker-1 Ready`, `${prefix}-worker-2 Ready`]);
    for (const m of await machines()) {
      // The key pinned in the record is one of the host's own key files, read through the engine.
      const exec = await lab.docker.getContainer(m.driver.state.containerId!).exec({ Cmd: ['sh', '-c', 'cat /etc/ssh/ssh_host_*_key.pub'], AttachStdout: true, Tty: true });
      const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
      let files = '';
      await new Promise((r) => {
        stream.on('data', (d: Buffer) => (files += d.toString()));
        stream.on('end', r);
      });
      const keys = files.split(/\r?\n/).map((l) => l.split(' ')[1]).filter(Boolean);
      expect(keys).toContain(m.ssh.hostKey?.key);
    }
  });

  it('re-running bootstrap with --data-path-port and an engine label applies both to the machines that exist', async () => {
    ok(await s.cli([...bootstrap, '--data-path-port', '4790', '--engine-label', 'team=kit']));
    const worker = `${prefix}-worker-1`;
    expect(ok(await s.cli(['ssh', worker, '--', 'sudo iptables -S TMACHINE-INPUT'])).stdout).toMatch(/-p udp .*--dport 4790 .*ACCEPT/);
    expect(ok(await s.cli(['ssh', worker, '--', "docker info --format '{{json .Labels}}'"])).stdout).toContain('team=kit');
  });

  it('a swarm deploy that fails leaves no stack file in the store', async () => {
    const file = path.join(work, 'broken-stack.yml');
    // Valid YAML that the engine refuses: the external network does not exist.
    fs.writeFileSync(file, ['version: "3.8"', 'services:', '  web:', '    image: tmachine/none:1', '    networks: [nowhere]', 'networks:', '  nowhere:', '    external: true', ''].join('\n'));
    const r = await s.cli(['swarm', 'deploy', '--cluster', prefix, '-c', file, 'broken']);
    expect(r.code).not.toBe(0);
    expect(errorLines(r)).toEqual([expect.stringMatching(/nowhere/)]);
    expect(fs.existsSync(path.join(s.store, 'clusters', prefix, 'stacks', 'broken.yml'))).toBe(false);
  });

  it('a host at a machine address with another key is refused by name and address', async () => {
    const worker = `${prefix}-worker-2`;
    const record = (await machines()).find((m) => m.name === worker)!;
    // Another host takes the worker's address: the worker's container stops, a stranger starts there.
    await lab.docker.getContainer(record.driver.state.containerId!).stop({ t: 5 });
    const stranger = await lab.docker.createContainer({
      name: `${worker}-stranger`,
      Image: 'tmachine/host:bookworm',
      Labels: { 'tmachine.test': 'kit-stranger' },
      HostConfig: {
        CapAdd: ['SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE', 'MKNOD', 'AUDIT_CONTROL'],
        SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
        Tmpfs: { '/run': '', '/run/lock': '', '/tmp': '' },
        Binds: ['/sys/fs/cgroup:/sys/fs/cgroup:rw'],
        CgroupnsMode: 'host',
      } as never,
      NetworkingConfig: { EndpointsConfig: { [s.network]: { IPAMConfig: { IPv4Address: record.ssh.host } } } },
    });
    try {
      await stranger.start();
      const r = await eventually('the stranger answers SSH', async () => {
        const attempt = await s.cli(['ssh', worker, '--', 'true']);
        return /changed/.test(attempt.stderr) ? attempt : undefined;
      }, 90_000);
      expect(r.code).not.toBe(0);
      expect(errorLines(r)).toEqual([expect.stringContaining(`host key of machine ${worker} (${record.ssh.host}:22) changed`)]);
    } finally {
      await stranger.remove({ force: true });
      await lab.docker.getContainer(record.driver.state.containerId!).start();
    }
  });

  it('two bootstraps of one cluster started together end in one swarm; the one that waited says so', async () => {
    const other = s.name('two');
    const args = ['swarm', 'bootstrap', '--managers', '1', '--workers', '1', '--prefix', other];
    const [a, b] = await Promise.all([s.cli(args), s.cli(args)]);
    ok(a);
    ok(b);
    const waited = [a, b].filter((r) => /cluster \S+ is busy: waiting for `tmachine swarm bootstrap of \S+` \(pid \d+\) to finish/.test(r.stderr));
    expect(waited).toHaveLength(1);
    const nodes = ok(await s.cli(['ssh', `${other}-manager-1`, '--', 'docker', 'node', 'ls', '-q'])).stdout.trim().split('\n');
    expect(nodes).toHaveLength(2);
    ok(await s.cli(['rm', '-y', `${other}-manager-1`, `${other}-worker-1`]));
  });

  it('a custom --docker-image that does not exist: one line, nothing created, no image built', async () => {
    const name = s.name('noimg');
    const r = await s.cli(['create', '--driver', 'docker', '--docker-image', 'nope/none:1', name]);
    expect(r.code).not.toBe(0);
    expect(errorLines(r)).toEqual([expect.stringMatching(/host image "nope\/none:1" does not exist/)]);
    expect(ok(await s.cli(['ls', '--quiet'])).stdout).not.toContain(name);
    await expect(lab.docker.getImage('nope/none:1').inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('counts: more hosts than this computer holds is refused before anything is made; more than 7 managers warns, or fails with --strict', async () => {
    const before = ok(await s.cli(['ls', '--quiet'])).stdout;
    const huge = await s.cli(['swarm', 'bootstrap', '--managers', '1001', '--prefix', s.name('huge')]);
    expect(huge.code).not.toBe(0);
    expect(errorLines(huge)).toEqual([expect.stringMatching(/^Error: 1001 machines do not fit on the docker driver here: .* \(ask for at most \d+/)]);
    expect(ok(await s.cli(['ls', '--quiet'])).stdout).toBe(before);
    const nine = ok(await s.cli(['swarm', 'bootstrap', '--managers', '9', '--prefix', s.name('nine'), '--dry-run']));
    expect(nine.stderr).toMatch(/^Warning: 9 managers is more than Docker's recommended maximum of 7/m);
    const strict = await s.cli(['swarm', 'bootstrap', '--managers', '9', '--prefix', s.name('nine'), '--strict']);
    expect(errorLines(strict)).toEqual([expect.stringMatching(/^Error: 9 managers is more than Docker's recommended maximum of 7/)]);
    const file = path.join(work, 'nine.yml');
    fs.writeFileSync(file, `name: nine\ndriver: { name: docker }\nmanagers: 9\n`);
    const fromFile = await s.cli(['swarm', 'bootstrap', '-f', file]);
    expect(errorLines(fromFile)).toEqual([expect.stringMatching(/nine\.yml:3: managers: 9 managers is more than Docker's recommended maximum of 7/)]);
    expect(ok(await s.cli(['ls', '--quiet'])).stdout).toBe(before);
  });

  it('a third-party driver installed from a package directory: listed, flags shown, creates, reports its state, is removed', async () => {
    // A project directory where the user ran `npm install <driver package>`.
    const project = path.join(work, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "ops", "private": true }\n');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--install-links', '--legacy-peer-deps', path.join(repoRoot, 'test', 'fixtures', 'tmachine-driver-fixture')], { cwd: project, stdio: 'ignore' });
    // It imports `tmachine/kit`, which a user's install resolves next to it.
    fs.symlinkSync(repoRoot, path.join(project, 'node_modules', 'tmachine'));
    const inProject = (args: string[]) =>
      runCli(args, { store: s.store, timeoutMs: 300_000, cwd: project, env: { TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: s.network, ...OFFLINE_HOSTS_ENV } });
    const help = ok(await inProject(['create', '--driver', 'fixture', '--help'])).stdout;
    expect(help).toMatch(/--fixture-address/);
    expect(help).toMatch(/--fixture-lease-dir/);

    // The "platform" is a host tmachine made in another store; the fixture adopts it.
    const base = labSession('kitfx');
    try {
      const host = base.name('h');
      ok(await base.cli(['create', '--driver', 'docker', host]));
      const hostRecord = JSON.parse(ok(await base.cli(['inspect', host])).stdout) as MachineJson;
      const key = path.join(base.store, 'machines', host, 'id_ed25519');
      const leases = path.join(work, 'leases');
      const name = s.name('fx');
      const common = ['--fixture-address', hostRecord.ssh.host, '--fixture-key', key, '--fixture-lease-dir', leases];

      // A published key that is not the host's: refused by machine name and address, nothing left.
      const wrong = path.join(work, 'wrong.pub');
      fs.writeFileSync(wrong, generateKeyPair('not-the-host').publicKey + '\n');
      const refused = await inProject(['create', '--driver', 'fixture', ...common, '--fixture-host-key', wrong, `${name}-x`]);
      expect(errorLines(refused)).toEqual([expect.stringContaining(`host key of machine ${name}-x (${hostRecord.ssh.host}:22) is not one the platform published`)]);
      expect(fs.readdirSync(leases)).toEqual([]);
      expect(ok(await s.cli(['ls', '--quiet'])).stdout).not.toContain(`${name}-x`);

      ok(await inProject(['create', '--driver', 'fixture', ...common, name]));
      expect(fs.readdirSync(leases)).toEqual([`${name}.lease`]);
      const listed = ok(await inProject(['ls', '--format', '{{.Name}} {{.DriverName}} {{.State}}'])).stdout;
      expect(listed).toContain(`${name} fixture Running`);
      ok(await inProject(['rm', '-y', name]));
      expect(fs.readdirSync(leases)).toEqual([]);
      expect(ok(await s.cli(['ls', '--quiet'])).stdout).not.toContain(name);
    } finally {
      await base.cleanup(lab.docker);
    }
  });
});
