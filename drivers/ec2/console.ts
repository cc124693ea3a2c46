/**
 * Host keys from an instance's console: cloud-init prints a fingerprint block and a key
 * block at first boot. Lines may carry a prefix ("ec2: ", a syslog header); the last
 * printed blocks count (a console holds several boots).
 */
import { createHash } from 'node:crypto';

const KEY_LINE = /(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) (AAAA[A-Za-z0-9+/]+={0,3})/;
const FINGERPRINT_LINE = /\b(SHA256:[A-Za-z0-9+/]+)=*\s/;

function lastBlock(lines: string[], begin: string, end: string): string[] | undefined {
  let from = -1;
  lines.forEach((line, i) => {
    if (line.includes(begin)) from = i;
  });
  if (from < 0) return undefined;
  const to = lines.findIndex((line, i) => i > from && line.includes(end));
  return to < 0 ? undefined : lines.slice(from + 1, to);
}

export function sha256Fingerprint(keyBase64: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(keyBase64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The host keys (OpenSSH lines "type base64") the console published, each confirmed by the
 * fingerprint block when there is one; undefined when the console shows no key block yet.
 */
export function hostKeysFromConsole(consoleText: string): string[] | undefined {
  const lines = consoleText.split(/\r?\n/);
  const keyLines = lastBlock(lines, '-----BEGIN SSH HOST KEY KEYS-----', '-----END SSH HOST KEY KEYS-----');
  if (!keyLines) return undefined;
  const keys = keyLines.map((line) => KEY_LINE.exec(line)).filter((m): m is RegExpExecArray => m !== null);
  const fingerprintLines = lastBlock(lines, '-----BEGIN SSH HOST KEY FINGERPRINTS-----', '-----END SSH HOST KEY FINGERPRINTS-----');
  const fingerprints = new Set((fingerprintLines ?? []).map((line) => FINGERPRINT_LINE.exec(`${line} `)?.[1]).filter((f): f is string => f !== undefined));
  const confirmed = keys.filter((m) => fingerprints.size === 0 || fingerprints.has(sha256Fingerprint(m[2]!)));
  return confirmed.length > 0 ? confirmed.map((m) => `${m[1]} ${m[2]}`) : undefined;
}
