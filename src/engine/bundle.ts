/**
 * Engine bundles (SPEC §4): a Docker static-release tarball that every host of a cluster
 * gets, so every node runs the identical engine and hosts need no internet. Bundles live
 * in the cache, named by their SHA-256, each with a small metadata file:
 *
 *   <cacheDir>/bundles/<sha256>.tgz
 *   <cacheDir>/bundles/<sha256>.json   {version, source, arch, sha256, createdAt}
 *
 * Nothing enters the cache unchecked: a download is hashed while it streams and compared
 * with the expected sum, and every bundle's file list is checked against the layout.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { promisify } from 'node:util';
import writeFileAtomic from 'write-file-atomic';
import { TmachineError } from '../errors.js';
import { debug } from '../ui/log.js';

const execFileP = promisify(execFile);

export const DEFAULT_BUNDLE_BASE_URL = 'https://download.docker.com/linux/static/stable';
export const BUNDLE_BASE_URL_ENV = 'TMACHINE_ENGINE_BUNDLE_BASE_URL';
/** A Docker static release's version: 27.3.1, 28.0.0-rc.1. */
const VERSION = String.raw`\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?`;

/** Docker's static-release layout: what the installer on the host expects to find. */
export const BUNDLE_FILES = [
  'docker/dockerd',
  'docker/containerd',
  'docker/containerd-shim-runc-v2',
  'docker/runc',
  'docker/docker',
  'docker/docker-init',
  'docker/docker-proxy',
  'docker/ctr',
] as const;

export type Report = (message: string) => void;

export interface BundleMeta {
  /** Engine version ("27.3.1"); absent for a local file nobody named a version for. */
  version?: string;
  /** Where it came from: URL, absolute local path, or "debian:docker.io=<package version>". */
  source: string;
  /** Docker's arch names: x86_64, aarch64. */
  arch: string;
  sha256: string;
  createdAt: string;
}

export interface ResolvedBundle {
  /** The bundle in the cache. */
  path: string;
  sha256: string;
  version?: string;
}

export interface FetchBundleOptions {
  version: string;
  arch?: string;
  baseUrl?: string;
  sha256?: string;
  cacheDir: string;
  report: Report;
}

export interface ResolveBundleOptions {
  /** Local path, or http(s) URL. */
  source?: string;
  sha256?: string;
  version?: string;
  cacheDir: string;
  report: Report;
}

export interface BuildBundleOptions {
  cacheDir: string;
  report: Report;
}

/** Docker's download site names architectures as uname does, not as Node does. */
export function bundleArch(nodeArch: string = process.arch): string {
  switch (nodeArch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    case 'arm':
      return 'armhf';
    case 's390x':
      return 's390x';
    case 'ppc64':
      return 'ppc64le';
    default:
      throw new TmachineError(`no Docker static release for this architecture (${nodeArch})`, {
        hint: 'give a bundle for the hosts with --engine-bundle PATH',
      });
  }
}

export function bundleUrl(version: string, arch: string, baseUrl?: string): string {
  const base = (baseUrl ?? process.env[BUNDLE_BASE_URL_ENV] ?? DEFAULT_BUNDLE_BASE_URL).replace(/\/+$/, '');
  return `${base}/${arch}/docker-${version}.tgz`;
}

// --- fetch ----------------------------------------------------------------------------

export async function fetchBundle(options: FetchBundleOptions): Promise<ResolvedBundle> {
  // Checked here, not by the server: a version that cannot exist costs no download attempt.
  if (!new RegExp(`^${VERSION}$`).test(options.version)) {
    throw new TmachineError(`"${options.version}" is not a Docker engine version`, { hint: 'a version looks like 27.3.1 (docker-VERSION.tgz of Docker\'s static releases)' });
  }
  const arch = options.arch ?? bundleArch();
  const expected = options.sha256 === undefined ? undefined : normaliseSha(options.sha256);
  const cached = await findCached(options.cacheDir, (m) =>
    expected ? m.sha256 === expected : m.version === options.version && m.arch === arch,
  );
  if (cached) {
    debug('bundle', `engine ${options.version} (${arch}) already cached: ${cached.path}`);
    return cached;
  }
  const url = bundleUrl(options.version, arch, options.baseUrl);
  return download(url, { version: options.version, arch, sha256: expected, cacheDir: options.cacheDir, report: options.report });
}

interface DownloadOptions {
  version: string | undefined;
  arch: string;
  sha256: string | undefined;
  cacheDir: string;
  report: Report;
}

/** Download, hash while streaming, compare, check the layout, then (only then) cache. */
async function download(url: string, options: DownloadOptions): Promise<ResolvedBundle> {
  // The sum is settled before the big download, so a missing one costs no bandwidth.
  const expected = options.sha256 ?? (await sidecarSha256(url));
  if (!expected) {
    throw new TmachineError(`no SHA-256 for ${url}: none given and the server has no ${path.posix.basename(url)}.sha256`, {
      hint: 'pass the expected checksum with --sha256 (a bundle is never installed unchecked)',
    });
  }

  const response = await get(url);
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => undefined);
    throw new TmachineError(`download of ${url} failed: HTTP ${response.status}${response.statusText ? ' ' + response.statusText : ''}`, {
      hint:
        response.status === 404
          ? `check the version and architecture (${options.arch}), or set ${BUNDLE_BASE_URL_ENV} to a mirror`
          : 'try again, or give a local bundle with --engine-bundle PATH',
    });
  }

  const dir = await bundlesDir(options.cacheDir);
  const temp = tempName(dir);
  try {
    const total = Number(response.headers.get('content-length')) || undefined;
    const name = path.posix.basename(new URL(url).pathname);
    options.report(`downloading ${name}${total ? ` (${megabytes(total)})` : ''}`);
    const hash = createHash('sha256');
    let received = 0;
    let lastReport = Date.now();
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        received += chunk.length;
        if (Date.now() - lastReport > 2_000) {
          lastReport = Date.now();
          options.report(`downloading ${name}: ${megabytes(received)}${total ? ` of ${megabytes(total)}` : ''}`);
        }
        callback(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), meter, createWriteStream(temp, { mode: 0o644 }));
    } catch (error) {
      throw new TmachineError(`download of ${url} broke off after ${megabytes(received)}: ${messageOf(error)}`, {
        hint: 'try again',
        cause: error,
      });
    }
    const actual = hash.digest('hex');
    if (actual !== expected) {
      throw new TmachineError(`checksum mismatch for ${url}: expected sha256 ${expected}, got ${actual}`, {
        hint: 'the download is corrupt or the expected checksum is wrong; nothing was cached',
      });
    }
    await verifyBundleLayout(temp);
    return await adopt(options.cacheDir, temp, { version: options.version, source: url, arch: options.arch, sha256: actual });
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/** `<url>.sha256` as Docker-style sidecars hold it: the hex sum, maybe followed by a file name. */
async function sidecarSha256(url: string): Promise<string | undefined> {
  const response = await get(`${url}.sha256`);
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    debug('bundle', `no checksum file at ${url}.sha256 (HTTP ${response.status})`);
    return undefined;
  }
  const text = await response.text();
  const sum = /\b([0-9a-fA-F]{64})\b/.exec(text)?.[1];
  if (!sum) {
    throw new TmachineError(`${url}.sha256 holds no SHA-256 sum`, { hint: 'pass the expected checksum with --sha256' });
  }
  return sum.toLowerCase();
}

async function get(url: string): Promise<Response> {
  try {
    return await fetch(url, { redirect: 'follow' });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new TmachineError(`cannot download ${url}: ${cause?.code ?? cause?.message ?? messageOf(error)}`, {
      hint: `check the network, set ${BUNDLE_BASE_URL_ENV} to a reachable mirror, or give a local bundle with --engine-bundle PATH`,
      cause: error,
    });
  }
}

// --- resolve --------------------------------------------------------------------------

/**
 * The bundle to install: a local file or URL (`--engine-bundle`), or else the newest
 * cached bundle of the wanted version.
 */
export async function resolveBundle(options: ResolveBundleOptions): Promise<ResolvedBundle> {
  const expected = options.sha256 === undefined ? undefined : normaliseSha(options.sha256);
  const arch = bundleArch();
  const { source } = options;

  if (source && /^https?:\/\//i.test(source)) {
    const cached = await findCached(options.cacheDir, (m) => (expected ? m.sha256 === expected : m.source === source));
    if (cached) return cached;
    return download(source, { version: options.version ?? versionFromName(source), arch, sha256: expected, cacheDir: options.cacheDir, report: options.report });
  }

  if (source) return adoptLocalFile(path.resolve(source), { ...options, sha256: expected, arch });

  const cached = await findCached(options.cacheDir, (m) =>
    expected ? m.sha256 === expected : m.arch === arch && (options.version === undefined || m.version === options.version),
  );
  if (cached) return cached;
  const what = expected ? `with sha256 ${expected}` : options.version ? `for engine ${options.version} (${arch})` : `(${arch})`;
  throw new TmachineError(`no engine bundle ${what} in the cache ${path.join(options.cacheDir, 'bundles')}`, {
    hint: `get one with \`tmachine engine bundle fetch ${options.version ?? 'VERSION'}\` or \`tmachine engine bundle build --from-debian\`, or pass --engine-bundle PATH|URL`,
  });
}

async function adoptLocalFile(
  file: string,
  options: { sha256: string | undefined; version?: string; cacheDir: string; report: Report; arch: string },
): Promise<ResolvedBundle> {
  await checkBundleFile(file);
  const actual = await sha256File(file);
  if (options.sha256 && actual !== options.sha256) {
    throw new TmachineError(`checksum mismatch for ${file}: expected sha256 ${options.sha256}, got ${actual}`, {
      hint: 'the file is not the bundle you meant, or the checksum is wrong; nothing was cached',
    });
  }
  const dir = await bundlesDir(options.cacheDir);
  const existing = await readMeta(dir, actual);
  if (existing && (await exists(path.join(dir, `${actual}.tgz`)))) {
    return toResolved(dir, existing);
  }
  await verifyBundleLayout(file);
  options.report(`adding ${path.basename(file)} to the bundle cache`);
  const temp = tempName(dir);
  try {
    await fs.copyFile(file, temp);
    return await adopt(options.cacheDir, temp, {
      version: options.version ?? versionFromName(file),
      source: file,
      arch: options.arch,
      sha256: actual,
    });
  } finally {
    await fs.rm(temp, { force: true });
  }
}

// --- layout ---------------------------------------------------------------------------

/** A local bundle path names a file (before tar or a hash says something less plain). */
async function checkBundleFile(file: string): Promise<void> {
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat) throw new TmachineError(`engine bundle ${file} not found`, { hint: 'check the path given to --engine-bundle' });
  if (!stat.isFile()) throw new TmachineError(`engine bundle ${file} is not a file`, { hint: 'give the .tgz itself' });
}

/** Checks the tarball lists every file of the static-release layout. */
export async function verifyBundleLayout(file: string): Promise<void> {
  await checkBundleFile(file);
  let listing: string;
  try {
    listing = (await execFileP('tar', ['-tzf', file], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim().split('\n')[0];
    throw new TmachineError(`${file} is not a readable .tgz bundle${stderr ? `: ${stderr}` : ''}`, {
      hint: 'an engine bundle is a Docker static release tarball (docker-VERSION.tgz)',
    });
  }
  const entries = new Set(listing.split('\n').map((l) => l.trim().replace(/^\.\//, '')).filter(Boolean));
  const missing = BUNDLE_FILES.filter((f) => !entries.has(f));
  if (missing.length > 0) {
    throw new TmachineError(`${file} is not an engine bundle: missing ${missing.join(', ')}`, {
      hint: `a bundle holds ${BUNDLE_FILES.join(', ')} (Docker's static release layout)`,
    });
  }
}

// (Bundles built from Debian's packages: src/engine/debian-bundle.ts.)

// --- cache ----------------------------------------------------------------------------

/** Every cached bundle, newest first (for `engine bundle ls` and lookups). */
export async function listCachedBundles(cacheDir: string): Promise<BundleMeta[]> {
  const dir = path.join(cacheDir, 'bundles');
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const metas: BundleMeta[] = [];
  for (const name of names) {
    const match = /^([0-9a-f]{64})\.json$/.exec(name);
    if (!match?.[1]) continue;
    const meta = await readMeta(dir, match[1]);
    if (meta && (await exists(path.join(dir, `${meta.sha256}.tgz`)))) metas.push(meta);
  }
  return metas.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** @internal shared with debian-bundle.ts */
export async function findCached(cacheDir: string, match: (meta: BundleMeta) => boolean): Promise<ResolvedBundle | undefined> {
  const meta = (await listCachedBundles(cacheDir)).find(match);
  return meta ? toResolved(path.join(cacheDir, 'bundles'), meta) : undefined;
}

/**
 * Moves a checked temp file into the cache under its sum (rename: atomic, and a crash
 * never leaves a half file under a real name), then writes its metadata the same way.
 * Shared with debian-bundle.ts.
 */
export async function adopt(cacheDir: string, temp: string, meta: Omit<BundleMeta, 'createdAt'>): Promise<ResolvedBundle> {
  const dir = await bundlesDir(cacheDir);
  const target = path.join(dir, `${meta.sha256}.tgz`);
  await fs.rename(temp, target);
  // The same bytes may come back from another source; keep a version learnt earlier.
  const version = meta.version ?? (await readMeta(dir, meta.sha256))?.version;
  const full: BundleMeta = {
    ...(version === undefined ? {} : { version }),
    source: meta.source,
    arch: meta.arch,
    sha256: meta.sha256,
    createdAt: new Date().toISOString(),
  };
  await writeAtomic(path.join(dir, `${meta.sha256}.json`), JSON.stringify(full, null, 2) + '\n');
  return toResolved(dir, full);
}

async function readMeta(dir: string, sha256: string): Promise<BundleMeta | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(path.join(dir, `${sha256}.json`), 'utf8')) as Partial<BundleMeta>;
    if (parsed.sha256 !== sha256 || typeof parsed.source !== 'string' || typeof parsed.arch !== 'string') return undefined;
    return {
      ...(typeof parsed.version === 'string' ? { version: parsed.version } : {}),
      source: parsed.source,
      arch: parsed.arch,
      sha256,
      createdAt: typeof parsed.createdAt === 'string' ? parsed.createdAt : '',
    };
  } catch {
    return undefined;
  }
}

function toResolved(dir: string, meta: BundleMeta): ResolvedBundle {
  const resolved: ResolvedBundle = { path: path.join(dir, `${meta.sha256}.tgz`), sha256: meta.sha256 };
  if (meta.version !== undefined) resolved.version = meta.version;
  return resolved;
}

/** @internal shared with debian-bundle.ts */
export async function bundlesDir(cacheDir: string): Promise<string> {
  const dir = path.join(cacheDir, 'bundles');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Dot-prefixed and unique per process: never mistaken for a bundle, never shared. */
function tempName(dir: string): string {
  return path.join(dir, `.${process.pid}-${randomUUID()}.part`);
}

/** The one atomic writer (write-file-atomic: temp file + fsync + rename). */
async function writeAtomic(file: string, content: string): Promise<void> {
  await writeFileAtomic(file, content, { mode: 0o644 });
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

// --- small helpers --------------------------------------------------------------------

function normaliseSha(sum: string): string {
  const clean = sum.trim().replace(/^sha256:/i, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(clean)) {
    throw new TmachineError(`"${sum}" is not a SHA-256 checksum`, { hint: 'give the 64 hex digits (as `sha256sum` prints them)' });
  }
  return clean;
}

function versionFromName(nameOrUrl: string): string | undefined {
  return new RegExp(`docker-(${VERSION})\\.tgz$`).exec(nameOrUrl)?.[1];
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/** @internal shared with debian-bundle.ts */
export async function onPath(command: string): Promise<boolean> {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (dir && (await exists(path.join(dir, command)))) return true;
  }
  return false;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

/** The useful line of a failed execFile: the last line of stderr (apt's "E: ..."). */
/** @internal shared with debian-bundle.ts */
export function commandFailure(error: unknown): string {
  const stderr = String((error as { stderr?: unknown }).stderr ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errorLine = stderr.filter((l) => l.startsWith('E:')).at(-1) ?? stderr.at(-1);
  return errorLine ?? messageOf(error);
}
