/**
 * Every flag of Docker Machine 0.16's `create` for the amazonec2, google, virtualbox and
 * generic drivers, its engine and swarm flags and its global flags, with what tmachine does
 * with each. One list: docs/docker-machine.md is rendered from it (a test keeps the two
 * equal), and `create` answers an unsupported Docker Machine flag with its row.
 */

export type DockerMachineFlagStatus = 'same' | 'renamed' | 'unsupported';

export interface DockerMachineFlag {
  /** Docker Machine's spelling, without dashes. */
  flag: string;
  /** Docker Machine's environment variable, where it had one. */
  env?: string;
  status: DockerMachineFlagStatus;
  /** renamed: tmachine's flag (Docker Machine's spelling stays accepted as an alias). */
  tmachine?: string;
  /** unsupported: why, and what to do instead. */
  note?: string;
}

export interface DockerMachineFlagGroup {
  /** Section of the doc: the driver, or "engine", "swarm", "global". */
  group: string;
  title: string;
  flags: DockerMachineFlag[];
}

const renamed = (flag: string, tmachine: string, env?: string): DockerMachineFlag => ({ flag, status: 'renamed', tmachine, ...(env ? { env } : {}) });
const same = (flag: string, env?: string, note?: string): DockerMachineFlag => ({ flag, status: 'same', ...(env ? { env } : {}), ...(note ? { note } : {}) });
const unsupported = (flag: string, note: string, env?: string): DockerMachineFlag => ({ flag, status: 'unsupported', note, ...(env ? { env } : {}) });

const ec2 = (x: string, env?: string) => renamed(`amazonec2-${x}`, `ec2-${x}`, env);
const gce = (x: string, env?: string) => renamed(`google-${x}`, `gce-${x}`, env);
const vbox = (x: string, env?: string) => same(`virtualbox-${x}`, env);

const CLASSIC_SWARM = 'classic Swarm (the swarm container) is retired; tmachine forms swarm mode: `tmachine swarm bootstrap`, `tmachine swarm join NAME --role manager|worker`';
const CREDENTIALS_CHAIN =
  "credentials come from the AWS default provider chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, ~/.aws, instance role), never from a flag that lands in shell history";

export const DOCKER_MACHINE_FLAGS: DockerMachineFlagGroup[] = [
  {
    group: 'amazonec2',
    title: 'amazonec2 (tmachine: `--driver ec2`, `amazonec2` accepted)',
    flags: [
      { ...ec2('access-key', 'AWS_ACCESS_KEY_ID'), note: 'better left out: the AWS credential chain reads AWS_ACCESS_KEY_ID, ~/.aws and instance roles itself; never stored' },
      { ...ec2('secret-key', 'AWS_SECRET_ACCESS_KEY'), note: 'as --ec2-access-key; never stored or printed' },
      { ...ec2('session-token', 'AWS_SESSION_TOKEN'), note: 'as --ec2-access-key; never stored or printed' },
      ec2('ami', 'AWS_AMI'),
      ec2('region', 'AWS_DEFAULT_REGION'),
      ec2('vpc-id', 'AWS_VPC_ID'),
      ec2('zone', 'AWS_ZONE'),
      ec2('subnet-id', 'AWS_SUBNET_ID'),
      unsupported(
        'amazonec2-security-group-readonly',
        'tmachine opens the swarm ports (2377, 7946, 4789) between members in a group of its own; groups given with --ec2-security-group are attached and never edited, so there is nothing to make read-only',
        'AWS_SECURITY_GROUP_READONLY',
      ),
      ec2('security-group', 'AWS_SECURITY_GROUP'),
      ec2('open-port'),
      ec2('tags', 'AWS_TAGS'),
      ec2('instance-type', 'AWS_INSTANCE_TYPE'),
      ec2('device-name', 'AWS_DEVICE_NAME'),
      ec2('root-size', 'AWS_ROOT_SIZE'),
      ec2('volume-type', 'AWS_VOLUME_TYPE'),
      ec2('iam-instance-profile', 'AWS_INSTANCE_PROFILE'),
      ec2('ssh-user', 'AWS_SSH_USER'),
      ec2('request-spot-instance'),
      ec2('spot-price'),
      unsupported('amazonec2-block-duration-minutes', 'AWS ended spot blocks (defined-duration spot instances) in 2021; use --ec2-request-spot-instance'),
      ec2('private-address-only'),
      ec2('use-private-address'),
      ec2('monitoring'),
      ec2('use-ebs-optimized-instance'),
      unsupported(
        'amazonec2-ssh-keypath',
        'tmachine makes a key for each machine, imports it as the key pair and removes it with the machine; to reach an existing instance with your key, use `--driver generic --generic-ssh-key FILE`',
        'AWS_SSH_KEYPATH',
      ),
      unsupported('amazonec2-keypair-name', 'an existing key pair is not used, for the same reason as --amazonec2-ssh-keypath', 'AWS_KEYPAIR_NAME'),
      ec2('retries'),
      ec2('endpoint', 'AWS_ENDPOINT'),
      unsupported('amazonec2-insecure-transport', 'the scheme of --ec2-endpoint decides (http:// for a local test endpoint); there is no switch that turns TLS off', 'AWS_INSECURE_TRANSPORT'),
      ec2('userdata', 'AWS_USERDATA'),
    ],
  },
  {
    group: 'google',
    title: 'google (tmachine: `--driver gce`, `google` accepted)',
    flags: [
      gce('zone', 'GOOGLE_ZONE'),
      gce('machine-type', 'GOOGLE_MACHINE_TYPE'),
      renamed('google-machine-image', 'gce-image', 'GOOGLE_MACHINE_IMAGE'),
      gce('username', 'GOOGLE_USERNAME'),
      gce('project', 'GOOGLE_PROJECT'),
      gce('service-account', 'GOOGLE_SERVICE_ACCOUNT'),
      gce('scopes', 'GOOGLE_SCOPES'),
      gce('disk-size', 'GOOGLE_DISK_SIZE'),
      gce('disk-type', 'GOOGLE_DISK_TYPE'),
      gce('network', 'GOOGLE_NETWORK'),
      gce('subnetwork', 'GOOGLE_SUBNETWORK'),
      gce('address', 'GOOGLE_ADDRESS'),
      gce('preemptible', 'GOOGLE_PREEMPTIBLE'),
      gce('tags', 'GOOGLE_TAGS'),
      gce('use-internal-ip', 'GOOGLE_USE_INTERNAL_IP'),
      gce('use-internal-ip-only', 'GOOGLE_USE_INTERNAL_IP_ONLY'),
      unsupported(
        'google-use-existing',
        'adopt a VM that already exists with `tmachine import` (from a Docker Machine store) or `--driver generic --generic-ip-address ADDR`',
        'GOOGLE_USE_EXISTING',
      ),
      gce('open-port'),
    ],
  },
  {
    group: 'virtualbox',
    title: 'virtualbox (tmachine: `--driver virtualbox`)',
    flags: [
      unsupported(
        'virtualbox-boot2docker-url',
        'boot2docker is retired; the virtualbox driver boots a Debian cloud image with a cloud-init seed and installs the pinned engine over SSH',
        'VIRTUALBOX_BOOT2DOCKER_URL',
      ),
      vbox('cpu-count', 'VIRTUALBOX_CPU_COUNT'),
      vbox('disk-size', 'VIRTUALBOX_DISK_SIZE'),
      vbox('host-dns-resolver', 'VIRTUALBOX_HOST_DNS_RESOLVER'),
      vbox('hostonly-cidr', 'VIRTUALBOX_HOSTONLY_CIDR'),
      vbox('hostonly-nicpromisc', 'VIRTUALBOX_HOSTONLY_NIC_PROMISC'),
      vbox('hostonly-nictype', 'VIRTUALBOX_HOSTONLY_NIC_TYPE'),
      unsupported('virtualbox-hostonly-no-dhcp', "the VM's host-only NIC gets a fixed address from its cloud-init seed; no DHCP server is made, so there is none to turn off", 'VIRTUALBOX_HOSTONLY_NO_DHCP'),
      unsupported('virtualbox-import-boot2docker-vm', 'boot2docker VMs are not imported; adopt a Docker Machine virtualbox machine with `tmachine import`', 'VIRTUALBOX_BOOT2DOCKER_IMPORT_VM'),
      vbox('memory', 'VIRTUALBOX_MEMORY_SIZE'),
      vbox('nat-nictype', 'VIRTUALBOX_NAT_NICTYPE'),
      vbox('no-dns-proxy', 'VIRTUALBOX_NO_DNS_PROXY'),
      vbox('no-share', 'VIRTUALBOX_NO_SHARE'),
      vbox('no-vtx-check', 'VIRTUALBOX_NO_VTX_CHECK'),
      vbox('share-folder', 'VIRTUALBOX_SHARE_FOLDER'),
      vbox('ui-type', 'VIRTUALBOX_UI_TYPE'),
    ],
  },
  {
    group: 'generic',
    title: 'generic (tmachine: `--driver generic`)',
    flags: [
      same('generic-ip-address', 'GENERIC_IP_ADDRESS'),
      unsupported('generic-engine-port', 'the engine always listens on 2376 with TLS client verification', 'GENERIC_ENGINE_PORT'),
      same('generic-ssh-user', 'GENERIC_SSH_USER'),
      same('generic-ssh-key', 'GENERIC_SSH_KEY'),
      same('generic-ssh-port', 'GENERIC_SSH_PORT'),
    ],
  },
  {
    group: 'engine',
    title: 'engine flags of `create`',
    flags: [
      same('engine-env'),
      same('engine-insecure-registry'),
      same('engine-install-url', 'MACHINE_DOCKER_INSTALL_URL', 'used with `--engine-install script`; the default install is an offline bundle'),
      same('engine-label'),
      same('engine-opt', undefined, 'flag=value becomes a daemon.json key'),
      same('engine-registry-mirror', 'ENGINE_REGISTRY_MIRROR'),
      same('engine-storage-driver'),
      unsupported('tls-san', 'server certificates carry every address and name of the host; after an address change run `tmachine regenerate-certs NAME`'),
    ],
  },
  {
    group: 'swarm',
    title: 'swarm flags of `create` (classic Swarm)',
    flags: [
      unsupported('swarm', CLASSIC_SWARM),
      unsupported('swarm-addr', CLASSIC_SWARM),
      unsupported('swarm-discovery', CLASSIC_SWARM),
      unsupported('swarm-experimental', CLASSIC_SWARM),
      unsupported('swarm-host', CLASSIC_SWARM),
      unsupported('swarm-image', CLASSIC_SWARM, 'MACHINE_SWARM_IMAGE'),
      unsupported('swarm-join-opt', CLASSIC_SWARM),
      unsupported('swarm-master', CLASSIC_SWARM),
      unsupported('swarm-opt', CLASSIC_SWARM),
      unsupported('swarm-strategy', CLASSIC_SWARM),
    ],
  },
  {
    group: 'global',
    title: 'global flags (before or after the command)',
    flags: [
      same('debug', undefined, '`-D` too'),
      same('storage-path', 'MACHINE_STORAGE_PATH', '`-s` too; tmachine\'s own store is `$TMACHINE_STORAGE_PATH` (default `~/.tmachine`); `MACHINE_STORAGE_PATH` names the Docker Machine store `tmachine import` reads'),
      unsupported('tls-ca-cert', 'each tmachine store has its own CA (`certs/` in the store); `tmachine import` keeps a Docker Machine machine\'s certificates', 'MACHINE_TLS_CA_CERT'),
      unsupported('tls-ca-key', 'each tmachine store has its own CA', 'MACHINE_TLS_CA_KEY'),
      unsupported('tls-client-cert', 'each tmachine store has its own client certificate', 'MACHINE_TLS_CLIENT_CERT'),
      unsupported('tls-client-key', 'each tmachine store has its own client certificate', 'MACHINE_TLS_CLIENT_KEY'),
      unsupported('github-api-token', 'tmachine asks no GitHub API (engine bundles come from Docker\'s static releases or Debian)', 'MACHINE_GITHUB_API_TOKEN'),
      unsupported('native-ssh', 'tmachine always uses its built-in SSH client (ssh2)', 'MACHINE_NATIVE_SSH'),
      unsupported('bugsnag-api-token', 'tmachine sends no crash reports anywhere', 'MACHINE_BUGSNAG_API_TOKEN'),
    ],
  },
];

export const DOC_PATH = 'docs/docker-machine.md';

export function findDockerMachineFlag(flag: string): { group: DockerMachineFlagGroup; entry: DockerMachineFlag } | undefined {
  for (const group of DOCKER_MACHINE_FLAGS) {
    const entry = group.flags.find((f) => f.flag === flag);
    if (entry) return { group, entry };
  }
  return undefined;
}

/** Driver prefixes Docker Machine used, for flags that are neither its nor tmachine's. */
export const DOCKER_MACHINE_DRIVER_PREFIXES = ['amazonec2', 'google', 'virtualbox', 'generic'];

function tmachineColumn(f: DockerMachineFlag): string {
  if (f.status === 'renamed') {
    return `\`--${f.tmachine}\` (\`--${f.flag}\` accepted)`;
  }
  if (f.status === 'same') return `\`--${f.flag}\``;
  return '—';
}

/** The markdown of docs/docker-machine.md. */
export function renderDockerMachineDoc(): string {
  const out: string[] = [
    '# Coming from Docker Machine',
    '',
    "Every flag of Docker Machine 0.16's `create` for the amazonec2, google, virtualbox and",
    'generic drivers, its engine and swarm flags, and its global flags, with what tmachine',
    'does with each: **same** (same name and meaning), **renamed** (tmachine\'s name; Docker',
    "Machine's spelling and its environment variable are accepted too) or **not supported**",
    '(and why). Passing a flag marked not supported stops `create` with one line that names',
    'the flag and points at its row here.',
    '',
    'Driver names: `amazonec2` is `ec2` and `google` is `gce`; `virtualbox` and `generic`',
    "keep their names. Docker Machine's commands are all there (`create`, `ls`, `env`, `ssh`,",
    '`scp`, `inspect`, ...) with their output formats; `tmachine import` adopts the machines',
    "of a Docker Machine store (`~/.docker/machine` or `$MACHINE_STORAGE_PATH`) without",
    'changing it.',
    '',
    '<!-- generated from src/cli/docker-machine-flags.ts; a test keeps them equal -->',
  ];
  for (const group of DOCKER_MACHINE_FLAGS) {
    out.push('', `## ${group.title}`, '', '| Docker Machine flag | env | status | tmachine | notes |', '|---|---|---|---|---|');
    for (const f of group.flags) {
      const status = f.status === 'unsupported' ? 'not supported' : f.status;
      out.push(`| \`--${f.flag}\` | ${f.env ? `\`${f.env}\`` : ''} | ${status} | ${tmachineColumn(f)} | ${f.note ?? ''} |`);
    }
  }
  return out.join('\n') + '\n';
}

/**
 * The one line for a Docker Machine flag tmachine does not take, or undefined when the
 * flag is not one of Docker Machine's unsupported ones.
 */
export function dockerMachineFlagRefusal(flag: string): { message: string; hint: string } | undefined {
  const found = findDockerMachineFlag(flag);
  if (found && found.entry.status === 'unsupported') {
    return {
      message: `--${flag} is a Docker Machine flag tmachine does not support: ${found.entry.note}`,
      hint: `see ${DOC_PATH}, section "${found.group.group}", row --${flag}`,
    };
  }
  if (!found && DOCKER_MACHINE_DRIVER_PREFIXES.some((p) => flag.startsWith(`${p}-`))) {
    const group = DOCKER_MACHINE_DRIVER_PREFIXES.find((p) => flag.startsWith(`${p}-`))!;
    return {
      message: `--${flag} is neither a flag of Docker Machine 0.16's ${group} driver nor of tmachine`,
      hint: `see ${DOC_PATH}, section "${group}", for the flags and their tmachine names`,
    };
  }
  return undefined;
}
