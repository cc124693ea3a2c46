/**
 * The host image: Debian bookworm with systemd, sshd and a sudo user, and no Docker
 * engine (tmachine installs the pinned one). Made locally and never pulled: from a
 * `debian:bookworm` already on the engine with a Dockerfile, otherwise from Debian's
 * packages with debootstrap (testhost.md §2; the same steps as /var/tmp/lab/build-image.sh).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { DriverError, debug } from '../kit/index.js';

export const DEFAULT_HOST_IMAGE = 'tmachine/host:bookworm';
export const DEFAULT_BASE_IMAGE = 'debian:bookworm';
export const HOST_IMAGE_LABEL = 'tmachine.host-image';
/**
 * The recipe's version, as a label of its own: tmachine's default image is rebuilt when an
 * older recipe made the cached one. 2: ed25519 and ECDSA host keys only (RSA key generation
 * took seconds of every boot), and units a container host never needs are masked.
 */
export const HOST_IMAGE_RECIPE_LABEL = 'tmachine.host-image.recipe';
export const HOST_IMAGE_RECIPE = '2';

/** Units that cost boot time and do nothing in a container host. */
export const MASKED_UNITS = ['e2scrub_reap.service', 'e2scrub_all.timer', 'dev-hugepages.mount', 'sys-kernel-debug.mount', 'sys-kernel-tracing.mount', 'sys-fs-fuse-connections.mount', 'sys-kernel-config.mount'];

/** sshd offers exactly the keys the boot unit makes. */
export const SSHD_HOSTKEYS_CONF = 'HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n';
/** The login user tmachine connects as; passwordless sudo through group sudo. */
export const HOST_USER = 'tmachine';

const SUITE = 'bookworm';
const HOST_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'sudo', 'iproute2', 'iptables', 'ca-certificates', 'procps', 'kmod'];
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';

/**
 * Host keys are made at first boot, per container: keys baked into the image would be
 * shared by every host, and tmachine pins host keys.
 */
export const SSH_HOSTKEYS_UNIT = `[Unit]
Description=Generate SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key
[Install]
WantedBy=multi-user.target
`;

const SUDOERS_LINE = `${HOST_USER} ALL=(ALL) NOPASSWD:ALL\n`;

/**
 * The Dockerfile twin of the debootstrap recipe. Recommends stay out (debootstrap's
 * --include does not install them either); /etc/machine-id is emptied and
 * /var/lib/dbus/machine-id points at it, or systemd would copy dbus's id and every host
 * would share one.
 */
export function hostDockerfile(baseImage: string = DEFAULT_BASE_IMAGE): string {
  return `FROM ${baseImage}
ARG MIRROR=
RUN set -eux; \\
    if [ -n "$MIRROR" ]; then \\
      for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do \\
        if [ -f "$f" ]; then sed -i -e "s|^URIs: http://deb.debian.org/debian\\$|URIs: $MIRROR|" -e "s|^deb http://deb.debian.org/debian |deb $MIRROR |" "$f"; fi; \\
      done; \\
    fi; \\
    apt-get update; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${HOST_PACKAGES.join(' ')}; \\
    useradd -m -s /bin/bash -G sudo ${HOST_USER}; \\
    echo '${SUDOERS_LINE.trim()}' > /etc/sudoers.d/${HOST_USER}; chmod 440 /etc/sudoers.d/${HOST_USER}; \\
    rm -f /etc/ssh/ssh_host_*
COPY ssh-hostkeys.service /etc/systemd/system/ssh-hostkeys.service
RUN set -eux; \\
    systemctl enable ssh-hostkeys.service ssh.service; \\
    systemctl disable apt-daily.timer apt-daily-upgrade.timer || true; \\
    systemctl mask ${MASKED_UNITS.join(' ')}; \\
    mkdir -p /etc/ssh/sshd_config.d; printf '${SSHD_HOSTKEYS_CONF.replace(/\n/g, '\\n')}' > /etc/ssh/sshd_config.d/tmachine-hostkeys.conf; \\
    : > /etc/machine-id; mkdir -p /var/lib/dbus; ln -sf /etc/machine-id /var/lib/dbus/machine-id; \\
    rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
LABEL ${HOST_IMAGE_LABEL}=1 ${HOST_IMAGE_RECIPE_LABEL}=${HOST_IMAGE_RECIPE}
CMD ["/sbin/init"]
`;
}

export interface EnsureHostImageOptions {
  report(message: string): void;
  /** Where build directories, the lock and the build log go (default /var/tmp: roomy, not tmpfs). */
  workDir?: string;
  /** The base image that enables the Dockerfile build when present (tests use a stand-in). */
  baseImage?: string;
}

export interface HostImageResult {
  image: string;
  id: string;
  /** How it was made by this call; absent when it was already there. */
  builtWith?: 'dockerfile' | 'debootstrap';
}

export async function ensureHostImage(
  docker: Dockerode,
  image: string = DEFAULT_HOST_IMAGE,
  options: EnsureHostImageOptions,
): Promise<HostImageResult> {
  const present = await imageId(docker, image);
  // A user's own image is used as it is; tmachine's default is rebuilt when its recipe moved on.
  if (present && (image !== DEFAULT_HOST_IMAGE || (await recipeOf(docker, image)) === HOST_IMAGE_RECIPE)) return { image, id: present };
  if (present) options.report(`host image ${image} was made by an older recipe: rebuilding it`);

  const workDir = options.workDir ?? '/var/tmp';
  const baseImage = options.baseImage ?? DEFAULT_BASE_IMAGE;
  return withBuildLock(workDir, image, options.report, async () => {
    // Another tmachine may have built it while we waited for the lock.
    const builtMeanwhile = await imageId(docker, image);
    if (builtMeanwhile && (image !== DEFAULT_HOST_IMAGE || (await recipeOf(docker, image)) === HOST_IMAGE_RECIPE)) return { image, id: builtMeanwhile };

    const started = Date.now();
    const builtWith = (await imageId(docker, baseImage)) ? 'dockerfile' : 'debootstrap';
    if (builtWith === 'debootstrap') await checkDebootstrapPossible();
    const logPath = path.join(workDir, `tmachine-host-image-${safeName(image)}.log`);
    const log = createWriteStream(logPath, { flags: 'w' });
    try {
      if (builtWith === 'dockerfile') {
        options.report(`building host image ${image} from ${baseImage} (a minute or two)`);
        await buildWithDockerfile(docker, image, baseImage, workDir, options.report, log);
      } else {
        options.report(`building host image ${image} with debootstrap from Debian's archive (about 80 s)`);
        await buildWithDebootstrap(docker, image, workDir, options.report, log);
      }
    } catch (error) {
      throw new DriverError('failed', `building host image ${image} failed: ${firstLine(error)}`, {
        hint: (error instanceof DriverError ? error.hint : undefined) ?? `full log: ${logPath}`,
        cause: error,
      });
    } finally {
      await closeStream(log);
    }
    const id = await imageId(docker, image);
    if (!id) throw new DriverError('failed', `building host image ${image} finished but the engine does not list it`, { hint: `full log: ${logPath}` });
    options.report(`host image ${image} built in ${Math.round((Date.now() - started) / 1000)} s`);
    return { image, id, builtWith };
  });
}

/** Debian mirror this machine's apt uses: same archive (and same reachability) as apt itself. */
export async function debianMirror(): Promise<string> {
  try {
    const deb822 = await fs.readFile('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(deb822)?.[1];
    if (uri) return uri;
  } catch {
    // no deb822 file: older layout
  }
  try {
    const list = await fs.readFile('/etc/apt/sources.list', 'utf8');
    const uri = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(list)?.[1];
    if (uri) return uri;
  } catch {
    // no sources.list either
  }
  return FALLBACK_MIRROR;
}

// --- the two builds -------------------------------------------------------------------

async function buildWithDockerfile(
  docker: Dockerode,
  image: string,
  baseImage: string,
  workDir: string,
  report: (message: string) => void,
  log: WriteStream,
): Promise<void> {
  await withTempDir(workDir, async (dir) => {
    await fs.writeFile(path.join(dir, 'Dockerfile'), hostDockerfile(baseImage));
    await fs.writeFile(path.join(dir, 'ssh-hostkeys.service'), SSH_HOSTKEYS_UNIT);
    const mirror = await debianMirror();
    const stream = await docker.buildImage(
      { context: dir, src: ['Dockerfile', 'ssh-hostkeys.service'] },
      // pull stays false: the base must be the local one, never a registry's.
      { t: image, buildargs: { MIRROR: mirror }, pull: false, forcerm: true, rm: true },
    );
    await followJsonStream(stream, (event) => {
      if (typeof event.stream === 'string') {
        log.write(event.stream);
        const step = /^Step (\d+\/\d+) : (\w+)/.exec(event.stream);
        if (step) report(`docker build: step ${step[1]} (${step[2]})`);
      }
    });
  });
}

async function buildWithDebootstrap(
  docker: Dockerode,
  image: string,
  workDir: string,
  report: (message: string) => void,
  log: WriteStream,
): Promise<void> {
  const mirror = await debianMirror();
  await withTempDir(workDir, async (dir) => {
    const rootfs = path.join(dir, 'rootfs');
    const inRoot = (...parts: string[]) => path.join(rootfs, ...parts);

    const phases = new Set<string>();
    await run('debootstrap', ['--variant=minbase', `--include=${HOST_PACKAGES.join(',')}`, SUITE, rootfs, mirror], log, (line) => {
      // One progress line per phase, not one per package.
      const phase = /^I: (Retrieving|Validating|Extracting|Installing|Unpacking|Configuring|Base system installed)/.exec(line)?.[1];
      if (phase && !phases.has(phase)) {
        phases.add(phase);
        report(`debootstrap: ${phase.toLowerCase()}${phase === 'Retrieving' ? ` packages from ${mirror}` : ''}`);
      }
    });

    report('configuring the host image (user, sshd, machine-id)');
    await run('chroot', [rootfs, 'useradd', '-m', '-s', '/bin/bash', '-G', 'sudo', HOST_USER], log);
    await fs.writeFile(inRoot('etc/sudoers.d', HOST_USER), SUDOERS_LINE, { mode: 0o440 });
    await fs.chmod(inRoot('etc/sudoers.d', HOST_USER), 0o440);
    for (const name of await fs.readdir(inRoot('etc/ssh'))) {
      if (name.startsWith('ssh_host_')) await fs.rm(inRoot('etc/ssh', name), { force: true });
    }
    await fs.writeFile(inRoot('etc/systemd/system/ssh-hostkeys.service'), SSH_HOSTKEYS_UNIT);
    await run('chroot', [rootfs, 'systemctl', 'enable', 'ssh-hostkeys.service', 'ssh.service'], log);
    // The timers may not exist in every package version; not having them is the goal anyway.
    await run('chroot', [rootfs, 'systemctl', 'disable', 'apt-daily.timer', 'apt-daily-upgrade.timer'], log).catch(() => undefined);
    await run('chroot', [rootfs, 'systemctl', 'mask', ...MASKED_UNITS], log);
    await fs.mkdir(inRoot('etc/ssh/sshd_config.d'), { recursive: true });
    await fs.writeFile(inRoot('etc/ssh/sshd_config.d/tmachine-hostkeys.conf'), SSHD_HOSTKEYS_CONF);
    await fs.writeFile(inRoot('etc/machine-id'), '');
    await fs.mkdir(inRoot('var/lib/dbus'), { recursive: true });
    await fs.rm(inRoot('var/lib/dbus/machine-id'), { force: true });
    await fs.symlink('/etc/machine-id', inRoot('var/lib/dbus/machine-id'));
    await emptyDir(inRoot('var/cache/apt/archives'), (name) => name.endsWith('.deb'));
    await emptyDir(inRoot('var/lib/apt/lists'), () => true);

    report(`importing the root filesystem as ${image}`);
    await importRootfs(docker, rootfs, image, log);
  });
}

async function importRootfs(docker: Dockerode, rootfs: string, image: string, log: WriteStream): Promise<void> {
  const { repo, tag } = splitImageRef(image);
  const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarErr = '';
  tar.stderr.on('data', (chunk: Buffer) => {
    tarErr += chunk.toString();
    log.write(chunk);
  });
  const tarExit = new Promise<number>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', (code) => resolve(code ?? 1));
  });
  try {
    const stream = await docker.importImage(tar.stdout, {
      repo,
      tag,
      changes: ['CMD ["/sbin/init"]', `LABEL ${HOST_IMAGE_LABEL}=1 ${HOST_IMAGE_RECIPE_LABEL}=${HOST_IMAGE_RECIPE}`],
    });
    await followJsonStream(stream, (event) => {
      if (typeof event.status === 'string') log.write(event.status + '\n');
    });
  } catch (error) {
    tar.kill();
    throw error;
  }
  const code = await tarExit;
  if (code !== 0) throw new DriverError('failed', `tar of the host root filesystem failed (exit ${code}): ${lastLine(tarErr)}`);
}

// --- checks, lock, temp dirs ----------------------------------------------------------------

async function checkDebootstrapPossible(): Promise<void> {
  if (process.platform !== 'linux') {
    throw new DriverError('failed', 'building the host image needs Linux (debootstrap)', {
      hint: `load a ${DEFAULT_BASE_IMAGE} image into the engine, or build ${DEFAULT_HOST_IMAGE} on a Linux machine`,
    });
  }
  if (!onPath('debootstrap')) {
    throw new DriverError('failed', 'building the host image needs debootstrap, which is not installed', { hint: 'apt-get install debootstrap' });
  }
  if (process.getuid?.() !== 0) {
    throw new DriverError('failed', 'building the host image with debootstrap needs root', {
      hint: 'run this tmachine command once as root (sudo), or load a debian:bookworm image into the engine',
    });
  }
}

function onPath(command: string): boolean {
  // /usr/sbin is often missing from a non-root PATH; debootstrap lives there.
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    if (!dir) return false;
    try {
      accessSync(path.join(dir, command), fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const LOCK_WAIT_MS = 20 * 60_000;

/**
 * mkdir is atomic, so the directory is the lock; the owner's pid inside lets a later
 * process take over the lock of one that died (Ctrl-C, kill) mid-build.
 */
async function withBuildLock<T>(workDir: string, image: string, report: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(workDir, { recursive: true });
  const lockDir = path.join(workDir, `tmachine-host-image-${safeName(image)}.lock`);
  const ownerFile = path.join(lockDir, 'owner');
  const deadline = Date.now() + LOCK_WAIT_MS;
  let waitingReported = false;
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      await fs.writeFile(ownerFile, `${process.pid}\n`);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await lockOwner(lockDir, ownerFile);
    if (owner === 'stale') {
      debug('docker', `removing stale image build lock ${lockDir}`);
      await fs.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new DriverError('failed', `another tmachine has been building ${image} for over ${LOCK_WAIT_MS / 60_000} minutes`, {
        hint: `if no build is running, remove ${lockDir}`,
      });
    }
    if (!waitingReported) {
      report(`waiting for another tmachine that is building ${image}${owner === undefined ? '' : ` (pid ${owner})`}`);
      waitingReported = true;
    }
    await sleep(1_000);
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
}

/** The owner's pid, undefined while it is still writing it, or 'stale'. */
async function lockOwner(lockDir: string, ownerFile: string): Promise<number | 'stale' | undefined> {
  const text = await fs.readFile(ownerFile, 'utf8').catch(() => undefined);
  const pid = text === undefined ? NaN : Number.parseInt(text.trim(), 10);
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return pid;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : 'stale';
    }
  }
  // No pid yet: the owner is between mkdir and writing it, unless that was long ago.
  const stat = await fs.stat(lockDir).catch(() => undefined);
  if (!stat) return undefined;
  return Date.now() - stat.mtimeMs > 60_000 ? 'stale' : undefined;
}

async function withTempDir<T>(workDir: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(workDir, 'tmachine-host-image-'));
  try {
    return await fn(dir);
  } finally {
    await removeBuildDir(dir);
  }
}

/**
 * debootstrap mounts /proc and /sys inside the root filesystem and may leave them mounted
 * when it fails; a recursive delete would then walk into the machine's real /proc and
 * /sys. So: unmount everything below the directory first, and keep the directory if any
 * mount refuses to go.
 */
async function removeBuildDir(dir: string): Promise<void> {
  const mounts = await mountsUnder(dir);
  for (const mount of mounts.sort((a, b) => b.length - a.length)) {
    await run('umount', ['-l', mount], undefined).catch(() => undefined);
  }
  if ((await mountsUnder(dir)).length > 0) {
    process.stderr.write(`Warning: left ${dir} in place: something is still mounted below it\n`);
    return;
  }
  await fs.rm(dir, { recursive: true, force: true });
}

async function mountsUnder(dir: string): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  return text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    // mountinfo escapes space, tab, newline and backslash as octal.
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8))))
    .filter((p) => p.startsWith(prefix));
}

async function emptyDir(dir: string, match: (name: string) => boolean): Promise<void> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) if (match(name)) await fs.rm(path.join(dir, name), { recursive: true, force: true });
}

// --- small helpers ------------------------------------------------------------------------

/**
 * Runs a command, teeing its output to the build log; rejects with the last output line.
 * onLine sees each line of stdout and stderr (progress parsing).
 */
function run(command: string, args: string[], log: WriteStream | undefined, onLine?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      // A chroot has no idea of the caller's PATH; give the standard one.
      env: { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
    });
    let tail = '';
    let pending = '';
    const onData = (chunk: Buffer) => {
      log?.write(chunk);
      const text = chunk.toString();
      tail = (tail + text).slice(-4_000);
      if (!onLine) return;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code;
      reject(new DriverError('failed', code === 'ENOENT' ? `${command} is not installed` : `cannot run ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new DriverError('failed', `${[command, ...args.filter((a) => !a.startsWith('-'))].slice(0, 3).join(' ')} failed (${signal ?? `exit ${code}`}): ${lastLine(tail)}`));
    });
  });
}

interface JsonEvent {
  stream?: unknown;
  status?: unknown;
  error?: unknown;
  errorDetail?: { message?: unknown };
}

/** The engine reports build/import failures inside a 200 response, as an {error} line. */
function followJsonStream(stream: NodeJS.ReadableStream, onEvent: (event: JsonEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let failure: string | undefined;
    const handle = (line: string) => {
      if (!line.trim()) return;
      let event: JsonEvent;
      try {
        event = JSON.parse(line) as JsonEvent;
      } catch {
        return;
      }
      if (event.error !== undefined) failure ??= String(event.errorDetail?.message ?? event.error);
      onEvent(event);
    };
    stream.on('data', (chunk: Buffer | string) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      lines.forEach(handle);
    });
    stream.once('error', reject);
    stream.once('end', () => {
      handle(buffer);
      if (failure) reject(new DriverError('failed', `the engine reported: ${failure.trim().split('\n').at(-1) ?? failure}`));
      else resolve();
    });
  });
}

async function recipeOf(docker: Dockerode, image: string): Promise<string | undefined> {
  const info = await docker.getImage(image).inspect().catch(() => undefined);
  return info?.Config?.Labels?.[HOST_IMAGE_RECIPE_LABEL];
}

async function imageId(docker: Dockerode, image: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(image).inspect();
    return info.Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw new DriverError('failed', `cannot ask the Docker engine about image ${image}: ${firstLine(error)}`, { cause: error });
  }
}

export function splitImageRef(image: string): { repo: string; tag: string } {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon > slash) return { repo: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repo: image, tag: 'latest' };
}

function safeName(image: string): string {
  return image.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

function lastLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).at(-1) ?? '(no output)';
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => stream.end(() => resolve()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
