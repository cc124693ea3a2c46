/**
 * Secrets (join tokens, keys, cloud credentials) are registered here the moment tmachine
 * learns them, and every line tmachine prints or logs passes through redact().
 */
const secrets = new Set<string>();

// Swarm join tokens have a recognisable shape even before they are registered.
const JOIN_TOKEN = /SWMTKN-1-[0-9a-z]+-[0-9a-z]+/gi;
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;

export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 6) secrets.add(value);
}

export function redact(text: string): string {
  let out = text.replace(JOIN_TOKEN, 'SWMTKN-***').replace(PRIVATE_KEY, '<private key redacted>');
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}
