/**
 * Real hosts behind the Compute Engine fake: one cloud host (test/support/cloud-host.ts) per
 * instance. The `ssh-keys` metadata becomes the NoCloud seed that cloud-init applies at first
 * boot (the user, its keys, passwordless sudo, the hostname), as the guest environment does
 * on a real instance; the host's own keys are what the fake publishes as guest attributes.
 */
import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import { stringify } from 'yaml';
import { startCloudHost, type CloudHost } from '../../support/cloud-host.js';
import type { BackedHost, GuestSetup, InstanceBackend } from './backend.js';

export interface CloudHostBackendOptions {
  /** A TestNetwork (ensureTestNetwork) the hosts sit on. */
  network: string;
  /** Its MTU (what the fake's VPC reports). */
  mtu: number;
  /** Container name prefix, unique per test run. */
  prefix: string;
  labels: Record<string, string>;
}

export function nocloudSeed(setup: GuestSetup): { metaData: string; userData: string } {
  const byUser = new Map<string, string[]>();
  for (const { user, key } of setup.sshKeys) byUser.set(user, [...(byUser.get(user) ?? []), key]);
  const shortName = setup.hostname.split('.')[0]!;
  const userData = {
    hostname: shortName,
    fqdn: setup.hostname,
    users: [...byUser.entries()].map(([name, keys]) => ({ name, shell: '/bin/bash', sudo: 'ALL=(ALL) NOPASSWD:ALL', lock_passwd: true, ssh_authorized_keys: keys })),
  };
  return {
    metaData: `instance-id: ${setup.instance}-${randomUUID().slice(0, 8)}\nlocal-hostname: ${shortName}\n`,
    userData: `#cloud-config\n${stringify(userData)}`,
  };
}

export function cloudHostBackend(docker: Dockerode, options: CloudHostBackendOptions): InstanceBackend {
  return {
    mtu: () => options.mtu,
    launch: async (setup) => {
      const host: CloudHost = await startCloudHost(docker, {
        name: `${options.prefix}-${setup.instance}`,
        network: options.network,
        seed: nocloudSeed(setup),
        labels: options.labels,
      });
      let keys: string[];
      try {
        await host.waitReady(180_000);
        // The guest agent publishes the keys once, after boot; they stay until the disk goes.
        keys = await host.hostKeys();
        if (setup.sshNeverAnswers) {
          const masked = await host.exec(['sh', '-c', 'systemctl mask --now ssh.service ssh.socket']);
          if (masked.code !== 0) throw new Error(`could not stop sshd on ${host.name}: ${masked.output}`);
        }
      } catch (error) {
        await host.remove().catch(() => undefined);
        throw error;
      }
      const backed: BackedHost = {
        ip: host.ip,
        hostKeys: async () => keys,
        stop: () => host.stop(),
        start: async () => {
          await host.start();
          if (!setup.sshNeverAnswers) await host.waitReady(120_000);
        },
        reset: async () => {
          await host.kill();
          await host.start();
          if (!setup.sshNeverAnswers) await host.waitReady(120_000);
        },
        remove: () => host.remove(),
      };
      return backed;
    },
  };
}
