/**
 * TLS for the engine API, Docker Machine's model (SPEC §4, §7): one CA per store, one client
 * certificate signed by it, and a server certificate per machine whose SANs hold every address
 * and name of the host. Keys are ECDSA P-256, signatures SHA-256.
 *
 * Generation uses @peculiar/x509 over WebCrypto; inspection (SANs, issuer checks) uses Node's own
 * X509Certificate, which implements RFC 6125 matching for us.
 */
import { X509Certificate as NodeX509, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type * as X509 from '@peculiar/x509';
import { TmachineError } from '../errors.js';

// The tsconfig has no DOM lib, so the WebCrypto types come from Node's module.
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const subtle = webcrypto.subtle;

const EC: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: webcrypto.EcdsaParams & webcrypto.EcKeyGenParams = { ...EC, hash: 'SHA-256' };

/**
 * @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata
 * polyfill loaded first; both load only when certificates are made (not on every command).
 */
let x509Loaded: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Loaded ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })();
  return x509Loaded;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_DAYS = 3650;
/** The client certificate lives as long as the store's CA: nothing renews it, and an expired
 * client certificate would lock the user out of every machine at once (Docker Machine's 3-year
 * trap). */
const CLIENT_DAYS = CA_DAYS;
const SERVER_DAYS = 1095;
/** Hosts whose clock lags ours must still accept a certificate made a moment ago. */
const BACKDATE_MS = 60 * 60 * 1000;

const SECRET_MODE = 0o600;
const DIR_MODE = 0o700;

export const STORE_CERT_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  cert: 'cert.pem',
  key: 'key.pem',
} as const;

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface StoreCertificates {
  caPem: string;
  caKeyPem: string;
  /** The client certificate (extKeyUsage clientAuth) and its key. */
  certPem: string;
  keyPem: string;
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
}

export interface IssueServerCertificateOptions {
  ca: CertificateAuthority;
  machineName: string;
  /** Every address (IP SAN) and name (DNS SAN) the engine is reached by. */
  sans: string[];
}

/**
 * Creates the store's CA and client certificate when missing, and returns all four PEMs.
 *
 * Safe against a concurrent tmachine doing the same: every file is written to a temp name and
 * link()ed into place, which fails when the name exists, so the first writer wins and everyone
 * else reads the winner's file. The key of a pair is committed before its certificate; a
 * process that finds a key without its certificate (a racer in between, or one that crashed
 * there) signs a certificate for that key itself, and the link() again decides whose is kept.
 */
export async function ensureStoreCertificates(certsDir: string): Promise<StoreCertificates> {
  await fs.mkdir(certsDir, { recursive: true, mode: DIR_MODE });

  const caPath = path.join(certsDir, STORE_CERT_FILES.ca);
  const caKeyPath = path.join(certsDir, STORE_CERT_FILES.caKey);
  // The key is committed before its certificate, so a CA certificate without its key is damage,
  // not a racer in mid-write (checked in this order for the same reason).
  if ((await exists(caPath)) && !(await exists(caKeyPath))) {
    throw new TmachineError(`the store's CA key ${caKeyPath} is missing while ${caPath} exists`, {
      hint: `restore ${STORE_CERT_FILES.caKey}, or move ${certsDir} away and run \`tmachine regenerate-certs\` on every machine`,
    });
  }
  const caKeyPem = await commitOnce(caKeyPath, async () => pkcs8Pem(await generateKeyPair()));
  const caKeys = await keyPairFromPem(caKeyPem, caKeyPath);
  const caPem = await commitOnce(caPath, async () => pemOf(await createCaCertificate(caKeys)));
  await assertCertificateForKey(caPem, caKeyPem, caPath);

  const certPath = path.join(certsDir, STORE_CERT_FILES.cert);
  const keyPath = path.join(certsDir, STORE_CERT_FILES.key);
  const keyPem = await commitOnce(keyPath, async () => pkcs8Pem(await generateKeyPair()));
  const clientKeys = await keyPairFromPem(keyPem, keyPath);
  const certPem = await commitOnce(certPath, async () =>
    pemOf(await createClientCertificate({ certPem: caPem, keyPem: caKeyPem }, clientKeys.publicKey)),
  );
  await assertCertificateForKey(certPem, keyPem, certPath);
  if (!certificateMatchesCa(certPem, caPem)) {
    throw new TmachineError(`the client certificate ${certPath} was not signed by the store's CA ${caPath}`, {
      hint: `remove ${STORE_CERT_FILES.cert} and ${STORE_CERT_FILES.key} so tmachine makes a new client certificate`,
    });
  }
  return { caPem, caKeyPem, certPem, keyPem };
}

/** A server certificate for one machine's engine: serverAuth, SANs = sans + localhost/127.0.0.1. */
export async function issueServerCertificate(options: IssueServerCertificateOptions): Promise<ServerCertificate> {
  const x509 = await loadX509();
  const { ca, machineName } = options;
  const caKeys = await keyPairFromPem(ca.keyPem, 'the CA key');
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = await generateKeyPair();
  const names = sanList([...options.sans, 'localhost', '127.0.0.1']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [machineName] }, { O: ['tmachine'] }],
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + SERVER_DAYS * DAY_MS, caCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: pemOf(cert), keyPem: await pkcs8Pem(keys) };
}

/** True when the certificate names every address and host name in sans (a changed address means a new certificate). */
export function certificateCovers(certPem: string, sans: string[]): boolean {
  const cert = new NodeX509(certPem);
  return sans.map(normalizeSan).filter((san) => san !== '').every((san) =>
    net.isIP(san) ? cert.checkIP(san) !== undefined : cert.checkHost(san, { subject: 'never', wildcards: false }) !== undefined,
  );
}

/** True when certPem was issued and signed by caPem (a new CA means every server certificate is re-issued). */
export function certificateMatchesCa(certPem: string, caPem: string): boolean {
  try {
    const cert = new NodeX509(certPem);
    const ca = new NodeX509(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** Days until the certificate expires (negative when it has); lets callers renew ahead of time. */
export function certificateDaysLeft(certPem: string, now: Date = new Date()): number {
  const cert = new NodeX509(certPem);
  return (Date.parse(cert.validTo) - now.getTime()) / DAY_MS;
}

// ---------------------------------------------------------------------------------------------

async function createCaCertificate(keys: CryptoKeyPair): Promise<X509.X509Certificate> {
  const x509 = await loadX509();
  const now = Date.now();
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // Derived from the key, so a CA certificate re-signed for the same key (see
    // ensureStoreCertificates) carries the same name and every certificate issued under either
    // one chains to both; and distinct per store, so two stores' CAs never look alike.
    name: [{ CN: [`tmachine CA ${await keyTag(keys.publicKey)}`] }, { O: ['tmachine'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
}

async function createClientCertificate(ca: CertificateAuthority, publicKey: CryptoKey): Promise<X509.X509Certificate> {
  const x509 = await loadX509();
  const caKeys = await keyPairFromPem(ca.keyPem, 'the CA key');
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: ['tmachine client'] }, { O: ['tmachine'] }],
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + CLIENT_DAYS * DAY_MS, caCert.notAfter.getTime())),
    publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
}

function sanList(sans: string[]): X509.JsonGeneralName[] {
  const seen = new Set<string>();
  const names: X509.JsonGeneralName[] = [];
  for (const raw of sans) {
    const value = normalizeSan(raw);
    if (value === '') continue;
    const type = net.isIP(value) ? 'ip' : 'dns';
    const key = `${type}:${value.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    names.push({ type, value });
  }
  return names;
}

/** "[fd00::1]" (URL form) is the address fd00::1. */
function normalizeSan(san: string): string {
  return san.trim().replace(/^\[(.*)\]$/, '$1');
}

/** PEM text as written to files: one trailing newline. */
function pemOf(cert: X509.X509Certificate): string {
  return cert.toString('pem').trimEnd() + '\n';
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return subtle.generateKey(EC, true, ['sign', 'verify']);
}

async function pkcs8Pem(keys: CryptoKeyPair): Promise<string> {
  const x509 = await loadX509();
  const der = await subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** WebCrypto cannot derive a public key from a private one; Node's KeyObject can. */
async function keyPairFromPem(keyPem: string, what: string): Promise<CryptoKeyPair> {
  try {
    const privateKeyObject = createPrivateKey(keyPem);
    const pkcs8 = privateKeyObject.export({ type: 'pkcs8', format: 'der' });
    const spki = createPublicKey(privateKeyObject).export({ type: 'spki', format: 'der' });
    const privateKey = await subtle.importKey('pkcs8', pkcs8, EC, true, ['sign']);
    const publicKey = await subtle.importKey('spki', spki, EC, true, ['verify']);
    return { privateKey, publicKey };
  } catch (error) {
    throw new TmachineError(`cannot read ${what}: not an ECDSA P-256 private key`, {
      hint: 'the store certificates are damaged; move the certs directory away and run `tmachine regenerate-certs`',
      cause: error,
    });
  }
}

async function keyTag(publicKey: CryptoKey): Promise<string> {
  const spki = Buffer.from(await subtle.exportKey('spki', publicKey));
  return createHash('sha256').update(spki).digest('hex').slice(0, 12);
}

async function assertCertificateForKey(certPem: string, keyPem: string, certPath: string): Promise<void> {
  const certKey = new NodeX509(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const ownKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!Buffer.from(certKey).equals(Buffer.from(ownKey))) {
    throw new TmachineError(`${certPath} does not belong to its key file`, {
      hint: `remove ${path.basename(certPath)} so tmachine signs a new one for the existing key`,
    });
  }
}

/** Positive 128-bit serial (RFC 5280: at most 20 octets, non-negative). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/**
 * Returns the content of file, creating it with make() when missing. The new content is written
 * to a temp file in the same directory and link()ed to the final name: link never replaces, so
 * of two racing processes exactly one wins, and the other returns the winner's content.
 */
async function commitOnce(file: string, make: () => Promise<string>): Promise<string> {
  const current = await readIfExists(file);
  if (current !== undefined) return current;
  const content = await make();
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', SECRET_MODE);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
  const committed = await readIfExists(file);
  if (committed === undefined) throw new Error(`${file} vanished right after it was written`);
  return committed;
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  return (await readIfExists(file)) !== undefined;
}
