/**
 * SSH keys as tmachine handles them: the client key pair it generates per machine, and host
 * keys it pins. Keys travel in the SSH wire format (RFC 4253 §6.6), the bytes OpenSSH
 * fingerprints, so a fingerprint printed here is the one `ssh-keygen -lf` prints.
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import { TmachineError } from '../errors.js';

const { utils } = ssh2;

/** A host key as stored in the machine record (ssh.hostKey). */
export interface PinnedHostKey {
  /** Key type named inside the key itself: "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa". */
  algorithm: string;
  /** Base64 of the SSH wire format. */
  key: string;
  /** "SHA256:..." exactly as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

export interface GeneratedKeyPair {
  /** OpenSSH private key PEM ("-----BEGIN OPENSSH PRIVATE KEY-----"). */
  privateKey: string;
  /** One authorized_keys line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

export interface PublicKeyLine extends PinnedHostKey {
  comment: string;
}

/**
 * A new ed25519 key pair in OpenSSH format. ssh2's generator writes an unparseable private
 * key about once in 300 (seen here: 9 of 3000, "Malformed OpenSSH private key"), so every
 * key is parsed back before it is used, and a bad one is made again.
 */
export function generateKeyPair(comment: string): GeneratedKeyPair {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(pair.private) instanceof Error)) return { privateKey: pair.private, publicKey: pair.public.trim() };
  }
  throw new TmachineError('could not generate a usable ed25519 key');
}

/** "SHA256:" + unpadded base64 of the SHA-256 of the wire-format key, as `ssh-keygen -lf` prints. */
export function fingerprintOf(wireKey: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(wireKey).digest('base64').replace(/=+$/, '');
}

/** The key type a wire-format key names in its first field; undefined when the bytes are not one. */
function algorithmOfWireKey(wireKey: Buffer): string | undefined {
  if (wireKey.length < 4) return undefined;
  const length = wireKey.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > wireKey.length) return undefined;
  const algorithm = wireKey.subarray(4, 4 + length).toString('latin1');
  return /^[a-z0-9@.-]+$/.test(algorithm) ? algorithm : undefined;
}

export function pinFromKey(wireKey: Buffer): PinnedHostKey {
  const algorithm = algorithmOfWireKey(wireKey);
  if (!algorithm) throw new TmachineError('not an SSH public key (wire format expected)');
  return { algorithm, key: wireKey.toString('base64'), fingerprint: fingerprintOf(wireKey) };
}

/** Parses "ssh-ed25519 AAAA... comment" (authorized_keys / *.pub / cloud console output). */
export function parsePublicKeyLine(line: string): PublicKeyLine {
  const [type, base64, ...commentWords] = line.trim().split(/\s+/);
  const shown = line.trim().slice(0, 40);
  if (!type || !base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    throw new TmachineError(`not an OpenSSH public key line: "${shown}"`);
  }
  const wireKey = Buffer.from(base64, 'base64');
  // The type is repeated inside the key; a mismatch means a truncated or mangled line.
  if (algorithmOfWireKey(wireKey) !== type) {
    throw new TmachineError(`not an OpenSSH public key line: "${shown}" (key data does not match its type ${type})`);
  }
  return { ...pinFromKey(wireKey), comment: commentWords.join(' ') };
}

/** Fingerprint of the public half of a private key, for messages ("SSH key SHA256:... was refused"). */
export function fingerprintOfPrivateKey(privateKey: string | Buffer): string | undefined {
  const parsed = utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) return undefined;
  return fingerprintOf(key.getPublicSSH());
}

/**
 * The host-key algorithms to offer in key exchange so that the server presents a key of the
 * given type (a server with several host keys otherwise shows whichever type we prefer, and a
 * pin of another type would look like a changed key).
 */
export function hostKeyAlgorithmsFor(keyType: string): string[] {
  if (keyType === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [keyType];
}
