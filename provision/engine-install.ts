/**
 * Installing and configuring the engine on one host (SPEC §4), as steps (src/steps.ts) that
 * each check first whether their work already holds. Running the plan again changes nothing,
 * restarts nothing, and runs no step.
 *
 * Conventions: every privileged command runs through `sudo -n` unless we are root (os.ts);
 * uploads go to ~/.tmachine-staging first and are moved into place as root; files are written
 * only when their sha256 or mode on the host differs from what we would write.
 *
 * Whether the engine answers: the plan asks the caller's `probe()` (tmachine's own TLS client,
 * dockerode with the store's client certificate, connecting to the address tmachine will use).
 * That checks the whole path a user depends on (address, firewall, certificate SANs) and keeps
 * the client key, which opens every machine of the store, off the hosts. Without a probe the
 * plan falls back to a weaker on-host check: dockerd answers on its socket and listens on the
 * TLS port.
 */
import type { Step } from '../src/steps.js';
import { TmachineError } from '../src/errors.js';
import { registerSecret } from '../src/redact.js';
import type { RemoteHost } from '../src/ssh/types.js';
import type { EngineOptions } from '../src/store/machine-record.js';
import { DAEMON_JSON_PATH, DEFAULT_ENGINE_PORT, DEFAULT_TLS_PATHS, DOCKER_TLS_DIR, buildDaemonConfig, renderDaemonJson } from './daemon-config.js';
import { firewallStep } from './firewall.js';
import { LISTENER_FILES_SCRIPT, MOVED_SUFFIX, describeListeners, foreignListeners, migrateScript } from './engine-listeners.js';
import {
  type HostInfo,
  type HostShell,
  type RemoteFile,
  execAsRoot,
  filesToWrite,
  lastLine,
  runAsRoot,
  shellQuote,
  stagingDir,
  writeFilesAsRoot,
} from './os.js';
import {
  BUNDLE_BIN_DIR,
  OPENRC_PATHS,
  SYSTEMD_UNIT_PATHS,
  containerdOpenrcScript,
  containerdSystemdUnit,
  dockerOpenrcConf,
  dockerOpenrcScript,
  dockerSystemdDropIn,
  dockerSystemdUnit,
  parseEngineEnv,
} from './units.js';
import { BUNDLE_FILES } from '../src/engine/bundle.js';

export const TMACHINE_STATE_DIR = '/var/lib/tmachine';
export const BUNDLE_DIR = `${TMACHINE_STATE_DIR}/bundles`;
/**
 * Name, size, mtime and inode of each installed bundle binary, recorded at install. Any
 * replacement or removal changes it; comparing it is instant, where re-hashing ~200 MB of
 * binaries on every run took a second or more.
 */
const ENGINE_MANIFEST = `${TMACHINE_STATE_DIR}/engine.manifest`;
const ENGINE_BUNDLE_MARK = `${TMACHINE_STATE_DIR}/engine.bundle`;
/** Hash of the engine's configuration when the engine was last (re)started with it. */
const ENGINE_APPLIED_MARK = `${TMACHINE_STATE_DIR}/engine.applied`;

/** What a static Docker release tarball holds (SPEC §4); all of it goes to /usr/local/bin. */
/** The binaries of the bundle, by name (the bundle's one file list is BUNDLE_FILES). */
export const BUNDLE_BINARIES = BUNDLE_FILES.map((f) => f.slice('docker/'.length));

const DEFAULT_INSTALL_URL = 'https://get.docker.com';
const READY_TIMEOUT_MS = 60_000;
const PROBE_TIMEOUT_MS = 10_000;
const INSTALL_TIMEOUT_MS = 15 * 60_000;

export interface EngineBundle {
  /** Local path of the tarball (already checked against sha256 by the caller). */
  path: string;
  sha256: string;
  /** Engine version inside the bundle ("20.10.24"). */
  version: string;
}

export interface ProvisionCertificates {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

export interface ProvisionContext extends HostShell {
  host: RemoteHost;
  machineName: string;
  /** detectHost()'s answer for this host. */
  os: HostInfo;
  /** The SSH login user (added to the docker group). */
  sshUser: string;
  engine: EngineOptions;
  /** Required when engine.install is "bundle". */
  bundle?: EngineBundle;
  certs: ProvisionCertificates;
  /** --engine-registry-ca, with the CA files already read. */
  registryCas?: Array<{ registry: string; caPem: string }>;
  /** Swarm's VXLAN port when --data-path-port moved it off 4789. */
  dataPathPort?: number;
  /** The SSH port, so the firewall keeps it open when it is not 22. */
  sshPort?: number;
  /**
   * Resolves when the engine answers over TLS with the client certificate (and with its
   * version), rejects otherwise. See the file comment.
   */
  probe?: () => Promise<string>;
  /** The driver's fast file path (the docker driver's archive API), used instead of SFTP for the bundle. */
  fastUpload?: (localPath: string, remotePath: string) => Promise<void>;
  /** One upload per cluster: other hosts of the command fetch the bundle from a peer (src/machine/bundle-relay.ts). */
  bundleRelay?: BundleRelay;
}

/**
 * Hosts of one command share one upload from the workstation: the first host that needs the
 * bundle uploads it (the seed), the others fetch it from the seed over the cluster network.
 */
export interface BundleRelay {
  /**
   * 'upload': upload it yourself (the first caller is the seed and must then call seeded()
   * or seedFailed()); 'fetched': the bundle is at `staged`, copied from the seed.
   */
  obtain(context: ProvisionContext, staged: string, report: (m: string) => void): Promise<'upload' | 'fetched'>;
  /** The seed has the bundle in place; waiting hosts may fetch it now. */
  seeded(context: ProvisionContext): void;
  seedFailed(): void;
}

/** The steps that make one host's engine what the context describes, in order. */
export function provisionPlan(context: ProvisionContext): Step<ProvisionContext>[] {
  const install: Step<ProvisionContext>[] = {
    bundle: [prerequisitesStep, bundleUploadStep, bundleInstallStep],
    script: [scriptInstallStep],
    package: [packageInstallStep],
    none: [verifyEngineStep],
  }[context.engine.install];
  const steps: Step<ProvisionContext>[] = [
    // Before anything changes on the host: a conflict is reported with the host as it was.
    foreignListenersStep,
    ...install,
    dockerGroupStep,
    firewallStep<ProvisionContext>(),
    serviceFilesStep,
    tlsFilesStep,
    daemonConfigStep,
    ...((context.registryCas ?? []).length > 0 ? [registryCasStep] : []),
    engineApplyStep,
    engineReadyStep,
  ];
  return steps.map(namedFailures);
}

/** A failing step says which step on which host failed, and why. */
function namedFailures(step: Step<ProvisionContext>): Step<ProvisionContext> {
  const wrap = async <T>(context: ProvisionContext, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new TmachineError(`step "${step.title}" failed on ${context.host.label}: ${why}`, {
        hint: (error instanceof TmachineError && error.hint) || `run \`tmachine provision ${context.machineName} --debug\` to see the remote commands`,
        cause: error,
      });
    }
  };
  return {
    id: step.id,
    title: step.title,
    needsRun: (context) => wrap(context, () => step.needsRun(context)),
    run: (context, report) => wrap(context, () => step.run(context, report)),
  };
}

// ---------------------------------------------------------------------------------------------
// Getting the binaries onto the host.

const PACKAGE_INSTALL: Record<HostInfo['family'], (pkgs: string[]) => string> = {
  debian: (p) => `DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${p.join(' ')}`,
  rhel: (p) => `if command -v dnf >/dev/null 2>&1; then dnf install -y ${p.join(' ')}; else yum install -y ${p.join(' ')}; fi`,
  suse: (p) => `zypper --non-interactive install ${p.join(' ')}`,
  alpine: (p) => `apk add --no-cache ${p.join(' ')}`,
};

/** dockerd needs iptables on the host, and static bundles do not carry it. */
const prerequisitesStep: Step<ProvisionContext> = {
  id: 'engine-prerequisites',
  title: 'check the engine prerequisites (iptables, tar, gzip)',
  async needsRun(context) {
    return (await execAsRoot(context, 'for c in iptables tar gzip; do command -v $c >/dev/null 2>&1 || exit 1; done')).code !== 0;
  },
  async run(context, report) {
    report('installing iptables with the package manager');
    const result = await execAsRoot(context, PACKAGE_INSTALL[context.os.family](['iptables', 'tar', 'gzip']), { timeoutMs: INSTALL_TIMEOUT_MS });
    if (result.code !== 0) {
      throw new TmachineError(`${context.host.label} has no iptables, and installing it failed: ${lastLine(result.stderr)}`, {
        hint: 'the engine needs iptables; install it on the host (the host may have no package mirror)',
      });
    }
  },
};

function requireBundle(context: ProvisionContext): EngineBundle {
  if (!context.bundle) throw new TmachineError('engine install mode "bundle" needs a bundle', { hint: 'pass --engine-bundle PATH|URL' });
  if (!/^[0-9a-f]{64}$/.test(context.bundle.sha256)) throw new TmachineError(`bundle sha256 "${context.bundle.sha256}" is not a SHA-256`);
  return context.bundle;
}

export const bundlePath = (bundle: EngineBundle) => `${BUNDLE_DIR}/${bundle.sha256}.tgz`;

const binaryFingerprint = `stat -c '%n %s %Y %i' ${BUNDLE_BINARIES.map((b) => `${BUNDLE_BIN_DIR}/${b}`).join(' ')}`;

/** Zero exit when the binaries in /usr/local/bin are the ones this bundle installed. */
function bundleInstalledCheck(bundle: EngineBundle): string {
  return `[ "$(cat ${ENGINE_BUNDLE_MARK} 2>/dev/null)" = ${bundle.sha256} ] && [ "$(${binaryFingerprint} 2>/dev/null)" = "$(cat ${ENGINE_MANIFEST} 2>/dev/null)" ]`;
}

const bundleUploadStep: Step<ProvisionContext> = {
  id: 'engine-bundle-upload',
  title: 'upload the engine bundle',
  async needsRun(context) {
    const bundle = requireBundle(context);
    const script = `${bundleInstalledCheck(bundle)} && exit 0; [ "$(sha256sum < ${bundlePath(bundle)} 2>/dev/null | cut -c1-64)" = ${bundle.sha256} ]`;
    return (await execAsRoot(context, script)).code !== 0;
  },
  async run(context, report) {
    const bundle = requireBundle(context);
    const staging = stagingDir(context.os);
    const staged = `${staging}/${bundle.sha256}.tgz`;
    await context.host.exec(`mkdir -p -m 700 ${shellQuote(staging)}`);
    // The driver's fast path is local; the relay saves uploads over a slow uplink.
    const relay = context.fastUpload ? undefined : context.bundleRelay;
    const how = relay ? await relay.obtain(context, staged, report) : 'upload';
    try {
      if (how === 'upload') await uploadBundle(context, bundle, staged, report);
      report('verifying the bundle on the host');
      // Checked before it enters /var/lib/tmachine/bundles, so that directory holds only good bundles.
      const script = [
        'set -e',
        `if [ "$(sha256sum < ${shellQuote(staged)} | cut -c1-64)" != ${bundle.sha256} ]; then rm -f ${shellQuote(staged)}; echo "the uploaded bundle does not match its sha256 ${bundle.sha256}" >&2; exit 3; fi`,
        `mkdir -p ${BUNDLE_DIR}`,
        `mv -f ${shellQuote(staged)} ${bundlePath(bundle)}.part`,
        `chown 0:0 ${bundlePath(bundle)}.part && chmod 644 ${bundlePath(bundle)}.part`,
        `mv -f ${bundlePath(bundle)}.part ${bundlePath(bundle)}`,
      ].join('\n');
      await runAsRoot(context, script, 'moving the bundle into place');
    } catch (error) {
      if (how === 'upload') relay?.seedFailed();
      throw error;
    }
    if (how === 'upload') relay?.seeded(context);
  },
};

/** The login user's staging directory on the host (uploads land there before they are checked). */
export function stagingDirOf(context: ProvisionContext): string {
  return stagingDir(context.os);
}

async function uploadBundle(context: ProvisionContext, bundle: EngineBundle, staged: string, report: (m: string) => void): Promise<void> {
  if (context.fastUpload) {
    report(`copying engine ${bundle.version} bundle through the driver`);
    await context.fastUpload(bundle.path, staged);
    return;
  }
  let lastPercent = -1;
  await context.host.upload(bundle.path, staged, {
    mode: 0o600,
    onProgress: (done, total) => {
      const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
      if (percent >= lastPercent + 10) {
        lastPercent = percent;
        report(`uploading engine ${bundle.version} bundle: ${percent}%`);
      }
    },
  });
}

const bundleInstallStep: Step<ProvisionContext> = {
  id: 'engine-binaries',
  title: 'install the engine binaries',
  async needsRun(context) {
    return (await execAsRoot(context, bundleInstalledCheck(requireBundle(context)))).code !== 0;
  },
  async run(context, report) {
    const bundle = requireBundle(context);
    report(`installing engine ${bundle.version} into ${BUNDLE_BIN_DIR}`);
    const names = BUNDLE_BINARIES.join(' ');
    const script = [
      'set -e',
      `tmp=$(mktemp -d ${TMACHINE_STATE_DIR}/unpack.XXXXXX)`,
      'trap \'rm -rf "$tmp"\' EXIT',
      `tar -xzf ${bundlePath(bundle)} -C "$tmp"`,
      `for b in ${names}; do [ -f "$tmp/docker/$b" ] || { echo "the bundle has no docker/$b" >&2; exit 3; }; done`,
      // Rename into place: a running binary (containerd, dockerd) cannot be overwritten, and
      // a move on the same filesystem writes nothing (the unpacked ~200 MB are not copied).
      `for b in ${names}; do chmod 755 "$tmp/docker/$b"; mv -f "$tmp/docker/$b" ${BUNDLE_BIN_DIR}/.$b.tmachine-new 2>/dev/null || cp "$tmp/docker/$b" ${BUNDLE_BIN_DIR}/.$b.tmachine-new; mv -f ${BUNDLE_BIN_DIR}/.$b.tmachine-new ${BUNDLE_BIN_DIR}/$b; done`,
      `${binaryFingerprint} > ${ENGINE_MANIFEST}.new`,
      `mv -f ${ENGINE_MANIFEST}.new ${ENGINE_MANIFEST}`,
      `echo ${bundle.sha256} > ${ENGINE_BUNDLE_MARK}`,
      `${BUNDLE_BIN_DIR}/dockerd --version`,
    ].join('\n');
    const version = (await runAsRoot(context, script, 'unpacking the bundle')).trim();
    if (!version.includes(bundle.version)) {
      throw new TmachineError(`the bundle claims engine ${bundle.version}, but its dockerd says "${version}"`, {
        hint: 'check --engine-version against the bundle, or rebuild the bundle',
      });
    }
    report(version);
  },
};

/**
 * An install URL may carry a password (https://user:password@artifacts.example/...): the
 * script or the download may echo it back on failure, where it is no longer shaped as a URL.
 */
function registerUrlPassword(url: string): void {
  let password = '';
  try {
    password = new URL(url).password;
  } catch {
    return;
  }
  if (!password) return;
  registerSecret(password);
  try {
    registerSecret(decodeURIComponent(password));
  } catch {
    // A malformed escape: the raw form is registered already.
  }
}

/** Zero exit when dockerd is installed (and is the wanted version, when one is given). */
function dockerdPresentCheck(version: string | undefined): string {
  const present = 'command -v dockerd >/dev/null 2>&1';
  return version ? `${present} && dockerd --version | grep -qF -- ${shellQuote(version)}` : present;
}

const scriptInstallStep: Step<ProvisionContext> = {
  id: 'engine-script',
  title: 'install the engine with the convenience script',
  async needsRun(context) {
    return (await execAsRoot(context, dockerdPresentCheck(context.engine.version))).code !== 0;
  },
  async run(context, report) {
    const url = context.engine.installUrl ?? DEFAULT_INSTALL_URL;
    registerUrlPassword(url);
    report(`fetching ${url}`);
    const file = `${TMACHINE_STATE_DIR}/install-docker.sh`;
    const fetch = [
      'set -e',
      `mkdir -p ${TMACHINE_STATE_DIR}`,
      `if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o ${file} ${shellQuote(url)}; ` +
        `elif command -v wget >/dev/null 2>&1; then wget -q -O ${file} ${shellQuote(url)}; ` +
        `else echo "neither curl nor wget is installed" >&2; exit 3; fi`,
    ].join('\n');
    await runAsRoot(context, fetch, `downloading ${url}`, { timeoutMs: INSTALL_TIMEOUT_MS });
    report(`running the install script${context.engine.version ? ` for engine ${context.engine.version}` : ''}`);
    const env = context.engine.version ? `VERSION=${shellQuote(context.engine.version)} ` : '';
    await runAsRoot(context, `${env}sh ${file}`, 'the engine install script', { timeoutMs: INSTALL_TIMEOUT_MS });
    await verifyDockerd(context);
  },
};

const DISTRO_PACKAGES: Record<HostInfo['family'], string> = {
  debian: 'docker.io',
  rhel: 'moby-engine',
  suse: 'docker',
  alpine: 'docker',
};

const packageInstallStep: Step<ProvisionContext> = {
  id: 'engine-package',
  title: "install the distribution's engine package",
  async needsRun(context) {
    return (await execAsRoot(context, dockerdPresentCheck(undefined))).code !== 0;
  },
  async run(context, report) {
    const family = context.os.family;
    report(`installing ${DISTRO_PACKAGES[family]} on ${context.os.prettyName}`);
    // Fedora calls it moby-engine, RHEL-likes with Docker's repo call it docker(-ce): try both.
    const script = family === 'rhel'
      ? `${PACKAGE_INSTALL.rhel(['moby-engine'])} || ${PACKAGE_INSTALL.rhel(['docker'])}`
      : PACKAGE_INSTALL[family]([DISTRO_PACKAGES[family]]);
    await runAsRoot(context, script, `installing ${DISTRO_PACKAGES[family]}`, { timeoutMs: INSTALL_TIMEOUT_MS });
    await verifyDockerd(context);
  },
};

/**
 * An engine set up by hand to listen elsewhere (see engine-listeners.ts): reported in one line,
 * or moved aside with --engine-migrate-tls so that only tmachine's TLS port remains.
 */
const foreignListenersStep: Step<ProvisionContext> = {
  id: 'engine-listeners',
  title: "check the engine's existing listeners",
  async needsRun(context) {
    return foreignListeners((await execAsRoot(context, LISTENER_FILES_SCRIPT)).stdout).length > 0;
  },
  async run(context, report) {
    const found = foreignListeners((await execAsRoot(context, LISTENER_FILES_SCRIPT)).stdout);
    if (found.length === 0) return;
    const port = context.engine.port ?? DEFAULT_ENGINE_PORT;
    if (!context.engine.migrateTls) {
      throw new TmachineError(`the engine is set up outside tmachine to listen on ${describeListeners(found)}`, {
        hint: `pass --engine-migrate-tls to move that aside (kept as FILE${MOVED_SUFFIX}) and serve the engine over TLS on ${port} only`,
      });
    }
    // The engine must restart with tmachine's configuration even if tmachine's own files are unchanged.
    await runAsRoot(context, `${migrateScript(found)}\nrm -f ${ENGINE_APPLIED_MARK}`, 'moving the engine configuration aside');
    report(`moved aside: ${found.map((l) => l.file).join(', ')} (kept as *${MOVED_SUFFIX})`);
  },
};

/** --engine-install none: the engine must already be there; needsRun does the checking. */
const verifyEngineStep: Step<ProvisionContext> = {
  id: 'engine-verify',
  title: 'verify the installed engine',
  async needsRun(context) {
    return (await execAsRoot(context, dockerdPresentCheck(context.engine.version))).code !== 0;
  },
  async run(context) {
    await verifyDockerd(context);
  },
};

async function verifyDockerd(context: ProvisionContext): Promise<void> {
  const result = await execAsRoot(context, 'dockerd --version');
  if (result.code !== 0) {
    throw new TmachineError(`no Docker engine on ${context.host.label} (dockerd not found)`, {
      hint: 'install one, or use --engine-install bundle|package|script',
    });
  }
  const wanted = context.engine.version;
  if (wanted && !result.stdout.includes(wanted)) {
    throw new TmachineError(`${context.host.label} runs "${result.stdout.trim()}", not engine ${wanted}`, {
      hint: 'drop --engine-version, or let tmachine install it with --engine-install bundle',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Configuring and starting it.

/** The socket belongs to group docker; it must exist before dockerd first starts (testhost.md §4). */
const dockerGroupStep: Step<ProvisionContext> = {
  id: 'docker-group',
  title: 'add the SSH user to the docker group',
  async needsRun(context) {
    const member = context.sshUser === 'root' ? '' : ` && id -nG ${shellQuote(context.sshUser)} | tr ' ' '\\n' | grep -qx docker`;
    return (await execAsRoot(context, `getent group docker >/dev/null 2>&1${member}`)).code !== 0;
  },
  async run(context) {
    const user = shellQuote(context.sshUser);
    const script = [
      'set -e',
      // shadow's groupadd/usermod, or busybox's addgroup on Alpine.
      'getent group docker >/dev/null 2>&1 || groupadd -f docker 2>/dev/null || addgroup -S docker',
      ...(context.sshUser === 'root' ? [] : [`usermod -aG docker ${user} 2>/dev/null || addgroup ${user} docker`]),
    ].join('\n');
    await runAsRoot(context, script, 'creating the docker group');
  },
};

/** The service definitions this host's engine runs under (see units.ts). */
async function serviceFiles(context: ProvisionContext): Promise<RemoteFile[]> {
  const env = parseEngineEnv(context.engine.env);
  const bundle = context.engine.install === 'bundle';
  if (context.os.init === 'openrc') {
    const conf: RemoteFile = { path: OPENRC_PATHS.dockerConf, content: dockerOpenrcConf(env), mode: 0o644 };
    if (!bundle) return [conf];
    return [
      { path: OPENRC_PATHS.containerd, content: containerdOpenrcScript(), mode: 0o755 },
      { path: OPENRC_PATHS.docker, content: dockerOpenrcScript(), mode: 0o755 },
      conf,
    ];
  }
  if (bundle) {
    return [
      { path: SYSTEMD_UNIT_PATHS.containerd, content: containerdSystemdUnit(), mode: 0o644 },
      { path: SYSTEMD_UNIT_PATHS.docker, content: dockerSystemdUnit({ env }), mode: 0o644 },
    ];
  }
  const found = await execAsRoot(context, 'command -v dockerd; systemctl cat containerd.service >/dev/null 2>&1 && echo containerd-unit');
  const [dockerdPath = '', containerdLine = ''] = found.stdout.split('\n').map((l) => l.trim());
  if (!dockerdPath.startsWith('/')) throw new TmachineError(`no dockerd on ${context.host.label}`, { hint: 'the engine install did not finish; run provision again' });
  const dropIn = dockerSystemdDropIn({ env, dockerdPath, systemContainerd: containerdLine === 'containerd-unit' });
  return [{ path: SYSTEMD_UNIT_PATHS.dockerDropIn, content: dropIn, mode: 0o644 }];
}

function tlsFiles(context: ProvisionContext): RemoteFile[] {
  return [
    { path: DEFAULT_TLS_PATHS.caPath, content: context.certs.caPem, mode: 0o644 },
    { path: DEFAULT_TLS_PATHS.certPath, content: context.certs.serverCertPem, mode: 0o644 },
    { path: DEFAULT_TLS_PATHS.keyPath, content: context.certs.serverKeyPem, mode: 0o600 },
  ];
}

function daemonJsonFile(context: ProvisionContext): RemoteFile {
  return { path: DAEMON_JSON_PATH, content: renderDaemonJson(buildDaemonConfig(context.engine, DEFAULT_TLS_PATHS)), mode: 0o644 };
}

/** Docker looks a registry's CA up at /etc/docker/certs.d/HOST:PORT/ca.crt on every pull: no restart. */
function registryCaFiles(context: ProvisionContext): RemoteFile[] {
  return (context.registryCas ?? []).map(({ registry, caPem }) => {
    if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(registry)) {
      throw new TmachineError(`--engine-registry-ca ${registry}: expected HOST:PORT`, { hint: 'for example registry.example.org:5000=./ca.crt' });
    }
    return { path: `/etc/docker/certs.d/${registry}/ca.crt`, content: caPem, mode: 0o644 };
  });
}

function fileStep(id: string, title: string, files: (context: ProvisionContext) => RemoteFile[] | Promise<RemoteFile[]>): Step<ProvisionContext> {
  return {
    id,
    title,
    async needsRun(context) {
      return (await filesToWrite(context, await files(context))).length > 0;
    },
    async run(context, report) {
      const written = await writeFilesAsRoot(context, await filesToWrite(context, await files(context)));
      report(`wrote ${written.join(', ')}`);
    },
  };
}

const serviceFilesStep = fileStep('engine-units', 'write the engine service definitions', serviceFiles);
const tlsFilesStep = fileStep('engine-tls', `write the engine's TLS certificates to ${DOCKER_TLS_DIR}`, tlsFiles);
const daemonConfigStep = fileStep('daemon-config', `write ${DAEMON_JSON_PATH}`, (context) => [daemonJsonFile(context)]);
const registryCasStep = fileStep('registry-cas', 'trust the private registries\u2019 CAs', registryCaFiles);

/**
 * The files whose change needs an engine restart. Their combined hash is recorded once the
 * engine runs with them, so an interrupted run (files written, no restart) is finished by the
 * next one instead of being mistaken for "nothing changed".
 */
function restartInputs(context: ProvisionContext): string[] {
  const units = context.os.init === 'openrc'
    ? context.engine.install === 'bundle' ? [OPENRC_PATHS.containerd, OPENRC_PATHS.docker, OPENRC_PATHS.dockerConf] : [OPENRC_PATHS.dockerConf]
    : context.engine.install === 'bundle' ? [SYSTEMD_UNIT_PATHS.containerd, SYSTEMD_UNIT_PATHS.docker] : [SYSTEMD_UNIT_PATHS.dockerDropIn];
  const binaries = context.engine.install === 'bundle' ? [ENGINE_MANIFEST] : [];
  return [...units, ...binaries, DAEMON_JSON_PATH, DEFAULT_TLS_PATHS.caPath, DEFAULT_TLS_PATHS.certPath, DEFAULT_TLS_PATHS.keyPath];
}

function configHashScript(context: ProvisionContext): string {
  return `cur=$(cat ${restartInputs(context).join(' ')} 2>/dev/null | sha256sum | cut -c1-64); applied=$(cat ${ENGINE_APPLIED_MARK} 2>/dev/null || true)`;
}

function serviceChecks(context: ProvisionContext): string {
  return context.os.init === 'openrc'
    ? 'rc-update show default 2>/dev/null | grep -qw docker && rc-service docker status >/dev/null 2>&1'
    : 'systemctl is-enabled --quiet docker.service && systemctl is-active --quiet docker.service';
}

const engineApplyStep: Step<ProvisionContext> = {
  id: 'engine-start',
  title: 'start the engine with its configuration',
  async needsRun(context) {
    const script = `${configHashScript(context)}; [ "$cur" = "$applied" ] && ${serviceChecks(context)}`;
    return (await execAsRoot(context, script)).code !== 0;
  },
  async run(context, report) {
    const bundle = context.engine.install === 'bundle';
    const services = bundle ? 'containerd docker' : 'docker';
    const start = context.os.init === 'openrc'
      ? [
          ...services.split(' ').map((s) => `rc-update add ${s} default >/dev/null`),
          `if [ "$cur" != "$applied" ]; then action=restart; else action=start; fi`,
          ...services.split(' ').map((s) => `rc-service ${s} $action`),
        ]
      : [
          'systemctl daemon-reload',
          `systemctl enable --quiet ${services}`,
          // Restart only when the configuration changed; a stopped engine with an unchanged one just starts.
          `if [ "$cur" != "$applied" ]; then systemctl restart ${services}; else systemctl start ${services}; fi`,
        ];
    const script = ['set -e', configHashScript(context), ...start, `mkdir -p ${TMACHINE_STATE_DIR}`, `echo "$cur" > ${ENGINE_APPLIED_MARK}`].join('\n');
    report(`starting ${services}`);
    const result = await execAsRoot(context, script, { timeoutMs: 5 * 60_000 });
    if (result.code !== 0) {
      const journal = context.os.init === 'systemd'
        ? lastLine((await execAsRoot(context, 'journalctl -u docker.service -n 5 --no-pager -o cat 2>/dev/null')).stdout)
        : '';
      throw new TmachineError(`the engine did not start on ${context.host.label}: ${journal || lastLine(result.stderr) || `exit code ${result.code}`}`, {
        hint: `see \`tmachine ssh ${context.machineName} sudo journalctl -u docker\``,
      });
    }
  },
};

/** Without a probe: dockerd answers on its socket and something listens on the TLS port. */
async function onHostCheck(context: ProvisionContext): Promise<string> {
  const port = context.engine.port ?? DEFAULT_ENGINE_PORT;
  const script = [
    'set -e',
    `docker -H unix:///var/run/docker.sock version --format '{{.Server.Version}}'`,
    `if command -v ss >/dev/null 2>&1; then ss -Hltn "sport = :${port}" | grep -q .; else netstat -ltn | grep -q ":${port} "; fi`,
  ].join('\n');
  const result = await execAsRoot(context, script);
  if (result.code !== 0) throw new Error(lastLine(result.stderr) || `nothing listens on port ${port}`);
  return result.stdout.trim();
}

/** One probe attempt, bounded: a firewall that drops packets must not hang the plan. */
async function probeOnce(context: ProvisionContext): Promise<string> {
  const attempt = (context.probe ?? (() => onHostCheck(context)))();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const engineReadyStep: Step<ProvisionContext> = {
  id: 'engine-ready',
  title: 'wait for the engine to answer over TLS',
  async needsRun(context) {
    return probeOnce(context).then(() => false, () => true);
  },
  async run(context, report) {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = '';
    for (;;) {
      try {
        const version = await probeOnce(context);
        report(`engine ${version} answers`);
        return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
      }
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const port = context.engine.port ?? DEFAULT_ENGINE_PORT;
    throw new TmachineError(`the engine on ${context.host.label} did not answer over TLS on port ${port} within ${READY_TIMEOUT_MS / 1000} s: ${lastError}`, {
      hint: `check the address and firewalls, and \`tmachine ssh ${context.machineName} sudo journalctl -u docker\``,
    });
  },
};
