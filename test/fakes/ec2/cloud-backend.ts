/**
 * Fake EC2 instances backed by real test hosts (test/support/cloud-host.ts): Debian's
 * cloud-init applies a NoCloud seed the fake builds from the RunInstances request, as the
 * EC2 datasource would hand it to a Debian AMI: the key pair's public key for the image's
 * user (admin, passwordless sudo), the instance's hostname, and the user data.
 */
import type Dockerode from 'dockerode';
import { sshBanner } from '../../../drivers/kit/index.js';
import { ensureTestNetwork, removeByLabel, removeTestNetwork, startCloudHost, type CloudHost } from '../../support/cloud-host.js';
import type { BackingHost, InstanceBackend, LaunchRequest } from './backend.js';

export const EC2_FAKE_LABEL = 'tmachine.test.ec2-fake';

/**
 * The image's own cloud-init configuration (Debian's AMIs make `admin`), then the request's
 * user data as a second part, so it merges the way it would on EC2.
 */
export function composeUserData(request: LaunchRequest): string {
  const image = [
    '#cloud-config',
    'system_info:',
    '  default_user:',
    `    name: ${request.user}`,
    '    lock_passwd: true',
    '    gecos: Debian',
    '    groups: [adm, sudo]',
    "    sudo: ['ALL=(ALL) NOPASSWD:ALL']",
    '    shell: /bin/bash',
    'users: [default]',
    '',
  ].join('\n');
  if (request.userData === undefined || request.userData === '') return image;
  const boundary = `ec2-fake-${request.instanceId}`;
  const given = request.userData;
  let part: string;
  if (/^Content-Type:/i.test(given)) {
    // A MIME message already: its headers become the part's headers.
    part = given.replace(/^\s+/, '');
  } else {
    const type = given.startsWith('#cloud-config') ? 'text/cloud-config' : given.startsWith('#!') ? 'text/x-shellscript' : 'text/plain';
    part = `Content-Type: ${type}; charset="utf-8"\n\n${given}`;
  }
  return [
    'Content-Type: multipart/mixed; boundary="' + boundary + '"',
    'MIME-Version: 1.0',
    '',
    `--${boundary}`,
    'Content-Type: text/cloud-config; charset="utf-8"',
    '',
    image,
    `--${boundary}`,
    part.endsWith('\n') ? part : `${part}\n`,
    `--${boundary}--`,
    '',
  ].join('\n');
}

export function metaDataFor(request: LaunchRequest): string {
  return [`instance-id: ${request.instanceId}`, `local-hostname: ${request.hostname}`, ...(request.authorizedKey ? ['public-keys:', `  - ${request.authorizedKey}`] : []), ''].join('\n');
}

class CloudBackedHost implements BackingHost {
  constructor(
    private readonly docker: Dockerode,
    private readonly host: CloudHost,
    private readonly network: string,
    private ip: string,
    private readonly blockSsh: boolean,
  ) {}

  async answersSsh(): Promise<boolean> {
    return (await sshBanner(this.ip, 22, 2_000)).ok;
  }

  async consoleText(): Promise<string> {
    return this.host.consoleOutput().catch(() => '');
  }

  stop(): Promise<void> {
    return this.host.stop();
  }

  async start(ip: string): Promise<void> {
    if (ip !== this.ip) {
      // EC2 gives a stopped instance's address up: it comes back on another one.
      const network = this.docker.getNetwork(this.network);
      await network.disconnect({ Container: this.host.id, Force: true });
      await network.connect({ Container: this.host.id, EndpointConfig: { IPAMConfig: { IPv4Address: ip } } });
      this.ip = ip;
    }
    await this.host.start();
    if (this.blockSsh) await blockSsh(this.host);
  }

  kill(): Promise<void> {
    return this.host.kill();
  }

  async reboot(): Promise<void> {
    await this.host.stop();
    await this.host.start();
    if (this.blockSsh) await blockSsh(this.host);
  }

  remove(): Promise<void> {
    return this.host.remove();
  }
}

/** The "instance never answers SSH" fault: the host boots, its port 22 drops every packet. */
async function blockSsh(host: CloudHost): Promise<void> {
  const result = await host.exec(['iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'DROP']);
  if (result.code !== 0) await host.pause();
}

export interface CloudBackendOptions {
  /** Test network (and container name prefix) of this fake. */
  name: string;
  /** Range to pick the network's /24 from (this suite's own). */
  range: string;
}

export async function cloudHostBackend(docker: Dockerode, options: CloudBackendOptions): Promise<InstanceBackend> {
  const labels = { [EC2_FAKE_LABEL]: options.name };
  const network = await ensureTestNetwork(docker, options.name, { range: options.range, labels });
  return {
    subnet: network.subnet,
    async launch(request: LaunchRequest): Promise<BackingHost> {
      const host = await startCloudHost(docker, {
        name: `${options.name}-${request.instanceId}`,
        network: network.name,
        ip: request.ip,
        seed: { metaData: metaDataFor(request), userData: composeUserData(request) },
        labels,
      });
      if (request.blockSsh) await blockSsh(host);
      return new CloudBackedHost(docker, host, network.name, request.ip, request.blockSsh);
    },
    async close(): Promise<void> {
      await removeByLabel(docker, EC2_FAKE_LABEL, options.name);
      await removeTestNetwork(docker, network.name).catch(() => undefined);
    },
  };
}
