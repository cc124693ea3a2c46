/**
 * An engine bundle made from Debian's own packages (docker.io, containerd, runc, tini), in
 * the layout of Docker's static release, for machines that reach Debian's archive but not
 * download.docker.com (testhost.md §4).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { TmachineError } from '../errors.js';
import { debug } from '../ui/log.js';
import {
  adopt,
  BUNDLE_FILES,
  bundleArch,
  bundlesDir,
  commandFailure,
  findCached,
  onPath,
  sha256File,
  verifyBundleLayout,
  type BuildBundleOptions,
  type Report,
  type ResolvedBundle,
} from './bundle.js';

const execFileP = promisify(execFile);

const DEBIAN_PACKAGES = ['docker.io', 'containerd', 'runc', 'tini'];

/** Where each bundle file comes from in the unpacked packages (testhost.md §4). */
const DEBIAN_FILE_SOURCES: Record<(typeof BUNDLE_FILES)[number], string> = {
  'docker/docker': 'usr/bin/docker',
  'docker/dockerd': 'usr/sbin/dockerd',
  'docker/docker-proxy': 'usr/sbin/docker-proxy',
  'docker/containerd': 'usr/bin/containerd',
  'docker/containerd-shim-runc-v2': 'usr/bin/containerd-shim-runc-v2',
  'docker/ctr': 'usr/bin/ctr',
  'docker/runc': 'usr/sbin/runc',
  // Static, because docker-init runs inside containers whose libraries are anyone's guess.
  'docker/docker-init': 'usr/bin/tini-static',
};

/**
 * A bundle made from Debian's own packages, for machines that reach Debian's archive but
 * not download.docker.com. The binaries link against Debian 12's libraries, which the
 * bookworm host image has. Reuses a cached bundle of the same docker.io package version.
 */
export async function buildBundleFromDebian(options: BuildBundleOptions): Promise<ResolvedBundle> {
  const { report } = options;
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb', 'tar']) {
    if (!(await onPath(tool))) {
      throw new TmachineError(`building a bundle from Debian's packages needs ${tool}, which is not installed`, {
        hint: 'run it on a Debian (or Ubuntu) machine, or fetch a release: `tmachine engine bundle fetch VERSION`',
      });
    }
  }
  const arch = bundleArch();
  const apt = new AptLists(report);

  const candidate = await apt.withLists(async () => candidateVersion('docker.io'));
  if (!candidate) {
    throw new TmachineError("this machine's apt sources have no docker.io package", {
      hint: 'enable Debian\'s main archive in /etc/apt/sources.list.d/, or fetch a release: `tmachine engine bundle fetch VERSION`',
    });
  }
  const source = `debian:docker.io=${candidate}`;
  const cached = await findCached(options.cacheDir, (m) => m.source === source && m.arch === arch);
  if (cached) {
    report(`engine bundle from docker.io ${candidate} already in the cache`);
    return cached;
  }

  const dir = await bundlesDir(options.cacheDir);
  // Inside the cache directory: same filesystem for the final rename, and room for ~400 MB.
  const work = await fs.mkdtemp(path.join(dir, '.build-'));
  try {
    const debs = path.join(work, 'debs');
    const unpacked = path.join(work, 'x');
    const tree = path.join(work, 'b');
    await fs.mkdir(debs);
    report(`downloading ${DEBIAN_PACKAGES.join(', ')} from Debian's archive`);
    await apt.withLists(async () => {
      await execFileP('apt-get', ['download', ...DEBIAN_PACKAGES], { cwd: debs, maxBuffer: 16 * 1024 * 1024, env: aptEnv() });
      return true;
    });

    report('unpacking the packages');
    const files = (await fs.readdir(debs)).filter((f) => f.endsWith('.deb'));
    let packageVersion: string | undefined;
    for (const deb of files) {
      await execFileP('dpkg-deb', ['-x', path.join(debs, deb), unpacked]);
      if (deb.startsWith('docker.io_')) {
        packageVersion = (await execFileP('dpkg-deb', ['-f', path.join(debs, deb), 'Version'])).stdout.trim();
      }
    }
    if (!packageVersion) throw new TmachineError('apt-get download gave no docker.io package', { hint: 'run `apt-get download docker.io` to see why' });

    await fs.mkdir(path.join(tree, 'docker'), { recursive: true });
    const absent: string[] = [];
    for (const [target, from] of Object.entries(DEBIAN_FILE_SOURCES)) {
      try {
        await fs.copyFile(path.join(unpacked, from), path.join(tree, target));
        await fs.chmod(path.join(tree, target), 0o755);
      } catch {
        absent.push(`/${from}`);
      }
    }
    if (absent.length > 0) {
      throw new TmachineError(`Debian's packages lack ${absent.join(', ')}`, {
        hint: 'this distribution release packages Docker differently; fetch a release with `tmachine engine bundle fetch VERSION`',
      });
    }

    report('packing the bundle');
    const tgz = path.join(work, 'engine-bundle.tgz');
    await execFileP('tar', ['czf', tgz, '-C', tree, 'docker']);
    await verifyBundleLayout(tgz);
    const sha256 = await sha256File(tgz);
    const version = upstreamVersion(packageVersion);
    const result = await adopt(options.cacheDir, tgz, { version, source: `debian:docker.io=${packageVersion}`, arch, sha256 });
    report(`engine bundle ${version} (docker.io ${packageVersion}) cached`);
    return result;
  } catch (error) {
    if (error instanceof TmachineError) throw error;
    throw new TmachineError(`building the engine bundle from Debian's packages failed: ${commandFailure(error)}`, { cause: error });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** "5:20.10.24+dfsg1-1+deb12u1+b6" → "20.10.24": Debian's version minus epoch, repack and revision. */
export function upstreamVersion(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, '').split(/[+~-]/)[0] ?? debianVersion;
}

/**
 * apt's package lists may be missing (fresh containers and CI images empty them):
 * run the action, and if it fails or finds nothing, `apt-get update` once and retry.
 */
class AptLists {
  private updated = false;
  constructor(private readonly report: Report) {}

  async withLists<T>(action: () => Promise<T | undefined>): Promise<T | undefined> {
    let first: unknown;
    try {
      const result = await action();
      if (result !== undefined || this.updated) return result;
    } catch (error) {
      if (this.updated) throw error;
      first = error;
    }
    debug('bundle', `retrying after apt-get update${first ? ` (${commandFailure(first)})` : ''}`);
    await this.update();
    return action();
  }

  private async update(): Promise<void> {
    this.updated = true;
    this.report("updating apt's package lists");
    try {
      await execFileP('apt-get', ['update'], { maxBuffer: 16 * 1024 * 1024, env: aptEnv() });
    } catch (error) {
      throw new TmachineError(`apt-get update failed: ${commandFailure(error)}`, {
        hint: process.getuid?.() === 0 ? "check that Debian's archive is reachable" : 'run `sudo apt-get update` first',
      });
    }
  }
}

async function candidateVersion(pkg: string): Promise<string | undefined> {
  const { stdout } = await execFileP('apt-cache', ['policy', pkg], { env: aptEnv() });
  const candidate = /^\s*Candidate:\s*(\S+)/m.exec(stdout)?.[1];
  return candidate && candidate !== '(none)' ? candidate : undefined;
}

function aptEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
}

