/**
 * Engines set up outside tmachine (the DCCN manual's nodes: a systemd drop-in with
 * `-H tcp://0.0.0.0:2375`, or a `hosts` key in daemon.json). tmachine's daemon.json names the
 * listeners itself (the socket and TLS on 2376), and dockerd refuses to start when listeners
 * come from both a flag and the file; a drop-in that sorts after tmachine's also replaces its
 * command line. So such a configuration is found before anything on the host changes, and is
 * either reported (one line) or, with `--engine-migrate-tls`, moved aside.
 */
import { SYSTEMD_UNIT_PATHS } from './units.js';
import { DAEMON_JSON_PATH } from './daemon-config.js';
import { shellQuote } from '../drivers/kit/shell.js';

export const DROP_IN_DIR = '/etc/systemd/system/docker.service.d';
/** Suffix of what --engine-migrate-tls moved aside (systemd reads only *.conf drop-ins). */
export const MOVED_SUFFIX = '.tmachine-moved';
const TMACHINE_MARK = '# Written by tmachine';
const FILE_MARK = '==> tmachine-file ';

export interface ForeignListener {
  /** The file that configures it. */
  file: string;
  /** What it makes the engine listen on ("tcp://0.0.0.0:2375", "fd://"). */
  hosts: string[];
  /** A drop-in is moved aside; daemon.json is kept as a copy (tmachine writes its own). */
  kind: 'drop-in' | 'daemon-json';
}

/** Prints each candidate file behind a marker line, for `foreignListeners` to read. */
export const LISTENER_FILES_SCRIPT = [
  `for f in ${DROP_IN_DIR}/*.conf ${DAEMON_JSON_PATH}; do`,
  `  [ -f "$f" ] || continue`,
  `  printf '${FILE_MARK}%s\\n' "$f"; cat "$f"; printf '\\n'`,
  'done',
].join('\n');

function splitFiles(output: string): { path: string; content: string }[] {
  const files: { path: string; content: string }[] = [];
  for (const chunk of output.split(FILE_MARK).slice(1)) {
    const newline = chunk.indexOf('\n');
    files.push({ path: chunk.slice(0, newline).trim(), content: chunk.slice(newline + 1) });
  }
  return files;
}

/** `-H X`, `-HX`, `-H=X`, `--host X`, `--host=X` on the unit's command lines and environment. */
function hostsOfUnit(content: string): string[] {
  const hosts: string[] = [];
  const lines = content.replace(/\\\r?\n/g, ' ').split('\n');
  for (const line of lines) {
    if (/^\s*[#;]/.test(line)) continue;
    for (const m of line.matchAll(/(?:^|[\s"'=])(?:-H|--host)(?:=|\s+)?["']?([^\s"']+)/g)) hosts.push(m[1]!);
  }
  return hosts;
}

function tcpHost(host: string): boolean {
  return /^(?:tcp|http):\/\//.test(host) || /^[^/]*:\d+$/.test(host);
}

/** Listeners configured outside tmachine, from LISTENER_FILES_SCRIPT's output. */
export function foreignListeners(output: string): ForeignListener[] {
  const found: ForeignListener[] = [];
  for (const { path, content } of splitFiles(output)) {
    if (content.startsWith(TMACHINE_MARK)) continue;
    if (path === DAEMON_JSON_PATH) {
      let config: Record<string, unknown>;
      try {
        config = JSON.parse(content) as Record<string, unknown>;
      } catch {
        continue; // tmachine replaces it either way; nothing listens because of it
      }
      const hosts = ([] as unknown[]).concat(config['hosts'] ?? []).filter((h): h is string => typeof h === 'string');
      // TLS with client verification on a TCP host is what tmachine writes too.
      if (config['tlsverify'] === true || !hosts.some(tcpHost)) continue;
      found.push({ file: path, hosts: hosts.filter(tcpHost), kind: 'daemon-json' });
    } else if (path !== SYSTEMD_UNIT_PATHS.dockerDropIn) {
      const hosts = hostsOfUnit(content);
      if (hosts.length > 0) found.push({ file: path, hosts, kind: 'drop-in' });
    }
  }
  return found;
}

/** "tcp://0.0.0.0:2375 (plain TCP, no TLS) in /etc/.../override.conf" */
export function describeListeners(listeners: ForeignListener[]): string {
  return listeners
    .map((l) => {
      const tcp = l.hosts.filter(tcpHost);
      const what = tcp.length > 0 ? `${tcp.join(', ')} (plain TCP, no TLS)` : l.hosts.join(', ');
      return `${what} in ${l.file}`;
    })
    .join('; ');
}

/** Moves drop-ins aside and keeps a copy of daemon.json; tmachine's own files are written next. */
export function migrateScript(listeners: ForeignListener[]): string {
  return [
    'set -e',
    ...listeners.map((l) => (l.kind === 'drop-in' ? `mv -f ${shellQuote(l.file)} ${shellQuote(l.file + MOVED_SUFFIX)}` : `cp -f ${shellQuote(l.file)} ${shellQuote(l.file + MOVED_SUFFIX)}`)),
  ].join('\n');
}
