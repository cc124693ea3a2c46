/**
 * The boot image: downloaded once into tmachine's cache, checked against the checksum file
 * published next to it (SHA512SUMS, else SHA256SUMS), converted once into a VDI that every
 * VM's disk is cloned from. Concurrent creates (in this process or another) share the work.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import lockfile from 'proper-lockfile';
import { DriverError } from '../kit/index.js';
import type { VBoxManage } from './vboxmanage.js';

export interface BootImageRequest {
  source: string;
  /** "sha256:HEX" / "sha512:HEX" from --virtualbox-image-checksum. */
  checksum?: string;
  cacheDir: string;
  signal: AbortSignal;
  report(message: string): void;
  /** No response headers, or no data, for this long ends the download (default 30 s). */
  stallMs?: number;
}

export interface BaseDisk {
  /** The converted VDI every VM disk is cloned from. */
  vdiPath: string;
  /** Where the image came from, and what it was checked against. */
  verifiedWith: string;
}

interface Expected {
  algorithm: 'sha256' | 'sha512';
  hex: string;
  from: string;
}

const inProcess = new Map<string, Promise<BaseDisk>>();

export function ensureBaseDisk(vbox: VBoxManage, request: BootImageRequest): Promise<BaseDisk> {
  const key = cacheKey(request.source);
  let pending = inProcess.get(key);
  if (!pending) {
    pending = prepare(vbox, request, key).finally(() => inProcess.delete(key));
    inProcess.set(key, pending);
  }
  return pending;
}

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

function cacheKey(source: string): string {
  const name = path.basename(isUrl(source) ? new URL(source).pathname : source).replace(/[^A-Za-z0-9._-]/g, '_') || 'image';
  return `${crypto.createHash('sha256').update(source).digest('hex').slice(0, 12)}-${name}`;
}

async function prepare(vbox: VBoxManage, request: BootImageRequest, key: string): Promise<BaseDisk> {
  const dir = path.join(request.cacheDir, 'virtualbox', 'images', key);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const release = await lockfile.lock(dir, { retries: { retries: 600, minTimeout: 500, maxTimeout: 1000 }, stale: 120_000 });
  try {
    const done = path.join(dir, 'ready.json');
    const vdiPath = path.join(dir, 'base.vdi');
    const ready = await fsp.readFile(done, 'utf8').then((t) => JSON.parse(t) as { verifiedWith: string; sourceStamp?: string }).catch(() => undefined);
    const stamp = isUrl(request.source) ? undefined : await localStamp(request.source);
    if (ready && fs.existsSync(vdiPath) && ready.sourceStamp === stamp) return { vdiPath, verifiedWith: ready.verifiedWith };

    let imagePath: string;
    let verifiedWith: string;
    if (isUrl(request.source)) {
      const expected = request.checksum ? fromOption(request.checksum) : await publishedChecksum(request);
      imagePath = path.join(dir, path.basename(new URL(request.source).pathname) || 'image');
      if (!(await fileMatches(imagePath, expected))) await download(request, imagePath, expected);
      verifiedWith = `${expected.algorithm.toUpperCase()} from ${expected.from}`;
    } else {
      imagePath = path.resolve(request.source);
      if (!fs.existsSync(imagePath)) {
        throw new DriverError('invalid-input', `--virtualbox-image-url ${request.source}: no such file`, { hint: 'give a URL or the path of a cloud image file' });
      }
      const expected = request.checksum ? fromOption(request.checksum) : await localChecksum(imagePath);
      if (expected) {
        request.report(`checking ${path.basename(imagePath)}`);
        const actual = await hashFile(imagePath, expected.algorithm);
        if (actual !== expected.hex) throw mismatch(request.source, expected, actual);
        verifiedWith = `${expected.algorithm.toUpperCase()} from ${expected.from}`;
      } else {
        verifiedWith = 'a local file (no checksum file next to it)';
      }
    }

    request.report(`converting ${path.basename(imagePath)} to a VirtualBox disk`);
    await fsp.rm(vdiPath, { force: true });
    await fsp.rm(done, { force: true });
    try {
      if (/\.(raw|img)$/i.test(imagePath)) {
        await vbox.run(['convertfromraw', imagePath, vdiPath, '--format', 'VDI'], { signal: request.signal });
      } else {
        await vbox.run(['clonemedium', 'disk', imagePath, vdiPath, '--format', 'VDI'], { signal: request.signal });
        // clonemedium registers source and copy; the cache keeps the file, not the registration.
        await vbox.run(['closemedium', 'disk', vdiPath], { signal: request.signal }).catch(() => undefined);
        await vbox.run(['closemedium', 'disk', imagePath], { signal: request.signal }).catch(() => undefined);
      }
    } catch (error) {
      await fsp.rm(vdiPath, { force: true });
      throw error;
    }
    await fsp.writeFile(done, JSON.stringify({ source: request.source, verifiedWith, ...(stamp ? { sourceStamp: stamp } : {}) }) + '\n');
    return { vdiPath, verifiedWith };
  } finally {
    await release().catch(() => undefined);
  }
}

async function localStamp(file: string): Promise<string | undefined> {
  const st = await fsp.stat(path.resolve(file)).catch(() => undefined);
  return st ? `${st.size}:${st.mtimeMs}` : undefined;
}

function fromOption(value: string): Expected {
  const [algorithm, hex] = value.split(':') as ['sha256' | 'sha512', string];
  return { algorithm, hex: hex.toLowerCase(), from: '--virtualbox-image-checksum' };
}

/** The entry for `name` in a SHA*SUMS file ("<hex>  <name>" or "<hex> *<name>"). */
export function findInSums(text: string, name: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64,128})\s+\*?(.+)$/.exec(line.trim());
    if (m && (m[2] === name || path.basename(m[2]!) === name)) return m[1]!.toLowerCase();
  }
  return undefined;
}

async function publishedChecksum(request: BootImageRequest): Promise<Expected> {
  const url = new URL(request.source);
  const name = path.basename(url.pathname);
  const tried: string[] = [];
  for (const [file, algorithm] of [
    ['SHA512SUMS', 'sha512'],
    ['SHA256SUMS', 'sha256'],
  ] as const) {
    const sumsUrl = new URL(file, url).toString();
    tried.push(sumsUrl);
    const response = await get(sumsUrl, request, 'the checksums of the boot image');
    if (response.status === 404) {
      await response.body?.cancel();
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new DriverError('unreachable', `could not get the checksums of the boot image: ${sumsUrl} answered HTTP ${response.status}`, {
        hint: 'check --virtualbox-image-url, or give --virtualbox-image-checksum',
      });
    }
    const hex = findInSums(await response.text(), name);
    if (!hex) {
      throw new DriverError('failed', `${sumsUrl} lists no checksum for ${name}`, { hint: 'check --virtualbox-image-url, or give --virtualbox-image-checksum' });
    }
    return { algorithm, hex, from: sumsUrl };
  }
  throw new DriverError('invalid-input', `no checksum file next to the boot image (tried ${tried.join(', ')})`, {
    hint: 'use an image published with SHA512SUMS or SHA256SUMS, or give --virtualbox-image-checksum',
  });
}

async function localChecksum(file: string): Promise<Expected | undefined> {
  for (const [sums, algorithm] of [
    ['SHA512SUMS', 'sha512'],
    ['SHA256SUMS', 'sha256'],
  ] as const) {
    const sumsPath = path.join(path.dirname(file), sums);
    const text = await fsp.readFile(sumsPath, 'utf8').catch(() => undefined);
    const hex = text === undefined ? undefined : findInSums(text, path.basename(file));
    if (hex) return { algorithm, hex, from: sumsPath };
  }
  return undefined;
}

/** GET with a deadline for the response headers; network failures become `unreachable`. */
async function get(url: string, request: BootImageRequest, what = 'the boot image'): Promise<Response> {
  const stallMs = request.stallMs ?? 30_000;
  const headers = new AbortController();
  const timer = setTimeout(() => headers.abort(new Error(`no answer within ${Math.round(stallMs / 1000)}s`)), stallMs);
  try {
    return await fetch(url, { signal: AbortSignal.any([request.signal, headers.signal]), redirect: 'follow' });
  } catch (error) {
    if (request.signal.aborted) throw new DriverError('interrupted', 'interrupted while downloading the boot image');
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = headers.signal.aborted ? `no answer within ${Math.round(stallMs / 1000)}s` : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new DriverError('unreachable', `could not download ${what} from ${url}: ${why}`, {
      hint: 'check --virtualbox-image-url and that this computer reaches it',
    });
  } finally {
    clearTimeout(timer);
  }
}

async function download(request: BootImageRequest, target: string, expected: Expected): Promise<void> {
  const response = await get(request.source, request);
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DriverError('unreachable', `could not download the boot image: ${request.source} answered HTTP ${response.status}`, {
      hint: 'check --virtualbox-image-url',
    });
  }
  const total = Number(response.headers.get('content-length') ?? 0);
  const partial = `${target}.part`;
  const hash = crypto.createHash(expected.algorithm);
  const out = fs.createWriteStream(partial, { mode: 0o600 });
  const stallMs = request.stallMs ?? 30_000;
  let received = 0;
  let lastReport = 0;
  let stall: NodeJS.Timeout | undefined;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (error: unknown) => {
        body.destroy();
        out.destroy();
        reject(error);
      };
      const armStall = () => {
        if (stall) clearTimeout(stall);
        stall = setTimeout(() => fail(new DriverError('unreachable', `the boot image download from ${request.source} stalled (no data for ${Math.round(stallMs / 1000)}s)`, { hint: 'try again' })), stallMs);
      };
      const onAbort = () => fail(new DriverError('interrupted', 'interrupted while downloading the boot image'));
      request.signal.addEventListener('abort', onAbort, { once: true });
      armStall();
      body.on('data', (chunk: Buffer) => {
        armStall();
        hash.update(chunk);
        received += chunk.length;
        if (!out.write(chunk)) {
          body.pause();
          out.once('drain', () => body.resume());
        }
        if (total > 0 && Date.now() - lastReport > 1000) {
          lastReport = Date.now();
          request.report(`downloading ${path.basename(target)}: ${Math.floor((received / total) * 100)}%`);
        }
      });
      body.on('error', (e) => fail(new DriverError('unreachable', `the boot image download from ${request.source} failed: ${e.message}`, { hint: 'try again' })));
      body.on('end', () => out.end());
      out.on('finish', () => {
        request.signal.removeEventListener('abort', onAbort);
        resolve();
      });
      out.on('error', fail);
    });
  } catch (error) {
    await fsp.rm(partial, { force: true });
    throw error;
  } finally {
    if (stall) clearTimeout(stall);
  }
  const actual = hash.digest('hex');
  if (actual !== expected.hex) {
    await fsp.rm(partial, { force: true });
    throw mismatch(request.source, expected, actual);
  }
  await fsp.rename(partial, target);
}

function mismatch(source: string, expected: Expected, actual: string): DriverError {
  return new DriverError('failed', `the boot image ${source} does not match its ${expected.algorithm.toUpperCase()} checksum from ${expected.from} (expected ${expected.hex.slice(0, 16)}..., got ${actual.slice(0, 16)}...)`, {
    hint: 'the download is corrupt or the image changed; run the command again, or check the URL',
  });
}

async function fileMatches(file: string, expected: Expected): Promise<boolean> {
  if (!fs.existsSync(file)) return false;
  return (await hashFile(file, expected.algorithm)) === expected.hex;
}

function hashFile(file: string, algorithm: 'sha256' | 'sha512'): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash(algorithm);
    fs.createReadStream(file)
      .on('data', (c) => hash.update(c))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
