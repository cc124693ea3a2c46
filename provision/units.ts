/**
 * Service definitions for the engine. Bundle installs get complete units for containerd and
 * docker (the ones testhost.md §4 verified); package and script installs keep the distribution's
 * units and get a drop-in that removes their `-H fd://`, because dockerd refuses `hosts` given
 * both as a flag and in daemon.json. Alpine gets OpenRC scripts.
 *
 * dockerd never gets -H here: daemon.json's hosts (socket + TLS port) are the only listeners.
 */
import { TmachineError } from '../src/errors.js';
import { shellQuote } from '../drivers/kit/shell.js';

export const BUNDLE_BIN_DIR = '/usr/local/bin';
export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

export const SYSTEMD_UNIT_PATHS = {
  containerd: '/etc/systemd/system/containerd.service',
  docker: '/etc/systemd/system/docker.service',
  dockerDropIn: '/etc/systemd/system/docker.service.d/10-tmachine.conf',
} as const;

export const OPENRC_PATHS = {
  containerd: '/etc/init.d/containerd',
  docker: '/etc/init.d/docker',
  /** Sourced by the docker init script, the packaged one and ours alike. */
  dockerConf: '/etc/conf.d/docker',
} as const;

export interface EnvEntry {
  name: string;
  value: string;
}

/** Parses `--engine-env K=V` entries (refusing names a shell or systemd would mangle). */
export function parseEngineEnv(entries: string[]): EnvEntry[] {
  return entries.map((entry) => {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TmachineError(`--engine-env ${entry}: expected NAME=value`, { hint: 'for example --engine-env HTTP_PROXY=http://proxy:3128' });
    }
    const value = entry.slice(eq + 1);
    if (/[\n\r]/.test(value)) throw new TmachineError(`--engine-env ${name}: the value has a line break`);
    return { name, value };
  });
}

/** systemd's Environment= with the quoting systemd.syntax(7) describes. */
function systemdEnvironment(env: EnvEntry[]): string[] {
  return env.map(({ name, value }) => `Environment="${`${name}=${value}`.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`);
}


export function containerdSystemdUnit(binDir: string = BUNDLE_BIN_DIR): string {
  return `# Written by tmachine; provisioning rewrites it.
[Unit]
Description=containerd container runtime (tmachine)
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
# The kernel may have overlay built in or be unable to load modules (containers): tolerate failure.
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${binDir}/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

export interface DockerUnitOptions {
  env: EnvEntry[];
  binDir?: string;
}

export function dockerSystemdUnit(options: DockerUnitOptions): string {
  const binDir = options.binDir ?? BUNDLE_BIN_DIR;
  return `# Written by tmachine; provisioning rewrites it.
[Unit]
Description=Docker Application Container Engine (tmachine)
Documentation=https://docs.docker.com
After=network-online.target firewalld.service tmachine-firewall.service containerd.service
Wants=network-online.target containerd.service

[Service]
Type=notify
${systemdEnvironment(options.env).map((l) => l + '\n').join('')}# No -H: the listeners (local socket, TLS port) come from /etc/docker/daemon.json.
ExecStart=${binDir}/dockerd --containerd=${CONTAINERD_SOCKET}
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
Restart=always
RestartSec=2
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
`;
}

export interface DockerDropInOptions {
  env: EnvEntry[];
  /** Where the distribution put dockerd (`command -v dockerd` on the host). */
  dockerdPath: string;
  /** Whether the host runs containerd as its own service (Debian's docker.io, docker-ce). */
  systemContainerd: boolean;
}

/** Overrides the packaged unit's ExecStart (which has -H fd://) and adds the engine env. */
export function dockerSystemdDropIn(options: DockerDropInOptions): string {
  const containerd = options.systemContainerd ? ` --containerd=${CONTAINERD_SOCKET}` : '';
  return `# Written by tmachine; provisioning rewrites it.
[Service]
${systemdEnvironment(options.env).map((l) => l + '\n').join('')}# The empty ExecStart= clears the packaged command line (its -H fd:// conflicts with daemon.json).
ExecStart=
ExecStart=${options.dockerdPath}${containerd}
`;
}

export function containerdOpenrcScript(binDir: string = BUNDLE_BIN_DIR): string {
  return `#!/sbin/openrc-run
# Written by tmachine; provisioning rewrites it.
name="containerd"
description="containerd container runtime (tmachine)"
command="${binDir}/containerd"
command_background="yes"
pidfile="/run/\${RC_SVCNAME}.pid"
output_log="/var/log/containerd.log"
error_log="/var/log/containerd.log"
rc_ulimit="-n 1048576 -u unlimited -c unlimited"

depend() {
	need net localmount
	after firewall
}

start_pre() {
	modprobe overlay >/dev/null 2>&1 || true
}
`;
}

export function dockerOpenrcScript(binDir: string = BUNDLE_BIN_DIR): string {
  return `#!/sbin/openrc-run
# Written by tmachine; provisioning rewrites it. Environment: ${OPENRC_PATHS.dockerConf}.
name="docker"
description="Docker Application Container Engine (tmachine)"
command="${binDir}/dockerd"
# No -H: the listeners come from /etc/docker/daemon.json.
command_args="--containerd=${CONTAINERD_SOCKET}"
command_background="yes"
pidfile="/run/\${RC_SVCNAME}.pid"
output_log="/var/log/docker.log"
error_log="/var/log/docker.log"
rc_ulimit="-n 1048576 -u unlimited -c unlimited"
retry="TERM/30/KILL/5"

depend() {
	need containerd net localmount
	after firewall tmachine-firewall
}
`;
}

/** /etc/conf.d/docker: the engine env, for our OpenRC script and Alpine's packaged one. */
export function dockerOpenrcConf(env: EnvEntry[]): string {
  return ['# Written by tmachine; provisioning rewrites it.', ...env.map(({ name, value }) => `export ${name}=${shellQuote(value, { always: true })}`), ''].join('\n');
}
