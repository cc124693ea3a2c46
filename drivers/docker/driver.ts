/**
 * The docker driver: a host is a container running systemd + sshd on a local Docker engine,
 * on a user-defined network with a fixed address, /var/lib/docker on its own volume.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import {
  backoff,
  debug,
  DriverError,
  serialized,
  waitForSsh,
  withDeadline,
  type Driver,
  type DriverContext,
  type DriverImplementation,
  type HostState,
  type ResourceEntry,
} from '../kit/index.js';
import { DEFAULT_HOST_IMAGE, type DockerOptions, type DockerState } from './definition.js';
import { ensureHostImage } from './host-image.js';
import { ensureLocalEngine, engineFromEndpoint, removeCgroupLeftovers } from './local-engine.js';
import { hostContainerSpec, isPrivilegedUnsupported, MACHINE_LABEL } from './container-spec.js';
import { allocateAddress, ensureNetwork, type HostNetwork } from './network.js';

const HOST_USER = 'tmachine';
const SSH_WAIT_MS = 90_000;

type Context = DriverContext<DockerOptions, DockerState>;

export const implementation: DriverImplementation<DockerOptions, DockerState> = { open: openDockerDriver };

export function openDockerDriver(context: Context): Driver {
  const { state, options } = context;
  const name = context.machineName;
  let engine: Docker | undefined;

  /** The engine recorded at create; for a new machine the one the flags or environment name. */
  const docker = async (startIfMissing = false): Promise<Docker> => {
    if (engine) return engine;
    if (state.endpoint) {
      engine = engineFromEndpoint(state.endpoint);
      return engine;
    }
    if (options['docker-host']) {
      engine = engineFromEndpoint(options['docker-host']);
      state.endpoint = options['docker-host'];
      return engine;
    }
    if (process.env['DOCKER_MACHINE_NAME']) {
      // After `eval "$(tmachine env NAME)"`, DOCKER_HOST points at a machine, not at the
      // engine that runs the host containers: hosts must not be nested inside a machine.
      for (const v of ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete process.env[v];
    }
    const local = await ensureLocalEngine({ report: context.report, start: startIfMissing && options['docker-start-engine'] });
    if (local.startedByUs) context.report(`started a local Docker engine at ${local.endpoint}`);
    engine = local.docker;
    state.endpoint = local.endpoint;
    return engine;
  };

  const containerId = (): string => {
    if (!state.containerId) throw new DriverError('not-found', `machine "${name}" has no container recorded`, { hint: `remove it with \`tmachine rm -f ${name}\`` });
    return state.containerId;
  };
  const container = async () => (await docker()).getContainer(containerId());
  const address = (): string => {
    if (!state.ip) throw new DriverError('not-found', `machine "${name}" has no address recorded`);
    return state.ip;
  };

  return {
    async preCreateCheck() {
      const d = await docker(true);
      const image = options['docker-image'];
      if (image !== DEFAULT_HOST_IMAGE && !(await d.getImage(image).inspect().then(() => true, () => false))) {
        // Only tmachine's own image is built; a custom one must exist (it is never pulled).
        throw new DriverError('invalid-input', `host image "${image}" does not exist on the engine at ${state.endpoint ?? 'the local engine'}`, {
          hint: `build or \`docker load\` it first, or leave out --docker-image to use ${DEFAULT_HOST_IMAGE}`,
        });
      }
    },

    async create() {
      const d = await docker(true);
      const image = options['docker-image'];
      await ensureHostImage(d, image, { report: context.report });
      const network = await ensureNetwork(d, options['docker-network'], options['docker-subnet'], state.endpoint?.startsWith('unix://') ?? false, options['docker-network-internal']);
      state.network = network.name;
      await context.saveState();
      const volume = `${name}-var-lib-docker`;
      // Recorded before it is made (its name is known): a process killed in between leaves
      // nothing the undo log does not name.
      await context.undo.record({ kind: 'volume', id: volume, label: `volume ${volume}` });
      await d.createVolume({ Name: volume, Labels: { [MACHINE_LABEL]: name } });
      state.volume = volume;
      await context.saveState();

      // Addresses are fixed at create so a restarted host keeps its certificates and swarm
      // identity; allocation and start are serialized so parallel creates do not collide.
      state.ip = await serialized(`address:${network.id}`, () =>
        startHostContainer(d, network, {
          name,
          image,
          volume,
          mode: options['docker-privileged'],
          engine: state.endpoint ?? '',
          fixedIp: options['docker-ip'],
          onCreating: async () => context.undo.record({ kind: 'container', id: name, label: `container ${name}` }),
          onNotCreated: async () => context.undo.forget('container', name),
          onCreated: async (id) => {
            if (id) {
              await context.undo.forget('container', name);
              state.containerId = id;
              await context.undo.record({ kind: 'container', id, label: `container ${name}` });
            } else if (state.containerId) {
              await context.undo.forget('container', state.containerId);
              delete state.containerId;
            }
            await context.saveState();
          },
        }),
      );
      await context.saveState();

      // The machine's key goes in through the engine, before SSH is ever used.
      await execInContainer(d, containerId(), [
        'sh',
        '-c',
        `install -d -m 700 -o ${HOST_USER} -g ${HOST_USER} /home/${HOST_USER}/.ssh && printf '%s\\n' "$KEY" > /home/${HOST_USER}/.ssh/authorized_keys && chown ${HOST_USER}:${HOST_USER} /home/${HOST_USER}/.ssh/authorized_keys && chmod 600 /home/${HOST_USER}/.ssh/authorized_keys`,
      ], [`KEY=${context.sshPublicKey}`]);
      context.report('waiting for systemd to finish booting');
      await waitBooted(d, containerId(), name, context.signal);
      await waitForSsh(name, address(), 22, SSH_WAIT_MS, context.signal);
    },

    async removeResource(entry: ResourceEntry) {
      const d = await docker().catch(() => undefined);
      if (!d) return;
      if (entry.kind === 'container') {
        // An entry by name (recorded before the create call) removes only a container that
        // carries this machine's label: the name may belong to someone else's container.
        if (!/^[0-9a-f]{64}$/.test(entry.id)) {
          const info = await d.getContainer(entry.id).inspect().catch(() => undefined);
          if (!info || info.Config.Labels?.[MACHINE_LABEL] !== name) return;
          entry = { ...entry, id: info.Id };
        }
        // With cgroupns=host the host's own engine leaves /docker/<id> cgroups in this
        // machine's tree; learn their ids while the host still runs, remove them after.
        const nested = await containerIdsInside(d, entry.id).catch(() => [] as string[]);
        await d.getContainer(entry.id).remove({ force: true, v: true }).catch(ignoreNotFound);
        if (state.endpoint?.startsWith('unix://')) await removeCgroupLeftovers([...nested, entry.id]);
      } else if (entry.kind === 'volume') {
        // A just-removed container may hold the volume for a moment.
        for (let attempt = 0; ; attempt++) {
          try {
            await d.getVolume(entry.id).remove();
            return;
          } catch (error) {
            const status = (error as { statusCode?: number }).statusCode;
            if (status === 404) return;
            if (status !== 409 || attempt >= 20) throw error;
            await backoff(250);
          }
        }
      }
    },

    async start() {
      await (await container()).start().catch(ignoreNotModified);
      await waitForSsh(name, address(), 22, SSH_WAIT_MS, context.signal);
    },
    async stop() {
      await (await container()).stop({ t: 30 }).catch(ignoreNotModified);
    },
    async restart() {
      await (await container()).restart({ t: 30 });
      await waitForSsh(name, address(), 22, SSH_WAIT_MS, context.signal);
    },
    async kill() {
      await (await container()).kill().catch(ignoreNotModified);
    },

    async state(): Promise<HostState> {
      try {
        const info = await (await container()).inspect();
        switch (info.State.Status) {
          case 'running':
            return 'running';
          case 'paused':
            return 'paused';
          case 'restarting':
          case 'created':
            return 'starting';
          case 'removing':
            return 'stopping';
          case 'exited':
            return 'stopped';
          default:
            return 'error';
        }
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return 'not-found';
        throw error;
      }
    },

    async addresses() {
      return { public: address(), private: address() };
    },

    async sshTarget() {
      return { host: address(), port: 22, user: HOST_USER };
    },

    /** The host keys straight from the container's files, read through the engine. */
    async publishedHostKeys() {
      const result = await execIn(await docker(), containerId(), ['sh', '-c', 'cat /etc/ssh/ssh_host_*_key.pub']);
      const keys = result.output.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^(ssh-|ecdsa-)/.test(l));
      return keys.length > 0 ? keys : undefined;
    },

    /** The engine's archive API: no SSH, no SFTP, no encryption on a local socket. */
    async putFile(localPath: string, remotePath: string, putOptions?: { mode?: number }) {
      const pack = tar.pack();
      const size = fs.statSync(localPath).size;
      const entry = pack.entry({ name: path.posix.basename(remotePath), size, mode: putOptions?.mode ?? 0o600 }, (error) => {
        if (error) pack.destroy(error);
        else pack.finalize();
      });
      fs.createReadStream(localPath).on('error', (error) => pack.destroy(error)).pipe(entry);
      await (await container()).putArchive(pack as unknown as NodeJS.ReadableStream, { path: path.posix.dirname(remotePath) });
    },
  };
}

type PrivilegedMode = DockerOptions['docker-privileged'];

/** Engine endpoints that refused --privileged once in this process: not asked again. */
const refusesPrivileged = new Set<string>();

interface StartOptions {
  name: string;
  image: string;
  volume: string;
  mode: PrivilegedMode;
  /** The engine's endpoint, to remember a --privileged refusal by. */
  engine: string;
  fixedIp: string | undefined;
  /** Called with each container id as it is made (undefined once it is removed again). */
  onCreated(id: string | undefined): Promise<void>;
  /** Before the create call: the container's name goes into the undo log. */
  onCreating(): Promise<void>;
  /** The create call failed: nothing by that name is ours (it may be someone else's). */
  onNotCreated(): Promise<void>;
}

/**
 * Creates and starts the host container on a fixed address: --privileged first (auto),
 * the explicit capability list when the engine refuses it, the next free address when the
 * chosen one was taken meanwhile. Returns the address.
 */
async function startHostContainer(d: Docker, network: HostNetwork, o: StartOptions): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const ip = o.fixedIp ?? (await allocateAddress(d, network));
    const spec = (privileged: boolean) =>
      hostContainerSpec({ name: o.name, image: o.image, network: network.id, ip, volume: o.volume, labels: { 'tmachine.machine': o.name }, privileged });
    const run = async (privileged: boolean) => {
      await o.onCreating();
      const created = await d.createContainer(spec(privileged)).catch(async (error: unknown) => {
        await o.onNotCreated();
        throw error;
      });
      await o.onCreated(created.id);
      try {
        await created.start();
      } catch (error) {
        await created.remove({ force: true }).catch(() => undefined);
        await o.onCreated(undefined);
        throw error;
      }
    };
    try {
      const tryPrivileged = o.mode === 'always' || (o.mode === 'auto' && !refusesPrivileged.has(o.engine));
      try {
        await run(tryPrivileged);
      } catch (error) {
        if (o.mode !== 'auto' || !tryPrivileged || !isPrivilegedUnsupported(error)) throw error;
        debug('docker', '--privileged refused by this engine, using the explicit capability list');
        refusesPrivileged.add(o.engine);
        await run(false);
      }
      return ip;
    } catch (error) {
      const message = String((error as Error).message);
      if (!o.fixedIp && attempt < 10 && /address already in use/i.test(message)) continue;
      if (/user configured subnets/i.test(message)) {
        throw new DriverError('invalid-input', `docker network "${network.name}" was not created with a subnet, so hosts cannot get fixed addresses`, {
          hint: 'pass --docker-network with a new name (tmachine creates it), or remove that network',
        });
      }
      if (/Conflict.*name .* already in use/i.test(message)) {
        throw new DriverError('already-exists', `a container named "${o.name}" already exists on the local engine`, { hint: 'choose another machine name or remove that container' });
      }
      throw new DriverError('failed', `could not start the host container for "${o.name}": ${message.split('\n')[0]}`, { cause: error });
    }
  }
}

/** Runs a command in the host container through the engine (before SSH exists); returns stdout+stderr. */
async function execIn(d: Docker, id: string, cmd: string[], env: string[] = []): Promise<{ code: number; output: string }> {
  // A TTY keeps the output raw (no multiplexing headers) and merges stderr into it.
  const exec = await d.getContainer(id).exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const result = await exec.inspect();
  return { code: result.ExitCode ?? -1, output: Buffer.concat(chunks).toString('latin1') };
}

async function execInContainer(d: Docker, id: string, cmd: string[], env: string[]): Promise<void> {
  const result = await execIn(d, id, cmd, env);
  if (result.code !== 0) throw new DriverError('failed', `installing the SSH key in the host container failed (exit ${result.code})`);
}

/**
 * Waits until systemd in the host has finished its boot transaction: sshd answers earlier,
 * and sessions opened while boot units still start were seen to end under load.
 */
async function waitBooted(d: Docker, id: string, name: string, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + SSH_WAIT_MS;
  let state = '';
  while (Date.now() < deadline) {
    // Until PID 1 listens on its bus, systemctl cannot ask; then --wait blocks until boot ends.
    const result = await withDeadline(execIn(d, id, ['systemctl', 'is-system-running', '--wait']), Math.max(1, deadline - Date.now()), `systemd in ${name}`).catch(
      (error: unknown) => ({ code: -1, output: error instanceof Error ? error.message : String(error) }),
    );
    state = result.output.trim().split(/\r?\n/).pop()?.trim() ?? '';
    if (state === 'running' || state === 'degraded') return;
    if (state === 'maintenance' || state === 'stopping') break;
    await backoff(250, signal);
  }
  throw new DriverError('unreachable', `host container "${name}" did not finish booting (systemd: ${state || 'no answer'})`, { hint: `inspect it with \`docker logs ${name}\`` });
}

/** Ids of the containers the host's own engine ran (its CLI is there once provisioned). */
async function containerIdsInside(d: Docker, id: string): Promise<string[]> {
  const result = await execIn(d, id, ['sh', '-c', 'command -v docker >/dev/null && docker ps -aq --no-trunc']);
  return result.output.match(/[0-9a-f]{64}/g) ?? [];
}

function ignoreNotFound(error: unknown): void {
  if ((error as { statusCode?: number }).statusCode !== 404) throw error;
}

function ignoreNotModified(error: unknown): void {
  if ((error as { statusCode?: number }).statusCode !== 304) throw error;
}
