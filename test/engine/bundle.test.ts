/**
 * Engine bundles: download + checksum + cache against a local HTTP server (127.0.0.1 only),
 * local files, the layout check, and one real build from Debian's packages (cached under
 * $TMACHINE_TEST_CACHE or /var/tmp/tmachine-cache, so only the first run pays for it).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { BUNDLE_FILES, fetchBundle, listCachedBundles, resolveBundle, verifyBundleLayout } from '../../src/engine/bundle.js';
import { buildBundleFromDebian, upstreamVersion } from '../../src/engine/debian-bundle.js';

const noReport = (): void => undefined;

let work: string;
let goodTgz: Buffer;
let goodSha: string;
let brokenTgz: string; // layout without docker/dockerd
let server: http.Server;
let baseUrl: string;
const requests: string[] = [];

/** A tiny tarball in the static-release layout (or without some files). */
async function makeTarball(dir: string, name: string, files: readonly string[]): Promise<string> {
  const tree = path.join(dir, `${name}-tree`);
  for (const file of files) {
    await fs.mkdir(path.dirname(path.join(tree, file)), { recursive: true });
    await fs.writeFile(path.join(tree, file), `#!/bin/sh\necho ${file}\n`, { mode: 0o755 });
  }
  const out = path.join(dir, `${name}.tgz`);
  execFileSync('tar', ['czf', out, '-C', tree, 'docker']);
  return out;
}

const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-bundle-test-'));
  goodTgz = await fs.readFile(await makeTarball(work, 'good', BUNDLE_FILES));
  goodSha = sha(goodTgz);
  brokenTgz = await makeTarball(work, 'broken', BUNDLE_FILES.filter((f) => f !== 'docker/dockerd'));

  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const routes: Record<string, Buffer | string> = {
      '/static/x86_64/docker-1.2.3.tgz': goodTgz,
      '/static/x86_64/docker-1.2.3.tgz.sha256': `${goodSha}  docker-1.2.3.tgz\n`,
      // Served bytes do not match the published sum.
      '/static/x86_64/docker-6.6.6.tgz': goodTgz,
      '/static/x86_64/docker-6.6.6.tgz.sha256': `${'0'.repeat(64)}  docker-6.6.6.tgz\n`,
      // No sidecar for this one.
      '/static/x86_64/docker-7.7.7.tgz': goodTgz,
    };
    const body = routes[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/static`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await fs.rm(work, { recursive: true, force: true });
});

let cacheDir: string;
beforeEach(async () => {
  cacheDir = await fs.mkdtemp(path.join(work, 'cache-'));
  requests.length = 0;
});

async function cacheFiles(): Promise<string[]> {
  return (await fs.readdir(path.join(cacheDir, 'bundles')).catch(() => [] as string[])).sort();
}

async function expectTmachineError(promise: Promise<unknown>, pattern: RegExp): Promise<TmachineError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TmachineError);
  const line = (error as TmachineError).userLine;
  expect(line).toMatch(pattern);
  expect(line).not.toContain('\n');
  return error as TmachineError;
}

describe('fetchBundle', () => {
  it('downloads, checks the .sha256 sidecar, caches, and never downloads the same bundle twice', async () => {
    const reports: string[] = [];
    const first = await fetchBundle({ version: '1.2.3', arch: 'x86_64', baseUrl, cacheDir, report: (m) => reports.push(m) });
    expect(first).toEqual({ path: path.join(cacheDir, 'bundles', `${goodSha}.tgz`), sha256: goodSha, version: '1.2.3' });
    expect(sha(await fs.readFile(first.path))).toBe(goodSha);
    expect(await cacheFiles()).toEqual([`${goodSha}.json`, `${goodSha}.tgz`]);
    const meta = JSON.parse(await fs.readFile(path.join(cacheDir, 'bundles', `${goodSha}.json`), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ version: '1.2.3', arch: 'x86_64', sha256: goodSha, source: `${baseUrl}/x86_64/docker-1.2.3.tgz` });
    expect(typeof meta['createdAt']).toBe('string');
    expect(reports.some((r) => r.startsWith('downloading docker-1.2.3.tgz'))).toBe(true);
    expect(requests).toEqual(['/static/x86_64/docker-1.2.3.tgz.sha256', '/static/x86_64/docker-1.2.3.tgz']);

    requests.length = 0;
    const again = await fetchBundle({ version: '1.2.3', arch: 'x86_64', baseUrl, cacheDir, report: noReport });
    expect(again).toEqual(first);
    // Also found by sum alone.
    const bySum = await fetchBundle({ version: '9.9.9', arch: 'x86_64', baseUrl, sha256: goodSha.toUpperCase(), cacheDir, report: noReport });
    expect(bySum.path).toBe(first.path);
    expect(requests).toEqual([]);
  });

  it('takes the base URL from TMACHINE_ENGINE_BUNDLE_BASE_URL', async () => {
    process.env['TMACHINE_ENGINE_BUNDLE_BASE_URL'] = baseUrl + '/';
    try {
      const got = await fetchBundle({ version: '1.2.3', arch: 'x86_64', cacheDir, report: noReport });
      expect(got.sha256).toBe(goodSha);
    } finally {
      delete process.env['TMACHINE_ENGINE_BUNDLE_BASE_URL'];
    }
  });

  it('refuses a download whose checksum does not match, and caches nothing', async () => {
    const error = await expectTmachineError(
      fetchBundle({ version: '6.6.6', arch: 'x86_64', baseUrl, cacheDir, report: noReport }),
      /^checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/static\/x86_64\/docker-6\.6\.6\.tgz/,
    );
    expect(error.message).toContain(`expected sha256 ${'0'.repeat(64)}`);
    expect(error.message).toContain(`got ${goodSha}`);
    expect(await cacheFiles()).toEqual([]);

    // A wrong sum passed by the user fails the same way.
    await expectTmachineError(
      fetchBundle({ version: '1.2.3', arch: 'x86_64', baseUrl, sha256: 'a'.repeat(64), cacheDir, report: noReport }),
      /checksum mismatch .* expected sha256 a{64}, got [0-9a-f]{64}/,
    );
    expect(await cacheFiles()).toEqual([]);
  });

  it('asks for a checksum when neither the caller nor the server has one, before downloading', async () => {
    await expectTmachineError(
      fetchBundle({ version: '7.7.7', arch: 'x86_64', baseUrl, cacheDir, report: noReport }),
      /no SHA-256 for .*docker-7\.7\.7\.tgz.*--sha256/,
    );
    expect(requests).toEqual(['/static/x86_64/docker-7.7.7.tgz.sha256']);
    const got = await fetchBundle({ version: '7.7.7', arch: 'x86_64', baseUrl, sha256: goodSha, cacheDir, report: noReport });
    expect(got.version).toBe('7.7.7');
  });

  it('reports a 404 in one line', async () => {
    await expectTmachineError(
      fetchBundle({ version: '0.0.1', arch: 'x86_64', baseUrl, sha256: goodSha, cacheDir, report: noReport }),
      /^download of .*docker-0\.0\.1\.tgz failed: HTTP 404.*\(check the version and architecture/,
    );
    expect(await cacheFiles()).toEqual([]);
  });

  it('reports an unreachable server in one line', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await expectTmachineError(
      fetchBundle({ version: '1.2.3', arch: 'x86_64', baseUrl: `http://127.0.0.1:${port}`, cacheDir, report: noReport }),
      new RegExp(`^cannot download http://127\\.0\\.0\\.1:${port}/x86_64/docker-1\\.2\\.3\\.tgz\\.sha256: ECONNREFUSED`),
    );
  });

  it('rejects a malformed checksum argument', async () => {
    await expectTmachineError(
      fetchBundle({ version: '1.2.3', arch: 'x86_64', baseUrl, sha256: 'abc', cacheDir, report: noReport }),
      /"abc" is not a SHA-256 checksum/,
    );
  });
});

describe('resolveBundle', () => {
  it('hashes a local file, checks it against a given sum, and copies it into the cache', async () => {
    const local = path.join(work, 'docker-4.5.6.tgz');
    await fs.writeFile(local, goodTgz);
    await expectTmachineError(
      resolveBundle({ source: local, sha256: 'b'.repeat(64), cacheDir, report: noReport }),
      /^checksum mismatch for .*docker-4\.5\.6\.tgz/,
    );
    expect(await cacheFiles()).toEqual([]);

    const got = await resolveBundle({ source: local, sha256: goodSha, cacheDir, report: noReport });
    expect(got).toEqual({ path: path.join(cacheDir, 'bundles', `${goodSha}.tgz`), sha256: goodSha, version: '4.5.6' });
    expect(await fs.readFile(got.path)).toEqual(goodTgz);
    // The cached copy is what later lookups find, without a source.
    expect(await resolveBundle({ version: '4.5.6', cacheDir, report: noReport })).toEqual(got);
    expect(await resolveBundle({ cacheDir, report: noReport })).toEqual(got);
    expect((await listCachedBundles(cacheDir)).map((m) => m.source)).toEqual([local]);
  });

  it('downloads a URL source through the same checked path', async () => {
    const got = await resolveBundle({ source: `${baseUrl}/x86_64/docker-1.2.3.tgz`, cacheDir, report: noReport });
    expect(got).toMatchObject({ sha256: goodSha, version: '1.2.3' });
    requests.length = 0;
    await resolveBundle({ source: `${baseUrl}/x86_64/docker-1.2.3.tgz`, cacheDir, report: noReport });
    expect(requests).toEqual([]);
  });

  it('says how to get a bundle when the cache has none', async () => {
    await expectTmachineError(
      resolveBundle({ version: '27.3.1', cacheDir, report: noReport }),
      /no engine bundle for engine 27\.3\.1 .* in the cache .*tmachine engine bundle fetch 27\.3\.1.*tmachine engine bundle build --from-debian/,
    );
  });

  it('names a local file that does not exist', async () => {
    await expectTmachineError(resolveBundle({ source: path.join(work, 'nope.tgz'), cacheDir, report: noReport }), /engine bundle .*nope\.tgz not found/);
  });

  it('does not cache a local file without the layout', async () => {
    await expectTmachineError(resolveBundle({ source: brokenTgz, cacheDir, report: noReport }), /missing docker\/dockerd/);
    expect(await cacheFiles()).toEqual([]);
  });
});

describe('verifyBundleLayout', () => {
  it('accepts the static-release layout', async () => {
    await expect(verifyBundleLayout(path.join(work, 'good.tgz'))).resolves.toBeUndefined();
  });

  it('names what is missing', async () => {
    const error = await expectTmachineError(verifyBundleLayout(brokenTgz), /is not an engine bundle: missing docker\/dockerd \(/);
    expect(error.message).not.toContain('docker/ctr');
  });

  it('rejects something that is not a tarball', async () => {
    const junk = path.join(work, 'junk.tgz');
    await fs.writeFile(junk, 'not a tarball');
    await expectTmachineError(verifyBundleLayout(junk), /junk\.tgz is not a readable \.tgz bundle/);
  });
});

describe('upstreamVersion', () => {
  it('strips epoch, repack suffix and Debian revision', () => {
    expect(upstreamVersion('20.10.24+dfsg1-1+deb12u1+b6')).toBe('20.10.24');
    expect(upstreamVersion('20.10.24+dfsg1-1+deb12u1')).toBe('20.10.24');
    expect(upstreamVersion('5:27.3.1-1~debian.12~bookworm')).toBe('27.3.1');
  });
});

describe('buildBundleFromDebian (real apt, cached across runs)', () => {
  const sharedCache = process.env['TMACHINE_TEST_CACHE'] || '/var/tmp/tmachine-cache';

  it('builds the static layout from docker.io, containerd, runc and tini, then reuses it', { timeout: 900_000 }, async () => {
    const reports: string[] = [];
    const started = Date.now();
    const built = await buildBundleFromDebian({ cacheDir: sharedCache, report: (m) => reports.push(m) });
    console.log(`buildBundleFromDebian: ${((Date.now() - started) / 1000).toFixed(1)} s (${reports.at(-1) ?? ''})`);
    expect(built.version).toBe('20.10.24');
    expect(built.path).toBe(path.join(sharedCache, 'bundles', `${built.sha256}.tgz`));
    await verifyBundleLayout(built.path);
    expect(sha(await fs.readFile(built.path))).toBe(built.sha256);

    // The binaries are real: dockerd reports the engine version.
    const x = await fs.mkdtemp(path.join(work, 'x-'));
    execFileSync('tar', ['xzf', built.path, '-C', x, 'docker/dockerd', 'docker/docker-init']);
    expect(execFileSync(path.join(x, 'docker/dockerd'), ['--version']).toString()).toMatch(/Docker version 20\.10\.24/);
    expect(execFileSync(path.join(x, 'docker/docker-init'), ['--version']).toString()).toMatch(/tini version 0\.19/);

    const meta = (await listCachedBundles(sharedCache)).find((m) => m.sha256 === built.sha256);
    expect(meta?.source).toMatch(/^debian:docker\.io=20\.10\.24\+dfsg1-/);

    const t = Date.now();
    const again = await buildBundleFromDebian({ cacheDir: sharedCache, report: noReport });
    expect(again).toEqual(built);
    expect(Date.now() - t).toBeLessThan(10_000);
  });
});
