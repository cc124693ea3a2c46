/**
 * Real hosts behind the EC2, GCE and VirtualBox fakes (cloud-fakes.md, "Instances that are
 * real hosts"): test hosts (testhost.md) booted from a variant of the host image that has
 * Debian's own cloud-init, which applies a NoCloud seed at first boot the way a cloud guest
 * applies its metadata. Also the labelled test networks they sit on, and the clean-up.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import lockfile from 'proper-lockfile';
import { parse as parseYaml } from 'yaml';
import { hostContainerSpec, MACHINE_LABEL } from '../../drivers/docker/container-spec.js';
import { DEFAULT_HOST_IMAGE, ensureHostImage } from '../../drivers/docker/host-image.js';
import { removeCgroupLeftovers } from '../../drivers/docker/local-engine.js';
import { allocateAddress } from '../../drivers/docker/network.js';
import { serialized } from '../../src/async.js';

const execFileAsync = promisify(execFile);

export const CLOUD_HOST_IMAGE = 'tmachine/host-cloud:bookworm';
/** On the image; its value is the recipe version, so a changed recipe rebuilds the image. */
export const CLOUD_HOST_IMAGE_LABEL = 'tmachine.host-image.cloud-init';
const CLOUD_HOST_RECIPE = '1';
/** On every container this module starts (with its name), besides the caller's labels. */
export const CLOUD_HOST_LABEL = 'tmachine.cloud-host';
/** On every network ensureTestNetwork makes. */
export const TEST_NETWORK_LABEL = 'tmachine.test-network';
/** Where cloud-init's NoCloud datasource looks for a seed on the root filesystem. */
export const NOCLOUD_SEED_DIR = '/var/lib/cloud/seed/nocloud';

const LOCK_DIR = process.env['TMACHINE_CACHE_PATH'] ?? '/var/tmp/tmachine-cache';

/**
 * The image recipe, run as root in a container of the host image (no systemd needed for
 * apt). cloud-init's postinst enables its four units; its generator then starts them at
 * boot when ds-identify finds a NoCloud seed. The host image's oneshot `ssh-keygen -A`
 * unit and cloud-init's ssh module do not fight: cloud-init.service runs before
 * sysinit.target, so its fresh per-instance keys exist before the oneshot unit (ordered
 * after it explicitly as well) fills in only missing types; with no seed, the oneshot unit
 * makes them. Either way each host has its own keys.
 */
const BUILD_SCRIPT = String.raw`set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends cloud-init
systemctl enable cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service
cat > /etc/cloud/cloud.cfg.d/90-tmachine.cfg <<'EOF'
# Test hosts only ever get a NoCloud seed; no network metadata service is ever asked.
datasource_list: [ NoCloud, None ]
# The image has no locales package: update-locale would fail and cloud-init report an error.
locale: false
EOF
mkdir -p /etc/systemd/system/ssh-hostkeys.service.d
printf '[Unit]\nAfter=cloud-init.service\n' > /etc/systemd/system/ssh-hostkeys.service.d/after-cloud-init.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
cloud-init clean --logs
rm -rf /var/lib/cloud /var/log/cloud-init*.log
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
ln -sf /etc/machine-id /var/lib/dbus/machine-id
`;

const imageBuilds = new Map<Dockerode, Promise<string>>();

/** Builds (once, cached; locked across processes) the host image with cloud-init. Returns the image id. */
export function ensureCloudHostImage(docker: Dockerode, report: (m: string) => void = () => undefined): Promise<string> {
  let build = imageBuilds.get(docker);
  if (!build) {
    build = ensureCloudHostImageNow(docker, report);
    imageBuilds.set(docker, build);
    build.catch(() => imageBuilds.delete(docker));
  }
  return build;
}

async function ensureCloudHostImageNow(docker: Dockerode, report: (m: string) => void): Promise<string> {
  const present = await currentImageId(docker);
  if (present) return present;
  await fs.mkdir(LOCK_DIR, { recursive: true });
  const lockTarget = path.join(LOCK_DIR, 'host-cloud-image.lock');
  await fs.writeFile(lockTarget, '', { flag: 'a' });
  const release = await lockfile.lock(lockTarget, { stale: 30_000, update: 5_000, retries: { retries: 400, minTimeout: 1_000, maxTimeout: 2_000 } });
  try {
    const builtMeanwhile = await currentImageId(docker);
    if (builtMeanwhile) return builtMeanwhile;
    const started = Date.now();
    await ensureHostImage(docker, DEFAULT_HOST_IMAGE, { report });
    report(`building ${CLOUD_HOST_IMAGE}: installing Debian's cloud-init on ${DEFAULT_HOST_IMAGE}`);
    const builder = await docker.createContainer({
      name: `tmachine-host-cloud-build-${process.pid}-${Date.now()}`,
      Image: DEFAULT_HOST_IMAGE,
      // No init: apt needs none, and a booted systemd would leave state in the image.
      Cmd: ['sleep', 'infinity'],
      Labels: { [CLOUD_HOST_LABEL]: 'image-build' },
      // The default bridge: NAT to Debian's archive.
      HostConfig: { NetworkMode: 'bridge' },
    });
    try {
      await builder.start();
      const result = await execIn(builder, ['sh', '-c', BUILD_SCRIPT]);
      if (result.code !== 0) {
        throw new Error(`building ${CLOUD_HOST_IMAGE} failed (exit ${result.code}): ${result.output.trim().split('\n').slice(-5).join(' | ')}`);
      }
      const { repo, tag } = splitRef(CLOUD_HOST_IMAGE);
      await builder.commit({
        repo,
        tag,
        pause: true,
        changes: ['CMD ["/sbin/init"]', `LABEL ${CLOUD_HOST_IMAGE_LABEL}=${CLOUD_HOST_RECIPE}`].join('\n'),
      });
    } finally {
      await builder.remove({ force: true, v: true }).catch(() => undefined);
    }
    const id = await currentImageId(docker);
    if (!id) throw new Error(`${CLOUD_HOST_IMAGE} was committed but the engine does not list it`);
    report(`${CLOUD_HOST_IMAGE} built in ${Math.round((Date.now() - started) / 1000)} s`);
    return id;
  } finally {
    await release();
  }
}

async function currentImageId(docker: Dockerode): Promise<string | undefined> {
  try {
    const info = await docker.getImage(CLOUD_HOST_IMAGE).inspect();
    return info.Config?.Labels?.[CLOUD_HOST_IMAGE_LABEL] === CLOUD_HOST_RECIPE ? info.Id : undefined;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

// --- networks ---------------------------------------------------------------------------

export interface TestNetwork {
  name: string;
  id: string;
  subnet: string;
  gateway: string;
  mtu: number;
}

const DEFAULT_MTU = 1500;
const MTU_OPTION = 'com.docker.network.driver.mtu';

/**
 * Creates (or reuses) a labelled bridge network on a /24 inside `range` that no route of
 * this machine covers: a subnet another engine or interface already routes would send
 * the tests' SSH to a stranger (testhost.md §1).
 */
export function ensureTestNetwork(
  docker: Dockerode,
  name: string,
  options: { range: string; mtu?: number; labels?: Record<string, string> },
): Promise<TestNetwork> {
  return serialized(`cloud-host-network:${name}`, async () => {
    const existing = await inspectNetwork(docker, name);
    if (existing) {
      const found = toTestNetwork(existing);
      if (options.mtu !== undefined && found.mtu !== options.mtu) {
        throw new Error(`test network ${name} exists with MTU ${found.mtu}, not ${options.mtu} (remove it first)`);
      }
      return found;
    }
    const [rangeBase, rangeBitsText] = options.range.split('/');
    const rangeBits = Number(rangeBitsText);
    if (!rangeBase || !Number.isInteger(rangeBits) || rangeBits < 8 || rangeBits > 24) {
      throw new Error(`network range "${options.range}" is not an IPv4 prefix between /8 and /24`);
    }
    const start = (ipToInt(rangeBase) & maskOf(rangeBits)) >>> 0;
    const count = 2 ** (24 - rangeBits);
    const lastError: string[] = [];
    for (let i = 0; i < count; i++) {
      const base = start + i * 256;
      const subnet = `${intToIp(base)}/24`;
      // Routes change as other tests create networks: read them for every candidate.
      if (await routed(base, 24)) continue;
      const gateway = intToIp(base + 1);
      try {
        await docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { ...options.labels, [TEST_NETWORK_LABEL]: name },
          Options: options.mtu === undefined ? {} : { [MTU_OPTION]: String(options.mtu) },
          IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: gateway }] },
        });
      } catch (error) {
        const message = String((error as Error).message);
        // Another engine user took the subnet between our route check and the create.
        if (/overlap/i.test(message)) {
          lastError.splice(0, 1, message);
          continue;
        }
        if ((error as { statusCode?: number }).statusCode !== 409) throw error;
      }
      const created = await inspectNetwork(docker, name);
      if (!created) throw new Error(`test network ${name} was created but the engine does not list it`);
      return toTestNetwork(created);
    }
    throw new Error(`no free /24 for test network ${name} inside ${options.range}${lastError[0] ? `: ${lastError[0]}` : ''}`);
  });
}

export async function removeTestNetwork(docker: Dockerode, name: string): Promise<void> {
  await docker
    .getNetwork(name)
    .remove()
    .catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
}

async function inspectNetwork(docker: Dockerode, name: string): Promise<Dockerode.NetworkInspectInfo | undefined> {
  try {
    return (await docker.getNetwork(name).inspect()) as Dockerode.NetworkInspectInfo;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

function toTestNetwork(info: Dockerode.NetworkInspectInfo): TestNetwork {
  const config = (info.IPAM?.Config ?? []).find((c) => c.Subnet?.includes('.'));
  if (!config?.Subnet) throw new Error(`network ${info.Name} has no IPv4 subnet`);
  const mtuText = info.Options?.[MTU_OPTION];
  return {
    name: info.Name,
    id: info.Id,
    subnet: config.Subnet,
    gateway: config.Gateway ?? intToIp(ipToInt(config.Subnet.split('/')[0]!) + 1),
    mtu: mtuText ? Number(mtuText) : DEFAULT_MTU,
  };
}

/** True when some IPv4 route of this machine (`ip route`, all tables' main view) overlaps the prefix. */
async function routed(base: number, bits: number): Promise<boolean> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show']);
  for (const line of stdout.split('\n')) {
    const destination = line.trim().split(/\s+/)[0];
    if (!destination || destination === 'default') continue;
    const [routeBase, routeBitsText] = destination.split('/');
    if (!routeBase || !/^\d+\.\d+\.\d+\.\d+$/.test(routeBase)) continue;
    const routeBits = routeBitsText === undefined ? 32 : Number(routeBitsText);
    const common = Math.min(bits, routeBits);
    if (((ipToInt(routeBase) ^ base) & maskOf(common)) === 0) return true;
  }
  return false;
}

// --- hosts ------------------------------------------------------------------------------

export interface NoCloudSeed {
  metaData: string;
  userData: string;
  networkConfig?: string;
}

export interface CloudHostOptions {
  /** Container name, unique; also its first hostname (cloud-init then sets meta-data's local-hostname). */
  name: string;
  /** A TestNetwork name. */
  network: string;
  /** Fixed address on it (default: the lowest free one from .10). */
  ip?: string;
  /** NoCloud files, or a NoCloud ISO 9660 image (volume label cidata), extracted with xorriso's osirrox. */
  seed: NoCloudSeed | { isoPath: string };
  /** On the container and its volume. */
  labels: Record<string, string>;
  /** VirtualBox NAT port forward: 127.0.0.1:PORT -> 22. */
  publishSsh?: { hostIp: '127.0.0.1'; hostPort: number };
  extraNetworks?: Array<{ network: string; ip?: string }>;
}

export type CloudInitResult = 'done' | 'error' | 'disabled';

export interface CloudHost {
  id: string;
  name: string;
  ip: string;
  /** The host's real SSH public keys (OpenSSH lines), read through the engine once sshd generated them. */
  hostKeys(): Promise<string[]>;
  /** cloud-init's fingerprint and key blocks as it printed them to the console (from its real output). */
  consoleHostKeyBlock(): Promise<string>;
  /** Everything cloud-init wrote to the console so far (/var/log/cloud-init-output.log): a whole EC2 console. */
  consoleOutput(): Promise<string>;
  /** Resolves when sshd answers with a banner and cloud-init finished; ms counts from the last start. */
  waitReady(deadlineMs: number): Promise<{ cloudInit: CloudInitResult; ms: number }>;
  stop(): Promise<void>;
  start(): Promise<void>;
  kill(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
  /** Container, its volume, and the cgroup directories its engine's containers left behind. */
  remove(): Promise<void>;
  exec(cmd: string[]): Promise<{ code: number; output: string }>;
}

export async function startCloudHost(docker: Dockerode, options: CloudHostOptions): Promise<CloudHost> {
  await ensureCloudHostImage(docker);
  const seed = await seedArchive(options.seed);
  const volume = `${options.name}-docker`;
  const labels = { ...options.labels, [CLOUD_HOST_LABEL]: options.name };

  // Address choice and create are one step per network, or parallel starts pick the same address.
  const { container, ip } = await serialized(`cloud-host-address:${options.network}`, async () => {
    const networkInfo = await inspectNetwork(docker, options.network);
    if (!networkInfo) throw new Error(`test network ${options.network} does not exist (ensureTestNetwork first)`);
    const network = toTestNetwork(networkInfo);
    const ip = options.ip ?? (await allocateAddress(docker, network));
    await docker.createVolume({ Name: volume, Labels: labels });
    const spec = hostContainerSpec({ name: options.name, image: CLOUD_HOST_IMAGE, network: options.network, ip, volume, labels, privileged: false });
    // Docker sets the kernel hostname from this at every start, over what cloud-init set at
    // first boot: so it is the seed's hostname, which a guest keeps across reboots.
    spec.Hostname = seed.hostname ?? options.name;
    // These hosts belong to a cloud fake, not to the docker driver: keep them out of its listings.
    delete spec.Labels?.[MACHINE_LABEL];
    if (options.publishSsh) {
      spec.ExposedPorts = { '22/tcp': {} };
      spec.HostConfig.PortBindings = { '22/tcp': [{ HostIp: options.publishSsh.hostIp, HostPort: String(options.publishSsh.hostPort) }] };
    }
    let container: Dockerode.Container;
    try {
      container = await docker.createContainer(spec);
    } catch (error) {
      await docker.getVolume(volume).remove().catch(() => undefined);
      throw error;
    }
    for (const extra of options.extraNetworks ?? []) {
      await docker.getNetwork(extra.network).connect({
        Container: container.id,
        EndpointConfig: extra.ip ? { IPAMConfig: { IPv4Address: extra.ip } } : {},
      });
    }
    return { container, ip };
  });

  const host = new DockerCloudHost(docker, container, options.name, ip, volume);
  try {
    // The seed must be there before init runs: cloud-init reads it once, at first boot.
    await container.putArchive(seed.tar, { path: '/' });
    await host.start();
  } catch (error) {
    await host.remove().catch(() => undefined);
    throw error;
  }
  return host;
}

class DockerCloudHost implements CloudHost {
  readonly id: string;
  private startedAt = Date.now();

  constructor(
    private readonly docker: Dockerode,
    private readonly container: Dockerode.Container,
    readonly name: string,
    readonly ip: string,
    private readonly volume: string,
  ) {
    this.id = container.id;
  }

  async hostKeys(): Promise<string[]> {
    const text = await this.poll('sshd to have host keys', 60_000, async () => {
      // ssh.service active means the keys it serves exist; cat them in one go.
      const result = await this.exec(['sh', '-c', 'systemctl is-active --quiet ssh.service && cat /etc/ssh/ssh_host_*_key.pub']);
      return result.code === 0 && result.output.trim() ? result.output : undefined;
    });
    return text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
  }

  async consoleHostKeyBlock(): Promise<string> {
    const output = await this.poll('cloud-init to print the host keys to the console', 120_000, async () => {
      const text = await this.consoleOutput().catch(() => '');
      return text.includes('-----END SSH HOST KEY KEYS-----') ? text : undefined;
    });
    return extractHostKeyBlock(output);
  }

  async consoleOutput(): Promise<string> {
    const result = await this.exec(['cat', '/var/log/cloud-init-output.log']);
    if (result.code !== 0) throw new Error(`no cloud-init console output on ${this.name} yet: ${result.output.trim()}`);
    return result.output;
  }

  async waitReady(deadlineMs: number): Promise<{ cloudInit: CloudInitResult; ms: number }> {
    const end = Date.now() + deadlineMs;
    await this.poll('sshd to answer with a banner', deadlineMs, () => sshBanner(this.ip, 2_000));
    // sshd starts after cloud-init.service, so the generator has decided by now and
    // `status --wait` cannot mistake an undecided boot for a disabled one.
    const status = await this.poll('cloud-init to finish', Math.max(1, end - Date.now()), async () => {
      const result = await this.exec(['cloud-init', 'status', '--wait']);
      const state = /^status:\s*(\w+)/m.exec(result.output)?.[1];
      return state === 'done' || state === 'error' || state === 'disabled' ? state : undefined;
    });
    return { cloudInit: status, ms: Date.now() - this.startedAt };
  }

  async stop(): Promise<void> {
    await this.container.stop({ t: 30 }).catch(ignoreStatus(304));
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    await this.container.start().catch(ignoreStatus(304));
  }

  async kill(): Promise<void> {
    await this.container.kill().catch(ignoreStatus(409));
  }

  async pause(): Promise<void> {
    await this.container.pause();
  }

  async unpause(): Promise<void> {
    await this.container.unpause();
  }

  async remove(): Promise<void> {
    await this.container.remove({ force: true, v: true }).catch(ignoreStatus(404));
    await this.docker.getVolume(this.volume).remove().catch(ignoreStatus(404));
    await removeCgroupLeftovers([this.id]);
  }

  exec(cmd: string[]): Promise<{ code: number; output: string }> {
    return execIn(this.container, cmd);
  }

  private async poll<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>): Promise<T> {
    const end = Date.now() + deadlineMs;
    let last: unknown;
    for (;;) {
      try {
        const value = await check();
        if (value !== undefined) return value;
      } catch (error) {
        last = error;
      }
      if (Date.now() >= end) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`${this.name}: waited ${Math.round(deadlineMs / 1000)} s for ${what}${last ? ` (last: ${String((last as Error).message ?? last)})` : ''}`);
  }
}

/**
 * cloud-init's keys-to-console output, without the syslog prefix its fingerprint helper
 * adds through logger ("<14>Dec  1 20:32:07 cloud-init: "); the KEYS block comes plain.
 */
export function extractHostKeyBlock(consoleText: string): string {
  const lines = consoleText.split('\n').map((line) => line.replace(/^<\d+>\w{3}\s+\d+\s+[\d:]+\s+[^:]+:\s/, ''));
  const block = (begin: string, end: string): string[] => {
    const from = lines.lastIndexOf(begin);
    const to = lines.indexOf(end, from);
    if (from < 0 || to < 0) throw new Error(`the console output has no "${begin}" block`);
    return lines.slice(from, to + 1);
  };
  return [
    ...block('-----BEGIN SSH HOST KEY FINGERPRINTS-----', '-----END SSH HOST KEY FINGERPRINTS-----'),
    ...block('-----BEGIN SSH HOST KEY KEYS-----', '-----END SSH HOST KEY KEYS-----'),
    '',
  ].join('\n');
}

/** Removes every container, volume and network carrying this label (a test's afterAll). */
export async function removeByLabel(docker: Dockerode, label: string, value: string): Promise<void> {
  const filters = { label: [`${label}=${value}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(ignoreStatus(404))));
  await removeCgroupLeftovers(containers.map((c) => c.Id));
  const { Volumes: volumes } = await docker.listVolumes({ filters });
  for (const volume of volumes ?? []) await docker.getVolume(volume.Name).remove().catch(ignoreStatus(404));
  const networks = await docker.listNetworks({ filters });
  for (const network of networks) await docker.getNetwork(network.Id).remove().catch(ignoreStatus(404));
}

// --- seed --------------------------------------------------------------------------------

/** A tar of var/lib/cloud/seed/nocloud/*, owned by root, for putArchive at `/`, and the seed's hostname. */
async function seedArchive(seed: CloudHostOptions['seed']): Promise<{ tar: Buffer; hostname: string | undefined }> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-seed-'));
  try {
    const dir = path.join(work, NOCLOUD_SEED_DIR);
    await fs.mkdir(dir, { recursive: true });
    if ('isoPath' in seed) {
      // osirrox (xorriso's extractor) reads ISO 9660 with Joliet/Rock Ridge names, as cloud-init's mount would.
      await execFileAsync('osirrox', ['-indev', seed.isoPath, '-extract', '/', dir]).catch((error: { stderr?: string; code?: string }) => {
        if (error.code === 'ENOENT') throw new Error('extracting a NoCloud ISO needs xorriso (apt-get install xorriso)');
        throw new Error(`osirrox could not extract ${seed.isoPath}: ${String(error.stderr ?? error).trim().split('\n').at(-1)}`);
      });
      const names = await fs.readdir(dir);
      if (!names.includes('meta-data')) throw new Error(`${seed.isoPath} has no meta-data file (found: ${names.join(', ') || 'nothing'})`);
    } else {
      await fs.writeFile(path.join(dir, 'meta-data'), seed.metaData);
      await fs.writeFile(path.join(dir, 'user-data'), seed.userData);
      if (seed.networkConfig !== undefined) await fs.writeFile(path.join(dir, 'network-config'), seed.networkConfig);
    }
    const hostname = seedHostname(await fs.readFile(path.join(dir, 'meta-data'), 'utf8'));
    // osirrox keeps the ISO's read-only modes; user-data may hold secrets, so root-only files.
    await execFileAsync('chmod', ['-R', 'u=rwX,go=', dir]);
    await execFileAsync('chmod', ['755', ...ancestors(work, dir)]);
    const { stdout } = await execFileAsync('tar', ['-C', work, '--owner=0', '--group=0', '--numeric-owner', '-c', 'var'], {
      encoding: 'buffer',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { tar: stdout, hostname };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** meta-data's local-hostname (YAML or JSON, as NoCloud accepts both), if it names a valid one. */
export function seedHostname(metaData: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = parseYaml(metaData);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const record = parsed as Record<string, unknown>;
  const value = record['local-hostname'] ?? record['hostname'];
  return typeof value === 'string' && /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(value) ? value : undefined;
}

function ancestors(root: string, dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d.startsWith(root + path.sep); d = path.dirname(d)) out.push(d);
  return out;
}

// --- small helpers ------------------------------------------------------------------------

async function execIn(container: Dockerode.Container, cmd: string[]): Promise<{ code: number; output: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  container.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}

/** The SSH identification line when sshd answers on ip:22 within timeoutMs, else undefined. */
function sshBanner(ip: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port: 22 });
    let data = '';
    const done = (value: string | undefined) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const line = data.split('\r\n')[0];
      if (data.includes('\n') && line?.startsWith('SSH-')) done(line.trim());
    });
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
  });
}

function ignoreStatus(...codes: number[]): (error: { statusCode?: number }) => void {
  return (error) => {
    if (error.statusCode === undefined || !codes.includes(error.statusCode)) throw error;
  };
}

function splitRef(image: string): { repo: string; tag: string } {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? { repo: image.slice(0, colon), tag: image.slice(colon + 1) } : { repo: image, tag: 'latest' };
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join('.');
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}
