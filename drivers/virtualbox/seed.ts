/** The cloud-init NoCloud seed of one VM: meta-data, user-data and network-config on a `cidata` ISO. */
import { stringify } from 'yaml';
import { buildIsoImage } from './iso9660.js';

export const SSH_USER = 'docker';
/** No line folding: an SSH key stays on one line, as people read it. */
const YAML_OPTIONS = { lineWidth: 0 };

export interface SeedInput {
  instanceId: string;
  hostname: string;
  sshPublicKey: string;
  /** MAC of the NAT NIC (DHCP from VirtualBox's NAT engine). */
  natMac: string;
  /** MAC of the host-only NIC and its static address. */
  hostOnlyMac: string;
  hostOnlyAddress: string;
  hostOnlyPrefix: number;
}

export interface SeedFiles {
  metaData: string;
  userData: string;
  networkConfig: string;
}

/** "080027AABBCC" (VBoxManage's spelling) to "08:00:27:aa:bb:cc" (cloud-init's). */
export function colonMac(mac: string): string {
  return mac.toLowerCase().match(/../g)!.join(':');
}

export function seedFiles(input: SeedInput): SeedFiles {
  const metaData = stringify({ 'instance-id': input.instanceId, 'local-hostname': input.hostname }, YAML_OPTIONS);
  const userData =
    '#cloud-config\n' +
    stringify({
      hostname: input.hostname,
      preserve_hostname: false,
      users: [
        {
          name: SSH_USER,
          gecos: 'tmachine',
          shell: '/bin/bash',
          sudo: 'ALL=(ALL) NOPASSWD:ALL',
          lock_passwd: true,
          ssh_authorized_keys: [input.sshPublicKey.trim()],
        },
      ],
      ssh_pwauth: false,
      disable_root: true,
    }, YAML_OPTIONS);
  // Network config v2: NIC 1 takes DHCP from the NAT engine (outbound traffic), NIC 2 gets
  // the fixed host-only address the swarm advertises, so it survives restarts.
  const networkConfig = stringify({
    version: 2,
    ethernets: {
      nat: { match: { macaddress: colonMac(input.natMac) }, 'set-name': 'nat0', dhcp4: true },
      hostonly: { match: { macaddress: colonMac(input.hostOnlyMac) }, 'set-name': 'hostonly0', dhcp4: false, addresses: [`${input.hostOnlyAddress}/${input.hostOnlyPrefix}`] },
    },
  });
  return { metaData, userData, networkConfig };
}

export function seedImage(files: SeedFiles): Buffer {
  return buildIsoImage({
    volumeId: 'cidata',
    files: [
      { name: 'meta-data', content: files.metaData },
      { name: 'user-data', content: files.userData },
      { name: 'network-config', content: files.networkConfig },
    ],
  });
}
