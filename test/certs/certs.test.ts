import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  certificateCovers,
  certificateDaysLeft,
  certificateMatchesCa,
  ensureStoreCertificates,
  issueServerCertificate,
} from '../../src/certs/certs.js';
import { TmachineError } from '../../src/errors.js';

const execFileP = promisify(execFile);

async function openssl(...args: string[]): Promise<string> {
  const { stdout } = await execFileP('openssl', args);
  return stdout;
}

describe('store certificates', () => {
  let dir: string;
  let certsDir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-certs-'));
    certsDir = path.join(dir, 'certs');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates a CA and a client certificate that openssl verifies', async () => {
    const store = await ensureStoreCertificates(certsDir);
    expect((await fs.readdir(certsDir)).sort()).toEqual(['ca-key.pem', 'ca.pem', 'cert.pem', 'key.pem']);

    const ca = await openssl('x509', '-in', path.join(certsDir, 'ca.pem'), '-noout', '-text');
    expect(ca).toMatch(/CA:TRUE/);
    expect(ca).toMatch(/Certificate Sign/);
    expect(ca).toMatch(/ecdsa-with-SHA256/);
    expect(ca).toMatch(/prime256v1|P-256/);
    const caCert = new X509Certificate(store.caPem);
    const years = (Date.parse(caCert.validTo) - Date.now()) / (365.25 * 24 * 3600 * 1000);
    expect(years).toBeGreaterThan(9.9);

    const client = await openssl('x509', '-in', path.join(certsDir, 'cert.pem'), '-noout', '-text');
    expect(client).toMatch(/TLS Web Client Authentication/);
    expect(client).toMatch(/CA:FALSE/);
    const verified = await openssl('verify', '-purpose', 'sslclient', '-CAfile', path.join(certsDir, 'ca.pem'), path.join(certsDir, 'cert.pem'));
    expect(verified.trim()).toMatch(/: OK$/);
    expect(certificateMatchesCa(store.certPem, store.caPem)).toBe(true);
    for (const pem of Object.values(store)) expect(pem).toMatch(/[^\n]-----\n$/);
  });

  it('writes every file 0600 in a 0700 directory', async () => {
    await ensureStoreCertificates(certsDir);
    expect((await fs.stat(certsDir)).mode & 0o777).toBe(0o700);
    for (const file of ['ca.pem', 'ca-key.pem', 'cert.pem', 'key.pem']) {
      expect((await fs.stat(path.join(certsDir, file))).mode & 0o777, file).toBe(0o600);
    }
    // No temp files left behind.
    expect((await fs.readdir(certsDir)).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('creates nothing when the certificates exist', async () => {
    const first = await ensureStoreCertificates(certsDir);
    const inode = (await fs.stat(path.join(certsDir, 'ca.pem'))).ino;
    const second = await ensureStoreCertificates(certsDir);
    expect(second).toEqual(first);
    expect((await fs.stat(path.join(certsDir, 'ca.pem'))).ino).toBe(inode);
  });

  it('ends with one CA when several processes race to create it', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => ensureStoreCertificates(certsDir)));
    for (const result of results) expect(result).toEqual(results[0]);
  });

  it('ends with one CA when separate processes race to create it', async () => {
    // Plain Node runs certs.ts with type stripping; this hook maps its ".js" imports to the ".ts" sources.
    const hook = `export async function resolve(s, c, next) { try { return await next(s, c); } catch (e) { if (s.startsWith('.') && s.endsWith('.js')) return next(s.slice(0, -3) + '.ts', c); throw e; } }`;
    const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
    const script = `const m = await import(${JSON.stringify(path.resolve('src/certs/certs.ts'))}); const s = await m.ensureStoreCertificates(process.argv[1]); process.stdout.write(s.caPem + s.certPem);`;
    const args = ['--no-warnings', '--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script, certsDir];
    const outputs = await Promise.all(Array.from({ length: 4 }, async () => (await execFileP(process.execPath, args)).stdout));
    expect(outputs[0]).toContain('BEGIN CERTIFICATE');
    expect(new Set(outputs).size).toBe(1);
    expect(outputs[0]).toBe((await fs.readFile(path.join(certsDir, 'ca.pem'), 'utf8')) + (await fs.readFile(path.join(certsDir, 'cert.pem'), 'utf8')));
  });

  it('finishes a CA whose certificate is missing by signing one for the existing key', async () => {
    const first = await ensureStoreCertificates(certsDir);
    await fs.rm(path.join(certsDir, 'ca.pem'));
    const again = await ensureStoreCertificates(certsDir);
    expect(again.caKeyPem).toBe(first.caKeyPem);
    // Same key and name: the client certificate issued under the old one still chains.
    expect(certificateMatchesCa(again.certPem, again.caPem)).toBe(true);
  });

  it('refuses a CA certificate without its key', async () => {
    await ensureStoreCertificates(certsDir);
    await fs.rm(path.join(certsDir, 'ca-key.pem'));
    await expect(ensureStoreCertificates(certsDir)).rejects.toThrow(TmachineError);
    await expect(ensureStoreCertificates(certsDir)).rejects.toThrow(/CA key .* is missing/);
  });
});

describe('server certificates', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tmachine-certs-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('holds every address and name, serverAuth, and chains to the CA', async () => {
    const store = await ensureStoreCertificates(path.join(dir, 'certs'));
    const server = await issueServerCertificate({
      ca: { certPem: store.caPem, keyPem: store.caKeyPem },
      machineName: 'worker1',
      sans: ['203.0.113.10', '10.0.0.5', 'worker1.example.org', 'fd00::5', '10.0.0.5'],
    });
    const certFile = path.join(dir, 'server.pem');
    await fs.writeFile(certFile, server.certPem);
    const text = await openssl('x509', '-in', certFile, '-noout', '-text');
    expect(text).toMatch(/TLS Web Server Authentication/);
    expect(text).toMatch(/Subject: CN\s*=\s*worker1/);
    for (const san of ['IP Address:203.0.113.10', 'IP Address:10.0.0.5', 'DNS:worker1.example.org', 'IP Address:FD00:0:0:0:0:0:0:5', 'DNS:localhost', 'IP Address:127.0.0.1']) {
      expect(text).toContain(san);
    }
    expect(text.match(/IP Address:10\.0\.0\.5/g)).toHaveLength(1);
    const verified = await openssl('verify', '-purpose', 'sslserver', '-CAfile', path.join(dir, 'certs', 'ca.pem'), certFile);
    expect(verified.trim()).toMatch(/: OK$/);

    const days = certificateDaysLeft(server.certPem);
    expect(days).toBeGreaterThan(1090);
    expect(days).toBeLessThan(1100);
    expect(server.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('works for a real TLS handshake with client verification (what dockerd does)', async () => {
    const store = await ensureStoreCertificates(path.join(dir, 'certs'));
    const server = await issueServerCertificate({ ca: { certPem: store.caPem, keyPem: store.caKeyPem }, machineName: 'h1', sans: ['127.0.0.1'] });
    const listener = tls.createServer({ key: server.keyPem, cert: server.certPem, ca: store.caPem, requestCert: true, rejectUnauthorized: true }, (socket) =>
      socket.end('hello'),
    );
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as { port: number }).port;
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: store.caPem, cert: store.certPem, key: store.keyPem }, () => undefined);
        let data = '';
        socket.on('data', (chunk) => (data += chunk));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(reply).toBe('hello');
    } finally {
      listener.close();
    }
  });

  it('certificateCovers tells when the addresses changed', async () => {
    const store = await ensureStoreCertificates(path.join(dir, 'certs'));
    const { certPem } = await issueServerCertificate({ ca: { certPem: store.caPem, keyPem: store.caKeyPem }, machineName: 'm', sans: ['10.0.0.5', 'm.example.org'] });
    expect(certificateCovers(certPem, ['10.0.0.5'])).toBe(true);
    expect(certificateCovers(certPem, ['10.0.0.5', 'M.Example.org', 'localhost', '127.0.0.1'])).toBe(true);
    expect(certificateCovers(certPem, ['[::1]'])).toBe(false);
    expect(certificateCovers(certPem, ['10.0.0.6'])).toBe(false);
    expect(certificateCovers(certPem, ['10.0.0.5', 'other.example.org'])).toBe(false);
    // The CN is not a SAN: a name only in the subject does not count.
    expect(certificateCovers(certPem, ['m'])).toBe(false);
  });

  it('certificateMatchesCa tells a certificate of another CA', async () => {
    const a = await ensureStoreCertificates(path.join(dir, 'a'));
    const b = await ensureStoreCertificates(path.join(dir, 'b'));
    const fromA = await issueServerCertificate({ ca: { certPem: a.caPem, keyPem: a.caKeyPem }, machineName: 'm', sans: ['10.0.0.5'] });
    expect(certificateMatchesCa(fromA.certPem, a.caPem)).toBe(true);
    expect(certificateMatchesCa(fromA.certPem, b.caPem)).toBe(false);
    expect(certificateMatchesCa('not a certificate', a.caPem)).toBe(false);
  });
});
