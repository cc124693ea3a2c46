/**
 * What kind of host we are on (SPEC §4): the OS family from /etc/os-release, the CPU
 * architecture, the init system, and whether we can become root. Everything provisioning does
 * afterwards branches on this.
 */
import { createHash } from 'node:crypto';
import { TmachineError } from '../src/errors.js';
import type { RemoteHost } from '../src/ssh/types.js';

export type OsFamily = 'debian' | 'rhel' | 'suse' | 'alpine';
export type InitSystem = 'systemd' | 'openrc';

export interface OsInfo {
  id: string;
  idLike: string[];
  versionId: string;
  prettyName: string;
  family: OsFamily;
  /** What the family normally runs; detectHost() checks the host itself. */
  init: InitSystem;
}

export interface HostInfo extends OsInfo {
  /** `uname -m` as the host says it (x86_64, aarch64, ...). */
  arch: string;
  /** The login user and its home (uploads are staged there before `sudo install`). */
  user: string;
  home: string;
  /** True when the login user is root; otherwise every privileged command goes through `sudo -n`. */
  root: boolean;
}

/** Which os-release ids belong to which family; ID_LIKE is consulted when ID is not listed. */
const FAMILIES: Record<OsFamily, string[]> = {
  debian: ['debian', 'ubuntu', 'raspbian', 'linuxmint', 'pop'],
  rhel: ['rhel', 'centos', 'fedora', 'rocky', 'almalinux', 'ol', 'amzn'],
  suse: ['suse', 'opensuse', 'sles', 'sled', 'opensuse-leap', 'opensuse-tumbleweed'],
  alpine: ['alpine'],
};

const SUPPORTED = 'Debian/Ubuntu, RHEL/CentOS/Fedora/Rocky, SUSE, Alpine';

/** Parses /etc/os-release (shell-style KEY=value, optionally quoted). */
export function parseOsRelease(text: string): OsInfo {
  const fields = parseShellAssignments(text);
  const id = (fields.get('ID') ?? '').toLowerCase();
  const idLike = (fields.get('ID_LIKE') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const versionId = fields.get('VERSION_ID') ?? '';
  const prettyName = fields.get('PRETTY_NAME') ?? (`${fields.get('NAME') ?? id} ${versionId}`.trim() || 'unknown');
  const family = familyOf(id, idLike);
  if (!family) {
    throw new TmachineError(`unsupported OS ${prettyName}`, { hint: `tmachine supports the ${SUPPORTED} families` });
  }
  return { id, idLike, versionId, prettyName, family, init: family === 'alpine' ? 'openrc' : 'systemd' };
}

function familyOf(id: string, idLike: string[]): OsFamily | undefined {
  const families = Object.entries(FAMILIES) as Array<[OsFamily, string[]]>;
  for (const candidate of [id, ...idLike]) {
    const hit = families.find(([, ids]) => ids.includes(candidate));
    if (hit) return hit[0];
  }
  return undefined;
}

function parseShellAssignments(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue;
    fields.set(match[1]!, unquote(match[2]!.trim()));
  }
  return fields;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1);
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  return value;
}

const MARK = '@@tmachine@@';

/**
 * One round trip: os-release, arch, user, home, init, privileges. Fails when the OS is not
 * supported, there is no usable init system, or the user can neither be nor become root.
 */
export async function detectHost(host: RemoteHost): Promise<HostInfo> {
  const script = [
    'cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null',
    `printf '\\n%s\\n' ${MARK}`,
    'uname -m',
    'id -un',
    'echo "$HOME"',
    'if [ -d /run/systemd/system ]; then echo systemd; elif command -v openrc-run >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then echo openrc; else echo none; fi',
    'if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true >/dev/null 2>&1; then echo sudo; else echo nosudo; fi',
  ].join('; ');
  const result = await host.exec(script);
  const [osRelease = '', rest = ''] = result.stdout.split(`\n${MARK}\n`);
  const [arch = '', user = '', home = '', init = '', privilege = ''] = rest.split('\n').map((l) => l.trim());
  if (osRelease.trim() === '') {
    throw new TmachineError(`cannot tell which OS ${host.label} runs: no /etc/os-release`, { hint: `tmachine supports the ${SUPPORTED} families` });
  }
  const os = parseOsRelease(osRelease);
  if (init !== 'systemd' && init !== 'openrc') {
    throw new TmachineError(`${host.label} (${os.prettyName}) runs neither systemd nor OpenRC`, {
      hint: 'tmachine installs the engine as a service and needs one of them as PID 1',
    });
  }
  if (privilege === 'nosudo') {
    throw new TmachineError(`user ${user} on ${host.label} has no passwordless sudo`, {
      hint: `add "${user} ALL=(ALL) NOPASSWD:ALL" to /etc/sudoers.d/${user} on the host, or connect as root`,
    });
  }
  return { ...os, init, arch, user, home, root: privilege === 'root' };
}

/** Docker's name for an architecture (what static bundles are built for). */
export function dockerArch(unameMachine: string): string {
  const map: Record<string, string> = { x86_64: 'amd64', amd64: 'amd64', aarch64: 'arm64', arm64: 'arm64', armv7l: 'armhf', s390x: 's390x', ppc64le: 'ppc64le' };
  return map[unameMachine] ?? unameMachine;
}

// ---------------------------------------------------------------------------------------------
// Running things on the host. Every privileged command goes through here, so `sudo -n` (never
// a password prompt that would hang) is applied in one place. The RemoteHost logs each command
// to --debug, redacted; no command here carries a secret (keys travel as file content).

/** POSIX single-quoting for one shell word (the kit's one quoting function). */
import { shellQuote } from '../drivers/kit/shell.js';

export { shellQuote };

/** The command line that runs script as root: directly when we are root, else via `sudo -n`. */
export function asRoot(os: Pick<HostInfo, 'root'>, script: string): string {
  return `${os.root ? '' : 'sudo -n '}sh -c ${shellQuote(script)}`;
}

export interface HostShell {
  host: RemoteHost;
  os: HostInfo;
}

/** Runs script as root and returns its result whatever the exit code (for checks). */
export async function execAsRoot(shell: HostShell, script: string, options: { stdin?: string; timeoutMs?: number } = {}) {
  return shell.host.exec(asRoot(shell.os, script), options);
}

/** Runs script as root; a non-zero exit becomes a TmachineError saying what failed and why. */
export async function runAsRoot(shell: HostShell, script: string, what: string, options: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await execAsRoot(shell, script, options);
  if (result.code !== 0) {
    throw new TmachineError(`${what} failed: ${lastLine(result.stderr) || lastLine(result.stdout) || `exit code ${result.code}`}`);
  }
  return result.stdout;
}

export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}

// ---------------------------------------------------------------------------------------------
// Files owned by root, written only when their content or mode differs, so a second run
// changes nothing (and the engine is restarted only when something really changed).

export interface RemoteFile {
  path: string;
  content: string | Buffer;
  /** Octal mode, e.g. 0o644. Files are owned by root. */
  mode: number;
}

/** The subset of files whose content or mode on the host differs from what we would write. */
export async function filesToWrite(shell: HostShell, files: RemoteFile[]): Promise<RemoteFile[]> {
  if (files.length === 0) return [];
  const script = [
    `for f in ${files.map((f) => shellQuote(f.path)).join(' ')}; do`,
    '  if [ -f "$f" ]; then printf "%s %s\\n" "$(sha256sum < "$f" | cut -c1-64)" "$(stat -c %a "$f")"; else echo "- -"; fi',
    'done',
  ].join('\n');
  const lines = (await runAsRoot(shell, script, 'checking files')).split('\n');
  return files.filter((file, i) => {
    const [sha, mode] = (lines[i] ?? '').trim().split(' ');
    return sha !== sha256Hex(file.content) || mode !== file.mode.toString(8);
  });
}

/**
 * Uploads files to a staging directory the login user owns, then moves them into place as
 * root (copy + chmod + rename in the target directory, so no reader sees half a file).
 * Returns the paths written.
 */
export async function writeFilesAsRoot(shell: HostShell, files: RemoteFile[]): Promise<string[]> {
  if (files.length === 0) return [];
  const staging = stagingDir(shell.os);
  await shell.host.exec(`mkdir -p -m 700 ${shellQuote(staging)}`);
  const moves: string[] = ['set -e'];
  for (const [i, file] of files.entries()) {
    const staged = `${staging}/file-${process.pid}-${i}`;
    await shell.host.writeFile(staged, file.content, { mode: 0o600 });
    const dest = shellQuote(file.path);
    const next = shellQuote(`${file.path}.tmachine-new`);
    moves.push(
      `mkdir -p "$(dirname ${dest})"`,
      `cp ${shellQuote(staged)} ${next}`,
      `chown 0:0 ${next}`,
      `chmod ${file.mode.toString(8)} ${next}`,
      `mv -f ${next} ${dest}`,
      `rm -f ${shellQuote(staged)}`,
    );
  }
  await runAsRoot(shell, moves.join('\n'), `writing ${files.map((f) => f.path).join(', ')}`);
  return files.map((f) => f.path);
}

/** Where uploads land before `sudo` moves them: the login user's own, private directory. */
export function stagingDir(os: Pick<HostInfo, 'home'>): string {
  return `${os.home.replace(/\/+$/, '') || ''}/.tmachine-staging`;
}

export function sha256Hex(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
