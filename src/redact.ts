/**
 * Secrets (join tokens, keys, cloud credentials, registry passwords) are registered here the
 * moment tmachine learns them, and every line tmachine prints or logs passes through redact().
 * Some secrets also have a recognisable shape and are hidden even when nobody registered them.
 */
const secrets = new Set<string>();

// Swarm join tokens have a recognisable shape even before they are registered.
const JOIN_TOKEN = /SWMTKN-1-[0-9a-z]+-[0-9a-z]+/gi;
// PEM and OpenSSH private keys; a key cut off before its END line (the tail of an output
// that was shortened) is hidden up to the end of the text.
const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*$)/g;
// PuTTY's format names its private part on a line of its own.
const PUTTY_PRIVATE = /(Private-Lines: \d+)[\s\S]*?(?=Private-MAC:|$)/g;
// The password of a URL (https://user:password@host/...): download and mirror URLs carry them.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):([^\s@/]+)@/gi;
// `--password X`, `--password=X`, and `docker login -p X` (elsewhere -p means other things).
const PASSWORD_FLAG = /(--password(?:=|\s+))(?!-)('[^']*'|"[^"]*"|\S+)/g;
const LOGIN_P_FLAG = /(\blogin\b[^\n]*?\s-p(?:=|\s+))(?!-)('[^']*'|"[^"]*"|\S+)/g;
// A docker config's "auth" (base64 of user:password) and the engine API's registry auth header.
const REGISTRY_AUTH = /("auth"\s*:\s*")[A-Za-z0-9+/=]+(")/g;
const REGISTRY_AUTH_HEADER = /(X-Registry-Auth["']?\s*[:=]\s*["']?)[A-Za-z0-9+/=_-]+/gi;

/** Shorter values are too likely to be ordinary words or numbers to hide everywhere. */
const MIN_SECRET_LENGTH = 6;

export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  secrets.add(value);
  // The same value as it appears inside JSON output (quotes, backslashes, newlines escaped).
  const inJson = JSON.stringify(value).slice(1, -1);
  if (inJson !== value) secrets.add(inJson);
  // A URL's password appears percent-encoded inside the URL.
  const inUrl = encodeURIComponent(value);
  if (inUrl !== value) secrets.add(inUrl);
}

export function redact(text: string): string {
  let out = text
    .replace(PRIVATE_KEY, '<private key redacted>')
    .replace(PUTTY_PRIVATE, '$1 <private key redacted>\n')
    .replace(JOIN_TOKEN, 'SWMTKN-***')
    .replace(URL_PASSWORD, '$1:***@')
    .replace(PASSWORD_FLAG, '$1***')
    .replace(LOGIN_P_FLAG, '$1***')
    .replace(REGISTRY_AUTH, '$1***$2')
    .replace(REGISTRY_AUTH_HEADER, '$1***');
  // Longest first: a secret that contains another must not be left half shown.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join('***');
  return out;
}
