/**
 * Redaction of every kind of secret tmachine handles, on the paths that print: redact()
 * itself, the debug log, info/warning lines, the one error line (with and without --debug),
 * and the kit's registerSecret that drivers use for cloud credentials. Each test holds the
 * literal secret and greps the output for it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { redact, registerSecret } from '../../src/redact.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { ensureStoreCertificates, issueServerCertificate } from '../../src/certs/certs.js';
import { registerSecret as kitRegisterSecret, debug as kitDebug } from '../../drivers/kit/index.js';
import { DriverError } from '../../drivers/kit/index.js';
import { TmachineError, reportAndExit } from '../../src/errors.js';
import { debug, info, warn } from '../../src/ui/log.js';
// Loading the driver instance module connects the kit's secret and debug sinks to the core.
import '../../src/machine/driver-instance.js';

const WORKER_TOKEN = 'SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx';
const MANAGER_TOKEN = 'SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2';

/** The base64 body lines of a PEM or OpenSSH key: what must never show, even one line of it. */
function keyBodyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
}

function expectNoKey(out: string, pem: string): void {
  for (const line of keyBodyLines(pem)) expect(out).not.toContain(line);
  expect(out).toContain('<private key redacted>');
}

describe('redact(): secrets with a known shape, registered or not', () => {
  it('hides swarm join tokens anywhere in a line, in commands and in JSON', () => {
    for (const token of [WORKER_TOKEN, MANAGER_TOKEN, WORKER_TOKEN.toUpperCase()]) {
      const line = `$ docker swarm join --token ${token} 10.207.0.10:2377`;
      expect(redact(line)).toBe('$ docker swarm join --token SWMTKN-*** 10.207.0.10:2377');
      const json = JSON.stringify({ JoinTokens: { Worker: token } });
      expect(redact(json)).not.toContain(token);
      expect(redact(json)).not.toContain(token.slice(9));
    }
  });

  const pemKeys: Array<[string, () => string]> = [
    ['RSA PKCS#1 ("RSA PRIVATE KEY")', () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()],
    ['PKCS#8 ("PRIVATE KEY")', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
    ['SEC1 ("EC PRIVATE KEY")', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString()],
    [
      'encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY")',
      () => crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'hunter2hunter2' }).toString(),
    ],
    ['OpenSSH ("OPENSSH PRIVATE KEY", as tmachine writes per machine)', () => generateKeyPair('redact-test').privateKey],
  ];
  for (const [format, make] of pemKeys) {
    it(`hides a private key in ${format}: whole, inside a line, JSON-escaped, and cut off before its END line`, () => {
      const pem = make();
      expectNoKey(redact(pem), pem);
      expectNoKey(redact(`cat failed on h1 (exit 1): ${pem} trailing`), pem);
      const json = JSON.stringify({ private_key: pem, client_email: 'x@y' });
      const inJson = redact(json);
      for (const line of keyBodyLines(pem)) expect(inJson).not.toContain(line);
      expect(inJson).toContain('client_email');
      const truncated = pem.split('\n').slice(0, 4).join('\n');
      expectNoKey(redact(`upload failed: ${truncated}`), truncated);
    });
  }

  it("hides the store's CA key and the client and server keys (PKCS#8 from tmachine's own certificate code)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-redact-certs-'));
    try {
      const certs = await ensureStoreCertificates(dir);
      const server = await issueServerCertificate({ ca: { certPem: certs.caPem, keyPem: certs.caKeyPem }, machineName: 'h1', sans: ['10.207.0.10', 'h1'] });
      for (const key of [certs.caKeyPem, certs.keyPem, server.keyPem]) {
        const out = redact(`[debug engine] writing ${key}`);
        expectNoKey(out, key);
      }
      // Certificates are public and stay readable.
      expect(redact(certs.caPem)).toBe(certs.caPem);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hides the password of a URL, and password flags, but leaves -p of other commands alone', () => {
    expect(redact('fetching https://deploy:s3cr3t-Pw@artifacts.example/install.sh')).toBe('fetching https://deploy:***@artifacts.example/install.sh');
    expect(redact('mirror http://u:p%40ss@10.207.0.1:5000/')).toBe('mirror http://u:***@10.207.0.1:5000/');
    expect(redact('$ docker login --password hunter2hunter2 reg.example:5000')).not.toContain('hunter2hunter2');
    expect(redact('$ docker login --password=hunter2hunter2 reg.example:5000')).not.toContain('hunter2hunter2');
    expect(redact("$ docker login -u ci -p 'hunter2 hunter2' reg.example:5000")).not.toContain('hunter2 hunter2');
    // Not secrets: left exactly as they are.
    for (const plain of [
      'mkdir -p /var/lib/tmachine',
      'docker run -p 8080:80 web',
      'tcp://10.207.0.10:2376',
      'ssh://docker@10.207.0.10:22',
      'echo "$PW" | docker login --password-stdin reg.example',
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host',
    ]) {
      expect(redact(plain)).toBe(plain);
    }
  });

  it("hides a docker config's registry auth and the engine API's X-Registry-Auth header", () => {
    const auth = Buffer.from('ci:hunter2hunter2').toString('base64');
    expect(redact(`{"auths":{"reg.example:5000":{"auth":"${auth}"}}}`)).toBe('{"auths":{"reg.example:5000":{"auth":"***"}}}');
    const header = Buffer.from(JSON.stringify({ username: 'ci', password: 'hunter2hunter2' })).toString('base64');
    expect(redact(`POST /services/create X-Registry-Auth: ${header}`)).not.toContain(header);
  });
});

describe('redact(): registered secrets', () => {
  it('hides a registered registry password in plain text, inside JSON (escaped) and percent-encoded in a URL', () => {
    const password = 'pa"ss\\word/with:odd@chars';
    registerSecret(password);
    expect(redact(`login failed for ci with ${password}`)).toBe('login failed for ci with ***');
    const json = JSON.stringify({ message: `bad password ${password}` });
    expect(redact(json)).not.toContain(JSON.stringify(password).slice(1, -1));
    expect(redact(`https://ci:${encodeURIComponent(password)}@reg.example/v2/`)).not.toContain(encodeURIComponent(password));
  });

  it('hides a cloud secret key a driver registers through the kit, in the core and in driver debug lines', () => {
    const awsSecret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' + crypto.randomBytes(4).toString('hex');
    kitRegisterSecret(awsSecret);
    expect(redact(`signing with ${awsSecret}`)).toBe('signing with ***');
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    process.env['TMACHINE_DEBUG'] = '1';
    try {
      kitDebug('ec2', `RunInstances with key ${awsSecret}`);
    } finally {
      delete process.env['TMACHINE_DEBUG'];
      spy.mockRestore();
    }
    expect(written.join('')).toBe('[debug ec2] RunInstances with key ***\n');
  });

  it('hides the longer of two overlapping secrets entirely', () => {
    const short = 'abcdef' + crypto.randomBytes(3).toString('hex');
    const long = `${short}-and-more-${crypto.randomBytes(3).toString('hex')}`;
    registerSecret(short);
    registerSecret(long);
    expect(redact(`x ${long} y ${short} z`)).toBe('x *** y *** z');
  });

  it('ignores values too short to hide safely (under 6 characters)', () => {
    registerSecret('abc');
    expect(redact('abc is a word')).toBe('abc is a word');
  });
});

describe('every printing path redacts', () => {
  const token = WORKER_TOKEN;
  const password = `regpw-${crypto.randomBytes(6).toString('hex')}`;
  let written: string[] = [];
  beforeAll(() => registerSecret(password));
  const capture = () => {
    written = [];
    return vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
  };
  afterEach(() => {
    vi.restoreAllMocks();
    delete process.env['TMACHINE_DEBUG'];
  });

  it('debug, info and warning lines', () => {
    process.env['TMACHINE_DEBUG'] = '1';
    capture();
    debug('ssh h1', `$ docker swarm join --token ${token} 10.207.0.10:2377 # ${password}`);
    info(`joined with ${token}`);
    warn(`registry said ${password}`);
    const out = written.join('');
    expect(out).not.toContain(token);
    expect(out).not.toContain(password);
    expect(out.split('\n').filter(Boolean)).toEqual(['[debug ssh h1] $ docker swarm join --token SWMTKN-*** 10.207.0.10:2377 # ***', 'joined with SWMTKN-***', 'Warning: registry said ***']);
  });

  for (const withDebug of [false, true]) {
    it(`the error line and its hint${withDebug ? ', and the stack --debug prints' : ''}`, async () => {
      if (withDebug) process.env['TMACHINE_DEBUG'] = '1';
      capture();
      vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
        throw new Error(`exit ${code}`);
      }) as never);
      const error = new TmachineError(`join failed on w1 (exit 1): token ${token} rejected; login ${password} refused`, { hint: `retry with ${password}` });
      await expect(reportAndExit(error)).rejects.toThrow('exit 1');
      const out = written.join('');
      expect(out).not.toContain(token);
      expect(out).not.toContain(password);
      expect(out.split('\n')[0]).toBe('Error: join failed on w1 (exit 1): token SWMTKN-*** rejected; login *** refused (retry with ***)');
      if (withDebug) expect(out).toMatch(/\n\s+at /);
    });
  }

  it('a driver error (the kit type) carries its message through the same line', async () => {
    capture();
    vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    await expect(reportAndExit(new DriverError('auth', `the key ${password} was refused`))).rejects.toThrow('exit 1');
    expect(written.join('')).toBe('Error: the key *** was refused\n');
  });
});
