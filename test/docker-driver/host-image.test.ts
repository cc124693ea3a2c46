/**
 * The docker driver's building blocks against the real local engine: finding (and
 * starting) an engine, the host image, and host containers that boot systemd and sshd.
 *
 * Everything this file makes carries the label tmachine.test=<run id> and is removed by
 * that label afterwards. The image builds (debootstrap and Dockerfile, a few minutes each)
 * go into tags of their own, so the lab's cached image is never touched.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeE2E, prepareLab } from '../support/lab.js';
import { TmachineError } from '../../src/errors.js';
import { HOST_CAPABILITIES, hostContainerSpec, isPrivilegedUnsupported } from '../../drivers/docker/container-spec.js';
import { DEFAULT_HOST_IMAGE, ensureHostImage, hostDockerfile } from '../../drivers/docker/host-image.js';
import { engineFromEndpoint, ensureLocalEngine, removeCgroupLeftovers } from '../../drivers/docker/local-engine.js';

const RUN = `hi-${process.pid}-${randomBytes(3).toString('hex')}`;
const TEST_LABEL = 'tmachine.test';
const labels = { [TEST_LABEL]: RUN };
const noReport = (): void => undefined;
const BOOT_DEADLINE_MS = 120_000;

// --- pure parts -------------------------------------------------------------------------

describe('hostContainerSpec', () => {
  const base = { name: 'h1', image: 'img', network: 'net1', volume: 'h1-docker', labels: { a: 'b' } };

  it('gives the explicit capability list when not privileged', () => {
    const spec = hostContainerSpec({ ...base, ip: '10.1.0.5', privileged: false });
    expect(spec).toMatchObject({
      name: 'h1',
      Hostname: 'h1',
      Image: 'img',
      Labels: { a: 'b', 'tmachine.machine': 'h1' },
      NetworkingConfig: { EndpointsConfig: { net1: { IPAMConfig: { IPv4Address: '10.1.0.5' } } } },
    });
    const host = spec.HostConfig;
    expect(host.Privileged).toBeUndefined();
    expect(host.CapAdd).toEqual([...HOST_CAPABILITIES]);
    expect(host.CapAdd).not.toContain('SYS_RESOURCE');
    expect(host.SecurityOpt).toEqual(['seccomp=unconfined', 'apparmor=unconfined']);
    expect(host.CgroupnsMode).toBe('host');
    expect(host.Binds).toEqual(['/sys/fs/cgroup:/sys/fs/cgroup:rw', 'h1-docker:/var/lib/docker']);
    expect(Object.keys(host.Tmpfs ?? {})).toEqual(['/run', '/run/lock', '/tmp']);
    expect(host.NetworkMode).toBe('net1');
  });

  it('asks for --privileged when told, and lets Docker pick the address when none is given', () => {
    const spec = hostContainerSpec({ ...base, privileged: true });
    expect(spec.HostConfig.Privileged).toBe(true);
    expect(spec.HostConfig.CapAdd).toBeUndefined();
    expect(spec.NetworkingConfig?.EndpointsConfig?.['net1']).toEqual({});
  });

  it('recognises the "unable to apply caps" start failure, and nothing else', () => {
    const engineError = Object.assign(
      new Error(
        '(HTTP code 500) server error - failed to create shim: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown',
      ),
      { statusCode: 500, json: { message: 'unable to apply caps: operation not permitted' } },
    );
    expect(isPrivilegedUnsupported(engineError)).toBe(true);
    expect(isPrivilegedUnsupported({ json: { message: 'runc: unable to apply caps: operation not permitted' } })).toBe(true);
    expect(isPrivilegedUnsupported(new Error('(HTTP code 409) conflict - name already in use'))).toBe(false);
    expect(isPrivilegedUnsupported(undefined)).toBe(false);
  });

  it('ships a Dockerfile that makes the same image as the debootstrap recipe', () => {
    const dockerfile = hostDockerfile('debian:bookworm');
    expect(dockerfile).toMatch(/^FROM debian:bookworm\n/);
    expect(dockerfile).toContain('--no-install-recommends systemd systemd-sysv dbus openssh-server sudo iproute2 iptables ca-certificates procps kmod');
    expect(dockerfile).toContain('useradd -m -s /bin/bash -G sudo tmachine');
    expect(dockerfile).toContain('ln -sf /etc/machine-id /var/lib/dbus/machine-id');
    expect(dockerfile).toContain('LABEL tmachine.host-image=1');
    expect(dockerfile).toContain('CMD ["/sbin/init"]');
  });
});

// --- finding and starting an engine ------------------------------------------------------

describe('ensureLocalEngine', () => {
  it.runIf(process.getuid?.() === 0)('finds the running engine', async () => {
    await prepareLab(); // starts the lab engine when none runs yet
    const engine = await ensureLocalEngine({ report: noReport, start: false });
    expect(engine.startedByUs).toBe(false);
    expect(engine.endpoint).toMatch(/^(unix|tcp):\/\//);
    expect(String(await engine.docker.ping())).toBe('OK');
    // A recorded endpoint reconnects to the same engine.
    const again = engineFromEndpoint(engine.endpoint);
    expect((await again.info()).ID).toBe((await engine.docker.info()).ID);
  });

  describe('with no engine at the usual places', () => {
    let dir: string;
    let savedEnv: Record<string, string | undefined>;
    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-engine-test-'));
      savedEnv = { DOCKER_HOST: process.env['DOCKER_HOST'], PATH: process.env['PATH'] };
      delete process.env['DOCKER_HOST'];
    });
    afterAll(async () => {
      for (const [k, v] of Object.entries(savedEnv)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      // The fake dockerd is detached on purpose: end it by the pid it recorded.
      for (const sub of ['ok', 'fails']) {
        const pid = Number.parseInt(await fs.readFile(path.join(dir, sub, 'pid'), 'utf8').catch(() => ''), 10);
        if (pid > 0) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // already gone
          }
        }
      }
      await fs.rm(dir, { recursive: true, force: true });
    });

    /** A stand-in `dockerd` on PATH: answers /_ping on its -H socket after a short delay, or fails. */
    async function fakeDockerd(behaviour: 'ok' | 'fails'): Promise<string> {
      const bin = path.join(dir, `bin-${behaviour}`);
      await fs.mkdir(bin, { recursive: true });
      const script = path.join(dir, `fake-dockerd-${behaviour}.mjs`);
      await fs.writeFile(
        script,
        behaviour === 'fails'
          ? `console.error('failed to start daemon: pid file found, ensure docker is not running'); process.exit(1);\n`
          : `import http from 'node:http'; import fs from 'node:fs';
const arg = (f) => process.argv[process.argv.indexOf(f) + 1];
const socket = arg('-H').replace('unix://', '');
fs.writeFileSync(arg('--pidfile'), String(process.pid));
console.log('fake dockerd starting', process.argv.slice(2).join(' '));
setTimeout(() => http.createServer((q, r) => r.end(q.url.endsWith('/_ping') ? 'OK' : '{}')).listen(socket), 700);\n`,
      );
      await fs.writeFile(path.join(bin, 'dockerd'), `#!/bin/sh\nexec "${process.execPath}" "${script}" "$@"\n`, { mode: 0o755 });
      return bin;
    }

    it('fails in one line naming what it tried, when told not to start one', async () => {
      const error = await ensureLocalEngine({
        report: noReport,
        start: false,
        socketPaths: [path.join(dir, 'none.sock')],
        engineDir: path.join(dir, 'unused'),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TmachineError);
      const line = (error as TmachineError).userLine;
      expect(line).toMatch(/^no local Docker engine answers \(tried unix:\/\/.*none\.sock \(no socket\)\)/);
      expect(line).toMatch(/set DOCKER_HOST, or install docker\.io/);
    });

    it.skipIf(process.getuid?.() !== 0)('starts dockerd detached with the data/exec roots, pidfile and log, and waits for it', async () => {
      const bin = await fakeDockerd('ok');
      process.env['PATH'] = `${bin}:${savedEnv['PATH']}`;
      const engineDir = path.join(dir, 'ok');
      const reports: string[] = [];
      const engine = await ensureLocalEngine({ report: (m) => reports.push(m), start: true, socketPaths: [path.join(dir, 'none.sock')], engineDir });
      expect(engine.startedByUs).toBe(true);
      expect(engine.endpoint).toBe(`unix://${engineDir}/docker.sock`);
      expect(String(await engine.docker.ping())).toBe('OK');
      const log = await fs.readFile(path.join(engineDir, 'dockerd.log'), 'utf8');
      expect(log).toContain(`--data-root ${engineDir}/data --exec-root ${engineDir}/exec -H unix://${engineDir}/docker.sock --pidfile ${engineDir}/pid`);
      expect(reports[0]).toMatch(/^starting a Docker engine at unix:\/\//);
      // It runs in its own session, so it outlives this process group (and Ctrl-C).
      const pid = Number.parseInt(await fs.readFile(path.join(engineDir, 'pid'), 'utf8'), 10);
      const sid = execFileSync('ps', ['-o', 'sid=', '-p', String(pid)]).toString().trim();
      expect(sid).not.toBe(execFileSync('ps', ['-o', 'sid=', '-p', String(process.pid)]).toString().trim());
      // The next call finds it instead of starting another.
      const next = await ensureLocalEngine({ report: noReport, start: true, socketPaths: [path.join(engineDir, 'docker.sock')], engineDir });
      expect(next.startedByUs).toBe(false);
    });

    it.skipIf(process.getuid?.() !== 0)('shows the last log line when the started dockerd dies', async () => {
      const bin = await fakeDockerd('fails');
      process.env['PATH'] = `${bin}:${savedEnv['PATH']}`;
      const engineDir = path.join(dir, 'fails');
      const error = await ensureLocalEngine({ report: noReport, start: true, socketPaths: [path.join(dir, 'none.sock')], engineDir, startTimeoutMs: 10_000 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TmachineError);
      expect((error as TmachineError).userLine).toMatch(/exited: failed to start daemon: pid file found.* \(see .*dockerd\.log\)$/);
    });

    it('talks to a tcp:// DOCKER_HOST', async () => {
      const server = http.createServer((req, res) => res.end(req.url?.endsWith('/_ping') ? 'OK' : '{}'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        process.env['DOCKER_HOST'] = `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const engine = await ensureLocalEngine({ report: noReport, start: false, socketPaths: [] });
        expect(engine.endpoint).toBe(process.env['DOCKER_HOST']);
      } finally {
        delete process.env['DOCKER_HOST'];
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });
});

// --- host containers on the real engine ------------------------------------------------------

describeE2E('host containers', () => {
  let docker: Dockerode;
  let network: string;
  let subnetPrefix: string;
  const containerIds: string[] = [];

  beforeAll(async () => {
    docker = (await prepareLab()).docker;
    network = `tmtest-${RUN}`;
    // A fixed address needs a subnet we chose; other suites share this engine, so try a few.
    for (let attempt = 0; ; attempt++) {
      subnetPrefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
      try {
        await docker.createNetwork({ Name: network, Driver: 'bridge', Internal: true, Labels: labels, IPAM: { Config: [{ Subnet: `${subnetPrefix}.0/24` }] } });
        break;
      } catch (error) {
        if (attempt > 10 || !/overlap/i.test(String(error))) throw error;
      }
    }
  });

  afterAll(async () => {
    if (!docker) return;
    const filters = { label: [`${TEST_LABEL}=${RUN}`] };
    for (const c of await docker.listContainers({ all: true, filters })) {
      await docker.getContainer(c.Id).remove({ force: true, v: true });
      if (!containerIds.includes(c.Id)) containerIds.push(c.Id);
    }
    for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove();
    for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove();
    await removeCgroupLeftovers(containerIds);
    const left: string[] = [];
    for (const id of containerIds) {
      for (const controller of await fs.readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
        const dir = `/sys/fs/cgroup/${controller}/docker/${id}`;
        if (await fs.access(dir).then(() => true, () => false)) left.push(dir);
      }
    }
    expect(left).toEqual([]);
  });

  it('ensureHostImage returns at once when the image is there', async () => {
    const started = Date.now();
    const result = await ensureHostImage(docker, DEFAULT_HOST_IMAGE, { report: () => expect.fail('should not build') });
    expect(result.builtWith).toBeUndefined();
    expect(result.id).toMatch(/^sha256:/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('--privileged either works or fails in the way the driver falls back on', async () => {
    const name = `tmtest-priv-${RUN}`;
    await docker.createVolume({ Name: `${name}-docker`, Labels: labels });
    const container = await docker.createContainer(
      hostContainerSpec({ name, image: DEFAULT_HOST_IMAGE, network, volume: `${name}-docker`, labels, privileged: true }),
    );
    containerIds.push(container.id);
    const error = await container.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (error !== undefined) expect(isPrivilegedUnsupported(error)).toBe(true);
    await container.remove({ force: true, v: true });
  });

  it('two hosts boot systemd and sshd, each with its own machine-id and SSH host keys', { timeout: 300_000 }, async () => {
    const hosts = await Promise.all(
      ['a', 'b'].map(async (suffix, i) => {
        const name = `tmtest-${suffix}-${RUN}`;
        const volume = `${name}-docker`;
        await docker.createVolume({ Name: volume, Labels: labels });
        const ip = i === 0 ? `${subnetPrefix}.200` : undefined;
        const container = await docker.createContainer(
          hostContainerSpec({ name, image: DEFAULT_HOST_IMAGE, network, ...(ip ? { ip } : {}), volume, labels, privileged: false }),
        );
        containerIds.push(container.id);
        const started = Date.now();
        await container.start();
        const address = (await container.inspect()).NetworkSettings.Networks[network]?.IPAddress ?? '';
        if (ip) expect(address).toBe(ip);
        const banner = await waitForSshBanner(address, BOOT_DEADLINE_MS);
        const sshMs = Date.now() - started;
        const state = await waitForSystemd(docker, container.id, BOOT_DEADLINE_MS);
        const bootMs = Date.now() - started;
        return { name, container, address, banner, sshMs, bootMs, state };
      }),
    );
    for (const h of hosts) {
      console.log(`${h.name}: sshd banner after ${(h.sshMs / 1000).toFixed(1)} s, systemd ${h.state} after ${(h.bootMs / 1000).toFixed(1)} s`);
      expect(h.banner).toMatch(/^SSH-2\.0-OpenSSH/);
      expect(['running', 'degraded']).toContain(h.state);
      if (h.state === 'degraded') console.log(await execIn(docker, h.container.id, ['systemctl', '--failed', '--no-legend']));
      expect((await execIn(docker, h.container.id, ['hostname'])).trim()).toBe(h.name);
    }

    const [a, b] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
    const machineId = (id: string) => execIn(docker, id, ['cat', '/etc/machine-id']).then((s) => s.trim());
    const hostKey = (id: string) => execIn(docker, id, ['cat', '/etc/ssh/ssh_host_ed25519_key.pub']).then((s) => s.trim().split(' ')[1]);
    const [idA, idB, keyA, keyB] = await Promise.all([machineId(a.container.id), machineId(b.container.id), hostKey(a.container.id), hostKey(b.container.id)]);
    expect(idA).toMatch(/^[0-9a-f]{32}$/);
    expect(idB).toMatch(/^[0-9a-f]{32}$/);
    expect(idA).not.toBe(idB);
    expect(keyA).toMatch(/^AAAA/);
    expect(keyA).not.toBe(keyB);
    // dbus reads the same id (the symlink), or swarm and systemd would disagree.
    expect((await execIn(docker, a.container.id, ['cat', '/var/lib/dbus/machine-id'])).trim()).toBe(idA);

    // The image's promises: a sudo user without password, no apt timers, no engine yet.
    expect(await execIn(docker, a.container.id, ['su', '-', 'tmachine', '-c', 'sudo -n id -u'])).toBe('0\n');
    expect(await execIn(docker, a.container.id, ['id', '-nG', 'tmachine'])).toMatch(/\bsudo\b/);
    expect((await execIn(docker, a.container.id, ['systemctl', 'is-enabled', 'apt-daily.timer', 'apt-daily-upgrade.timer'], true)).split('\n').filter(Boolean)).toEqual([
      'disabled',
      'disabled',
    ]);
    expect(await execIn(docker, a.container.id, ['sh', '-c', 'command -v dockerd || echo none'])).toBe('none\n');

    // SIGRTMIN+3 makes systemd halt cleanly, so stop does not wait for the kill timeout.
    const stopping = Date.now();
    await b.container.stop({ t: 30 });
    expect(Date.now() - stopping).toBeLessThan(20_000);
  });

  it(
    'builds the host image with debootstrap, once even when asked twice at the same time',
    { timeout: 900_000 },
    async () => {
      const tag = 'tmachine/host:test-build';
      await removeImage(docker, tag);
      try {
        const reports: string[] = [];
        const started = Date.now();
        const results = await Promise.all([
          ensureHostImage(docker, tag, { report: (m) => reports.push(`1: ${m}`), baseImage: 'tmachine-test/none:absent' }),
          ensureHostImage(docker, tag, { report: (m) => reports.push(`2: ${m}`), baseImage: 'tmachine-test/none:absent' }),
        ]);
        console.log(`debootstrap image build: ${((Date.now() - started) / 1000).toFixed(1)} s\n  ${reports.join('\n  ')}`);
        expect(results.map((r) => r.builtWith ?? 'waited').sort()).toEqual(['debootstrap', 'waited']);
        expect(results[0]?.id).toBe(results[1]?.id);
        const info = await docker.getImage(tag).inspect();
        expect(info.Config.Cmd).toEqual(['/sbin/init']);
        expect(info.Config.Labels).toMatchObject({ 'tmachine.host-image': '1' });
        await bootAndCheck(docker, tag, network);
        expect((await fs.readdir('/var/tmp')).filter((n) => n.startsWith('tmachine-host-image-') && !n.endsWith('.log'))).toEqual([]);
      } finally {
        await removeImage(docker, tag);
        await fs.rm('/var/tmp/tmachine-host-image-tmachine_host_test-build.log', { force: true });
      }
    },
  );

  it(
    'builds the host image with the Dockerfile when the base image is on the engine',
    { timeout: 900_000 },
    async () => {
      // A stand-in for debian:bookworm (never pulled): a minbase debootstrap, as Debian's image is.
      const base = 'tmachine-test/debian:bookworm';
      const tag = 'tmachine/host:test-dockerfile';
      const work = await fs.mkdtemp('/var/tmp/tmachine-test-base-');
      try {
        execFileSync('debootstrap', ['--variant=minbase', 'bookworm', path.join(work, 'rootfs'), 'http://deb.debian.org/debian'], { stdio: 'ignore' });
        execFileSync('sh', ['-c', `tar -C ${work}/rootfs -c . | docker import -c 'LABEL ${TEST_LABEL}=${RUN}' - ${base}`], {
          stdio: 'ignore',
          env: { ...process.env, DOCKER_HOST: dockerHostOf(docker) },
        });
        const reports: string[] = [];
        const started = Date.now();
        const result = await ensureHostImage(docker, tag, { report: (m) => reports.push(m), baseImage: base });
        console.log(`Dockerfile image build: ${((Date.now() - started) / 1000).toFixed(1)} s\n  ${reports.join('\n  ')}`);
        expect(result.builtWith).toBe('dockerfile');
        await bootAndCheck(docker, tag, network);
      } finally {
        await removeImage(docker, tag);
        await removeImage(docker, base);
        await fs.rm(work, { recursive: true, force: true });
        await fs.rm('/var/tmp/tmachine-host-image-tmachine_host_test-dockerfile.log', { force: true });
      }
    },
  );
});

// --- helpers ----------------------------------------------------------------------------------

/** One host from a freshly built image: sshd answers, systemd is up, the sudo user is there. */
async function bootAndCheck(docker: Dockerode, image: string, network: string): Promise<void> {
  const name = `tmtest-img-${RUN}`;
  const volume = `${name}-docker`;
  await docker.createVolume({ Name: volume, Labels: labels });
  const container = await docker.createContainer(hostContainerSpec({ name, image, network, volume, labels, privileged: false }));
  try {
    await container.start();
    const address = (await container.inspect()).NetworkSettings.Networks[network]?.IPAddress ?? '';
    expect(await waitForSshBanner(address, BOOT_DEADLINE_MS)).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(['running', 'degraded']).toContain(await waitForSystemd(docker, container.id, BOOT_DEADLINE_MS));
    expect((await execIn(docker, container.id, ['cat', '/etc/machine-id'])).trim()).toMatch(/^[0-9a-f]{32}$/);
    expect(await execIn(docker, container.id, ['su', '-', 'tmachine', '-c', 'sudo -n id -u'])).toBe('0\n');
  } finally {
    await container.remove({ force: true, v: true });
    await docker.getVolume(volume).remove().catch(() => undefined);
    await removeCgroupLeftovers([container.id]);
  }
}

function dockerHostOf(docker: Dockerode): string {
  const modem = docker.modem as { socketPath?: string; host?: string; port?: string | number };
  return modem.socketPath ? `unix://${modem.socketPath}` : `tcp://${modem.host}:${modem.port}`;
}

async function removeImage(docker: Dockerode, image: string): Promise<void> {
  await docker
    .getImage(image)
    .remove({ force: true })
    .catch(() => undefined);
}

/** Runs a command in the container; its stdout (stderr too when `withStderr`). Rejects on a non-zero exit unless allowFail. */
async function execIn(docker: Dockerode, id: string, cmd: string[], allowFail = false): Promise<string> {
  const exec = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  docker.modem.demuxStream(stream, stdout, stderr);
  await new Promise<void>((resolve, reject) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
    stream.once('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  if (ExitCode !== 0 && !allowFail) throw new Error(`${cmd.join(' ')} exited ${ExitCode}: ${err.trim()}`);
  return out;
}

async function waitForSystemd(docker: Dockerode, id: string, deadlineMs: number): Promise<string> {
  const end = Date.now() + deadlineMs;
  let state = '';
  while (Date.now() < end) {
    state = (await execIn(docker, id, ['systemctl', 'is-system-running'], true).catch(() => '')).trim();
    if (state === 'running' || state === 'degraded') return state;
    await new Promise((r) => setTimeout(r, 250));
  }
  return state;
}

/** Polls port 22 until sshd sends its banner. */
async function waitForSshBanner(host: string, deadlineMs: number): Promise<string> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const banner = await new Promise<string | undefined>((resolve) => {
      const socket = net.connect({ host, port: 22 });
      socket.setTimeout(2_000, () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('data', (chunk: Buffer) => {
        socket.destroy();
        resolve(chunk.toString().split('\r\n')[0]);
      });
      socket.once('error', () => resolve(undefined));
    });
    if (banner) return banner;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`sshd on ${host}:22 did not answer within ${deadlineMs / 1000} s`);
}
