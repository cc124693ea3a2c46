/**
 * The create options for a host container: a container that boots systemd and sshd and
 * later runs its own Docker engine (testhost.md §3). Pure data, so it is unit-testable
 * and the driver decides what to do with it.
 */
import type Dockerode from 'dockerode';

/**
 * Everything a systemd + dockerd host needs when `--privileged` is refused. Docker's
 * default set (CHOWN, NET_RAW, SETUID, ...) comes on top of these. Deliberately missing:
 * SYS_RESOURCE (absent from the bounding set of some CI machines, which is exactly why
 * --privileged fails there), and PERFMON, BPF, CHECKPOINT_RESTORE (Docker 20.10 rejects
 * them as unknown).
 */
export const HOST_CAPABILITIES: readonly string[] = [
  'SYS_ADMIN',
  'NET_ADMIN',
  'SYS_PTRACE',
  'MKNOD',
  'SYS_TIME',
  'SYSLOG',
  'AUDIT_CONTROL',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'LINUX_IMMUTABLE',
  'IPC_LOCK',
  'SYS_RAWIO',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_TTY_CONFIG',
  'LEASE',
  'AUDIT_READ',
  'SYS_PACCT',
  'NET_BROADCAST',
  'IPC_OWNER',
  'DAC_READ_SEARCH',
];

/** Label every host container carries, so tmachine can find (and only touch) its own. */
export const MACHINE_LABEL = 'tmachine.machine';

export interface HostContainerSpecInput {
  /** Machine name: container name and hostname. */
  name: string;
  image: string;
  /** User-defined network (a fixed address needs one). */
  network: string;
  /** Fixed address on that network; Docker picks one when absent. */
  ip?: string;
  /** Named volume for /var/lib/docker (overlay on overlay fails). */
  volume: string;
  labels: Record<string, string>;
  privileged: boolean;
}

/** @types/dockerode (API ≤1.40) lacks CgroupnsMode, which Docker 20.10 (API 1.41) has. */
export type HostConfigWithCgroupns = Dockerode.HostConfig & { CgroupnsMode?: 'host' | 'private' };
export type HostContainerCreateOptions = Dockerode.ContainerCreateOptions & {
  name: string;
  HostConfig: HostConfigWithCgroupns;
};

export function hostContainerSpec(input: HostContainerSpecInput): HostContainerCreateOptions {
  const { name, image, network, ip, volume, labels, privileged } = input;
  const hostConfig: HostConfigWithCgroupns = {
    NetworkMode: network,
    // systemd manages its own cgroups: it needs to see and write the real hierarchy.
    CgroupnsMode: 'host',
    Binds: ['/sys/fs/cgroup:/sys/fs/cgroup:rw', `${volume}:/var/lib/docker`],
    // systemd expects /run and /run/lock to be tmpfs; /tmp is cleaned on every boot like a real host's.
    Tmpfs: { '/run': '', '/run/lock': '', '/tmp': '' },
    SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
  };
  if (privileged) hostConfig.Privileged = true;
  else hostConfig.CapAdd = [...HOST_CAPABILITIES];

  return {
    name,
    Hostname: name,
    Image: image,
    Labels: { ...labels, [MACHINE_LABEL]: name },
    // Tells systemd it runs in a container (skips units that make no sense there), as kind does.
    Env: ['container=docker'],
    // systemd halts cleanly on SIGRTMIN+3; on SIGTERM it would re-execute itself and
    // `docker stop` would wait out its timeout and SIGKILL.
    StopSignal: 'SIGRTMIN+3',
    HostConfig: hostConfig,
    NetworkingConfig: {
      EndpointsConfig: {
        [network]: ip ? { IPAMConfig: { IPv4Address: ip } } : {},
      },
    },
  };
}

/**
 * True for the start failure of `--privileged` on machines whose capability bounding set
 * is smaller than the full set (runc: "unable to apply caps: operation not permitted");
 * the driver then retries with the explicit capability list.
 */
export function isPrivilegedUnsupported(error: unknown): boolean {
  const texts: string[] = [];
  if (error instanceof Error) texts.push(error.message);
  else if (typeof error === 'string') texts.push(error);
  // dockerode puts the engine's answer in `json` (parsed) or `reason`.
  const e = error as { json?: unknown; reason?: unknown } | null | undefined;
  if (e && typeof e === 'object') {
    const json = e.json as { message?: unknown } | string | null | undefined;
    if (typeof json === 'string') texts.push(json);
    else if (json && typeof json.message === 'string') texts.push(json.message);
    if (typeof e.reason === 'string') texts.push(e.reason);
  }
  return texts.some((t) => /unable to apply caps:?\s*operation not permitted/i.test(t));
}
