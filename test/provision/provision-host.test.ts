/**
 * The whole provisioning plan against a real host: a systemd + sshd container from
 * tmachine/host:bookworm on the lab engine (testhost.md §3), reached over real SSH as the
 * unprivileged user `tmachine` (passwordless sudo). Asserts what a user would check, then that
 * a second run runs nothing.
 *
 * TMACHINE_TEST_TRANSPORT=exec uses `docker exec` instead of SSH (test/support/docker-exec-host.ts).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureStoreCertificates, issueServerCertificate, type StoreCertificates } from '../../src/certs/certs.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import type { RemoteHost } from '../../src/ssh/types.js';
import { waitForSsh } from '../../src/ssh/wait.js';
import type { Step } from '../../src/steps.js';
import { engineOptionsSchema } from '../../src/store/machine-record.js';
import { type ProvisionContext, provisionPlan } from '../../provision/engine-install.js';
import { detectHost } from '../../provision/os.js';
import { DockerExecHost } from '../support/docker-exec-host.js';
import { describeE2E, prepareLab } from '../support/lab.js';

const execFileP = promisify(execFile);

let LAB_ENV: NodeJS.ProcessEnv = { ...process.env };
const IMAGE = 'tmachine/host:bookworm';
let BUNDLE = '';
const BUNDLE_VERSION = '20.10.24';
const LABEL = 'tmachine.test=provision';
const NETWORK = 'tm-provision';
const SUBNET = '10.120.0.0/24';
const HOST_IP = '10.120.0.11';
const NAME = 'tm-provision-h1';
const VOLUME = `${NAME}-docker`;
const USER = 'tmachine';

/** testhost.md §3: --privileged fails on this machine; the capabilities one by one work. */
const CAPS = [
  'SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE', 'MKNOD', 'SYS_TIME', 'SYSLOG', 'AUDIT_CONTROL', 'MAC_ADMIN', 'MAC_OVERRIDE',
  'WAKE_ALARM', 'BLOCK_SUSPEND', 'LINUX_IMMUTABLE', 'IPC_LOCK', 'SYS_RAWIO', 'SYS_BOOT', 'SYS_NICE', 'SYS_TTY_CONFIG',
  'LEASE', 'AUDIT_READ', 'SYS_PACCT', 'NET_BROADCAST', 'IPC_OWNER', 'DAC_READ_SEARCH',
];

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFileP('docker', args, { env: LAB_ENV, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function dockerOk(...args: string[]): Promise<boolean> {
  return docker(...args).then(() => true, () => false);
}

/** Runs inside the host as root (what the user would type after `tmachine ssh`). */
async function onHost(command: string): Promise<string> {
  return docker('exec', NAME, 'sh', '-c', command);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface PlanRun {
  ran: string[];
  ms: number;
  /** Per step: "id needsRun-ms[+run-ms]", for the timing report. */
  detail: string[];
}

async function runPlan(steps: Step<ProvisionContext>[], context: ProvisionContext): Promise<PlanRun> {
  const started = Date.now();
  const ran: string[] = [];
  const detail: string[] = [];
  for (const step of steps) {
    const t = Date.now();
    const needed = await step.needsRun(context);
    const checked = Date.now() - t;
    if (needed) {
      ran.push(step.id);
      await step.run(context, () => undefined);
    }
    detail.push(`${step.id} ${checked}${needed ? `+${Date.now() - t - checked}` : ''}`);
  }
  if (process.env['TMACHINE_TEST_TIMINGS'] === '1') console.log(detail.join(', '));
  return { ran, ms: Date.now() - started, detail };
}

/** Empty cgroup directories the containers leave behind with --cgroupns=host (testhost.md §3). */
async function removeEmptyCgroups(ids: string[]): Promise<void> {
  const controllers = await fs.readdir('/sys/fs/cgroup').catch(() => [] as string[]);
  const removeTree = async (dir: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) await removeTree(path.join(dir, entry.name));
    await fs.rmdir(dir).catch(() => undefined);
  };
  for (const controller of controllers) {
    for (const id of ids) await removeTree(path.join('/sys/fs/cgroup', controller, 'docker', id));
  }
}

async function cleanUp(): Promise<void> {
  const containers = (await docker('ps', '-aq', '--no-trunc', '--filter', `label=${LABEL}`).catch(() => '')).split('\n').filter(Boolean);
  const innerIds: string[] = [];
  for (const id of containers) {
    const inner = await docker('exec', id, 'sh', '-c', 'docker ps -aq --no-trunc 2>/dev/null || true').catch(() => '');
    innerIds.push(...inner.split('\n').filter(Boolean));
  }
  if (containers.length > 0) await docker('rm', '-f', ...containers).catch(() => undefined);
  const volumes = (await docker('volume', 'ls', '-q', '--filter', `label=${LABEL}`).catch(() => '')).split('\n').filter(Boolean);
  if (volumes.length > 0) await docker('volume', 'rm', '-f', ...volumes).catch(() => undefined);
  const networks = (await docker('network', 'ls', '-q', '--filter', `label=${LABEL}`).catch(() => '')).split('\n').filter(Boolean);
  if (networks.length > 0) await docker('network', 'rm', ...networks).catch(() => undefined);
  await removeEmptyCgroups([...containers, ...innerIds]);
}

const EXEC_TRANSPORT = process.env['TMACHINE_TEST_TRANSPORT'] === 'exec';
const sshKeys = generateKeyPair('tmachine-provision-test');

async function connect(): Promise<RemoteHost> {
  if (EXEC_TRANSPORT) return new DockerExecHost({ label: NAME, container: NAME, user: USER, env: LAB_ENV });
  return waitForSsh({ label: NAME, host: HOST_IP, port: 22, user: USER, privateKey: sshKeys.privateKey, deadlineMs: 30_000 });
}

describeE2E('provisioning a real host (bundle install, Debian 12)', () => {
  let storeDir: string;
  let store: StoreCertificates;
  let host: RemoteHost;
  let context: ProvisionContext;
  let first: PlanRun;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    // The lab (engine, host image, Debian bundle) made by tmachine's own code, cached.
    const lab = await prepareLab();
    LAB_ENV = { ...process.env, DOCKER_HOST: lab.endpoint };
    BUNDLE = lab.bundlePath;
    if (!(await dockerOk('image', 'inspect', IMAGE))) throw new Error(`image ${IMAGE} is missing on ${lab.endpoint}`);
    await cleanUp();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-provision-'));

    let t = Date.now();
    await docker('network', 'create', '--subnet', SUBNET, '--label', LABEL, NETWORK);
    await docker('volume', 'create', '--label', LABEL, VOLUME);
    await docker(
      'run', '-d', '--name', NAME, '--hostname', NAME, '--label', LABEL,
      ...CAPS.flatMap((cap) => ['--cap-add', cap]),
      '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
      '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
      '--tmpfs', '/run', '--tmpfs', '/run/lock', '--tmpfs', '/tmp',
      '-v', `${VOLUME}:/var/lib/docker`,
      '--network', NETWORK, '--ip', HOST_IP, IMAGE,
    );

    await waitForSystemd();
    if (!EXEC_TRANSPORT) {
      await onHost(`install -d -m 700 -o ${USER} -g ${USER} /home/${USER}/.ssh && printf '%s\\n' '${sshKeys.publicKey}' > /home/${USER}/.ssh/authorized_keys && chown ${USER}: /home/${USER}/.ssh/authorized_keys && chmod 600 /home/${USER}/.ssh/authorized_keys`);
    }
    host = await connect();
    timings['host up'] = Date.now() - t;

    t = Date.now();
    store = await ensureStoreCertificates(path.join(storeDir, 'certs'));
    const server = await issueServerCertificate({ ca: { certPem: store.caPem, keyPem: store.caKeyPem }, machineName: NAME, sans: [HOST_IP, NAME] });
    timings['certificates'] = Date.now() - t;

    const engine = engineOptionsSchema.parse({
      install: 'bundle',
      version: BUNDLE_VERSION,
      // testhost.md §5: no registry lookups from the lab's engines.
      env: ['DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1'],
      labels: ['tmachine.test=provision'],
      opts: ['log-level=warn'],
    });
    const client = new Docker({ host: HOST_IP, port: 2376, protocol: 'https', ca: store.caPem, cert: store.certPem, key: store.keyPem, timeout: 5_000 });
    t = Date.now();
    const hostInfo = await detectHost(host);
    timings['detect'] = Date.now() - t;
    context = {
      host,
      os: hostInfo,
      machineName: NAME,
      sshUser: USER,
      engine,
      bundle: { path: BUNDLE, sha256: await sha256File(BUNDLE), version: BUNDLE_VERSION },
      certs: { caPem: store.caPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem },
      registryCas: [{ registry: 'registry.lab.test:5000', caPem: store.caPem }],
      probe: async () => (await client.version()).Version,
    };

    first = await runPlan(provisionPlan(context), context);
    timings['first run'] = first.ms;
  });

  async function waitForSystemd(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = await docker('exec', NAME, 'systemctl', 'is-system-running', '--wait').catch((e: { stdout?: string }) => e.stdout ?? '');
      if (/running|degraded/.test(state)) return;
      if (Date.now() > deadline) throw new Error(`systemd in ${NAME} did not come up: ${state}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  afterAll(async () => {
    host?.close();
    // TMACHINE_TEST_KEEP=1 leaves the host running for a look inside (the next run removes it).
    if (process.env['TMACHINE_TEST_KEEP'] !== '1') await cleanUp();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
    console.log('provision timings (ms):', JSON.stringify(timings));
  });

  it('detects Debian 12 as the unprivileged user', () => {
    expect(context.os).toMatchObject({ family: 'debian', id: 'debian', versionId: '12', init: 'systemd', arch: 'x86_64', user: USER, root: false });
  });

  it('ran every step the first time', () => {
    // engine-ready finds the engine answering already when systemd's start waited for it (Type=notify).
    expect(first.ran.filter((id) => id !== 'engine-ready')).toEqual([
      'engine-bundle-upload', 'engine-binaries', 'docker-group', 'firewall', 'engine-units', 'engine-tls', 'daemon-config',
      'registry-cas', 'engine-start',
    ]);
  });

  it('runs the engine from the bundle: docker version says 20.10.24', async () => {
    const version = await onHost(`su - ${USER} -c "docker version --format '{{.Server.Version}}'"`);
    expect(version.trim()).toMatch(/^20\.10\.24/);
  });

  it('listens on 2376 and not on 2375', async () => {
    const listening = await onHost('ss -Hltn');
    expect(listening).toMatch(/:2376\b/);
    expect(listening).not.toMatch(/:2375\b/);
  });

  it('opens the swarm ports in iptables, with a boot-time unit to restore them', async () => {
    const rules = await onHost('iptables -S');
    expect(rules).toContain('-A INPUT -j TMACHINE-INPUT');
    for (const [proto, port] of [['tcp', 22], ['tcp', 2376], ['tcp', 2377], ['tcp', 7946], ['udp', 7946], ['udp', 4789]] as const) {
      expect(rules).toContain(`-A TMACHINE-INPUT -p ${proto} -m ${proto} --dport ${port} -j ACCEPT`);
    }
    expect((await onHost('systemctl is-enabled tmachine-firewall.service')).trim()).toBe('enabled');
  });

  it('answers TLS on <ip>:2376 only with the client certificate', async () => {
    const withCert = new Docker({ host: HOST_IP, port: 2376, protocol: 'https', ca: store.caPem, cert: store.certPem, key: store.keyPem });
    const info = await withCert.info();
    expect(info.Labels).toContain('tmachine.test=provision');
    const without = new Docker({ host: HOST_IP, port: 2376, protocol: 'https', ca: store.caPem, timeout: 5_000 });
    // The TLS handshake is refused for want of a client certificate (not a timeout, not a refused port).
    await expect(without.version()).rejects.toThrow(/certificate|alert|handshake|socket hang up|ECONNRESET/i);
  });

  it('writes the key 0600 and trusts the registry CA', async () => {
    const modes = await onHost('stat -c "%a %U %n" /etc/docker/tmachine/server-key.pem /etc/docker/certs.d/registry.lab.test:5000/ca.crt');
    expect(modes).toContain('600 root /etc/docker/tmachine/server-key.pem');
    expect(modes).toContain('644 root /etc/docker/certs.d/registry.lab.test:5000/ca.crt');
  });

  it('runs zero steps the second time, and does not restart the engine', async () => {
    const pidBefore = (await onHost('systemctl show -p MainPID --value docker')).trim();
    const second = await runPlan(provisionPlan(context), context);
    timings['second run'] = second.ms;
    expect(second.ran).toEqual([]);
    // Without a probe, the on-host fallback (socket answers, TLS port listening) agrees.
    const ready = provisionPlan(context).find((s) => s.id === 'engine-ready')!;
    expect(await ready.needsRun({ ...context, probe: undefined })).toBe(false);
    expect((await onHost('systemctl show -p MainPID --value docker')).trim()).toBe(pidBefore);
  });

  it('repairs only what was undone, without restarting the engine for it', async () => {
    const pidBefore = (await onHost('systemctl show -p MainPID --value docker')).trim();
    await onHost('iptables -D TMACHINE-INPUT -p tcp --dport 2377 -j ACCEPT && echo "{}" > /etc/docker/daemon.json');
    const t = Date.now();
    const again = await runPlan(provisionPlan(context), context);
    timings['repair run'] = Date.now() - t;
    // daemon.json is back to what the running engine was started with: no restart needed.
    expect(again.ran).toEqual(['firewall', 'daemon-config']);
    expect(await onHost('iptables -S TMACHINE-INPUT')).toContain('--dport 2377');
    expect((await onHost('systemctl show -p MainPID --value docker')).trim()).toBe(pidBefore);
  });

  it('restarts the engine when its configuration changes', async () => {
    context.engine = { ...context.engine, labels: [...context.engine.labels, 'zone=b'] };
    const t = Date.now();
    const again = await runPlan(provisionPlan(context), context);
    timings['config change run'] = Date.now() - t;
    expect(again.ran.filter((id) => id !== 'engine-ready')).toEqual(['daemon-config', 'engine-start']);
    const info = await new Docker({ host: HOST_IP, port: 2376, protocol: 'https', ca: store.caPem, cert: store.certPem, key: store.keyPem }).info();
    expect(info.Labels).toContain('zone=b');
    const needing: string[] = [];
    for (const step of provisionPlan(context)) if (await step.needsRun(context)) needing.push(step.id);
    expect(needing).toEqual([]);
  });

  it('comes back after a reboot: engine enabled, firewall rules restored, nothing to do', async () => {
    const t = Date.now();
    host.close();
    // A container restart is a reboot: new network namespace (empty iptables), fresh /run, systemd boots.
    await docker('restart', '-t', '5', NAME);
    await waitForSystemd();
    host = await connect();
    context.host = host;
    const rules = await onHost('iptables -S TMACHINE-INPUT');
    expect(rules).toContain('--dport 2377');
    const version = await new Docker({ host: HOST_IP, port: 2376, protocol: 'https', ca: store.caPem, cert: store.certPem, key: store.keyPem }).version();
    expect(version.Version).toMatch(/^20\.10\.24/);
    const after = await runPlan(provisionPlan(context), context);
    timings['reboot + check'] = Date.now() - t;
    expect(after.ran).toEqual([]);
  });
});
