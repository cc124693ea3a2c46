/**
 * The virtualbox driver's names, flags and schemas (cheap to load); the implementation,
 * which drives `VBoxManage` 7, loads only when a machine of this driver is used.
 * Flag names and environment variables are Docker Machine's where they still mean something.
 */
import { defineDriver, z } from '../kit/index.js';

/**
 * Debian 12 "generic": Debian's own cloud image with cloud-init and the full Debian kernel
 * (the "genericcloud" variant's kernel is trimmed for virtio-only clouds; VirtualBox guests
 * use its emulated AHCI disk and Intel NICs). Debian 12 also matches the engine bundle
 * tmachine builds from Debian's packages. Raw, so `VBoxManage convertfromraw` takes it as is.
 */
export const DEFAULT_IMAGE_URL = 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.raw';
/** VirtualBox 7 allows host-only networks only in 192.168.56.0/21 unless /etc/vbox/networks.conf says more. */
export const DEFAULT_HOSTONLY_CIDR = '192.168.56.1/24';

const NIC_TYPES = ['Am79C970A', 'Am79C973', 'Am79C960', '82540EM', '82543GC', '82545EM', 'virtio'] as const;

export const optionsSchema = z.object({
  'virtualbox-vboxmanage': z.string().optional(),
  'virtualbox-memory': z.number().int().min(512, 'at least 512 MB (Debian and an engine need it)'),
  'virtualbox-cpu-count': z.number().int().refine((n) => n === -1 || (n >= 1 && n <= 64), 'a number of CPUs from 1 to 64, or -1 for all'),
  'virtualbox-disk-size': z.number().int().min(4096, 'at least 4096 MB'),
  'virtualbox-image-url': z.string().min(1).refine((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^https?:\/\//i.test(s), 'an http(s) URL or the path of a local image file'),
  'virtualbox-image-checksum': z
    .string()
    .regex(/^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$/, 'sha256:<64 hex> or sha512:<128 hex>')
    .optional(),
  'virtualbox-hostonly-cidr': z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 address with a prefix length, like 192.168.56.1/24'),
  'virtualbox-hostonly-nictype': z.enum(NIC_TYPES, { error: `one of ${NIC_TYPES.join(', ')}` }),
  'virtualbox-hostonly-nicpromisc': z.enum(['deny', 'allow-vms', 'allow-all'], { error: 'deny, allow-vms or allow-all' }),
  'virtualbox-nat-nictype': z.enum(NIC_TYPES, { error: `one of ${NIC_TYPES.join(', ')}` }),
  'virtualbox-host-dns-resolver': z.boolean(),
  'virtualbox-no-dns-proxy': z.boolean(),
  'virtualbox-share-folder': z.string().regex(/^.+:[^:/]+$/, 'DIR:NAME').optional(),
  'virtualbox-no-share': z.boolean(),
  'virtualbox-ui-type': z.enum(['headless', 'gui', 'sdl', 'separate'], { error: 'headless, gui, sdl or separate' }),
  'virtualbox-no-vtx-check': z.boolean(),
  'virtualbox-stop-timeout': z.number().int().min(1).max(3600),
});
export type VirtualBoxOptions = z.infer<typeof optionsSchema>;

export const stateSchema = z.object({
  uuid: z.string().optional(),
  vmName: z.string().optional(),
  vboxManage: z.string().optional(),
  sshPort: z.number().int().optional(),
  hostOnlyInterface: z.string().optional(),
  hostOnlyAddress: z.string().optional(),
  diskPath: z.string().optional(),
  seedPath: z.string().optional(),
});
export type VirtualBoxState = z.infer<typeof stateSchema>;

export const definition = defineDriver<VirtualBoxOptions, VirtualBoxState>({
  name: 'virtualbox',
  description: 'VirtualBox 7 VMs from a Debian 12 cloud image, booted by cloud-init from a NoCloud seed (NAT for SSH, host-only for the swarm)',
  defaultEngineInstall: 'bundle',
  flags: [
    { name: 'virtualbox-vboxmanage', type: 'string', env: 'VIRTUALBOX_VBOXMANAGE', description: 'Path of VBoxManage (default: VBoxManage on PATH)' },
    { name: 'virtualbox-memory', type: 'number', default: 2048, env: 'VIRTUALBOX_MEMORY_SIZE', description: 'Size of memory for the VM in MB' },
    { name: 'virtualbox-cpu-count', type: 'number', default: 1, env: 'VIRTUALBOX_CPU_COUNT', description: 'Number of CPUs for the VM (-1: as many as this computer has)' },
    { name: 'virtualbox-disk-size', type: 'number', default: 20000, env: 'VIRTUALBOX_DISK_SIZE', description: 'Size of the VM disk in MB' },
    {
      name: 'virtualbox-image-url',
      type: 'string',
      default: DEFAULT_IMAGE_URL,
      env: 'VIRTUALBOX_IMAGE_URL',
      description: 'Boot image: URL of a cloud image (raw, VDI, VMDK, VHD or qcow2) with cloud-init, or a local file; checked against the SHA512SUMS/SHA256SUMS next to it',
    },
    { name: 'virtualbox-image-checksum', type: 'string', env: 'VIRTUALBOX_IMAGE_CHECKSUM', description: 'Expected checksum of the boot image (sha256:HEX or sha512:HEX) when no checksum file sits next to it' },
    { name: 'virtualbox-hostonly-cidr', type: 'string', default: DEFAULT_HOSTONLY_CIDR, env: 'VIRTUALBOX_HOSTONLY_CIDR', description: "Host-only network: this computer's address on it with the prefix length (inside 192.168.56.0/21 unless /etc/vbox/networks.conf allows more)" },
    { name: 'virtualbox-hostonly-nictype', type: 'string', default: '82540EM', env: 'VIRTUALBOX_HOSTONLY_NIC_TYPE', description: 'Host-only network adapter type (82540EM, Am79C973, virtio, ...)' },
    { name: 'virtualbox-hostonly-nicpromisc', type: 'string', default: 'deny', env: 'VIRTUALBOX_HOSTONLY_NIC_PROMISC', description: 'Host-only adapter promiscuous mode: deny, allow-vms, allow-all' },
    { name: 'virtualbox-nat-nictype', type: 'string', default: '82540EM', env: 'VIRTUALBOX_NAT_NICTYPE', description: 'NAT network adapter type (82540EM, Am79C973, virtio, ...)' },
    { name: 'virtualbox-host-dns-resolver', type: 'boolean', default: false, env: 'VIRTUALBOX_HOST_DNS_RESOLVER', description: "Use this computer's DNS resolver for the NAT network" },
    { name: 'virtualbox-no-dns-proxy', type: 'boolean', default: false, env: 'VIRTUALBOX_NO_DNS_PROXY', description: 'Do not proxy DNS requests of the NAT network through this computer' },
    { name: 'virtualbox-share-folder', type: 'string', env: 'VIRTUALBOX_SHARE_FOLDER', description: 'Share a directory with the VM, as DIR:NAME (mounting it in the guest needs the Guest Additions)' },
    { name: 'virtualbox-no-share', type: 'boolean', default: false, env: 'VIRTUALBOX_NO_SHARE', description: 'Share no directory (the default unless --virtualbox-share-folder is given)' },
    { name: 'virtualbox-ui-type', type: 'string', default: 'headless', env: 'VIRTUALBOX_UI_TYPE', description: 'How the VM is started: headless, gui, sdl, separate' },
    { name: 'virtualbox-no-vtx-check', type: 'boolean', default: false, env: 'VIRTUALBOX_NO_VTX_CHECK', description: 'Skip the check for hardware virtualization (VT-x/AMD-V) before the VM is created' },
    { name: 'virtualbox-stop-timeout', type: 'number', default: 60, env: 'VIRTUALBOX_STOP_TIMEOUT', description: 'Seconds `stop` waits for the guest to shut down after the ACPI power button before it powers the VM off' },
  ],
  optionsSchema,
  stateSchema,
  detect: async () => (await import('./vboxmanage.js')).detectVirtualBox(),
  load: async () => (await import('./driver.js')).implementation,
});
