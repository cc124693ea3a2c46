/** The instance request tmachine sends, and reading an instance back. */
import { DriverError } from '../kit/index.js';
import { call, type GceClients, type Instance } from './client.js';
import type { GceOptions } from './definition.js';

/** Compute Engine names: lowercase letter, then letters, digits and dashes, at most 63. */
export const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface ResolvedImage {
  /** The image's selfLink (a family resolved to its newest image). */
  link: string;
  /** What the user asked for, for messages. */
  asked: string;
}

/** Splits --gce-image into project + image or family; accepts URLs and Docker Machine's "P/global/images/X". */
export function parseImage(value: string, defaultProject: string): { project: string; family?: string; image?: string } {
  const path = value.replace(/^https?:\/\/[^/]+\/compute\/(v1|beta)\//, '').replace(/^projects\//, '');
  let m = /^([^/]+)\/global\/images\/family\/([^/]+)$/.exec(path);
  if (m) return { project: m[1]!, family: m[2]! };
  m = /^([^/]+)\/global\/images\/([^/]+)$/.exec(path);
  if (m) return { project: m[1]!, image: m[2]! };
  m = /^family\/([^/]+)$/.exec(path);
  if (m) return { project: defaultProject, family: m[1]! };
  if (/^[a-z][-a-z0-9]*$/.test(path)) return { project: defaultProject, image: path };
  throw new DriverError('invalid-input', `--gce-image "${value}" is not an image`, { hint: 'use projects/PROJECT/global/images/family/FAMILY, PROJECT/global/images/NAME or an image URL' });
}

export async function resolveImage(clients: GceClients, value: string, signal?: AbortSignal): Promise<ResolvedImage> {
  const parsed = parseImage(value, clients.project);
  try {
    const [image] = parsed.family
      ? await call(`images.getFromFamily ${parsed.project}/${parsed.family}`, clients, () => clients.images.getFromFamily({ project: parsed.project, family: parsed.family! }), signal)
      : await call(`images.get ${parsed.project}/${parsed.image ?? ''}`, clients, () => clients.images.get({ project: parsed.project, image: parsed.image! }), signal);
    if (!image.selfLink) throw new DriverError('failed', `gce: image ${value} has no selfLink`);
    return { link: image.selfLink, asked: value };
  } catch (error) {
    if (error instanceof DriverError && error.kind === 'not-found') {
      throw new DriverError('invalid-input', parsed.family ? `${error.message} (no image family "${parsed.family}" in project ${parsed.project})` : `${error.message} (no image "${parsed.image ?? ''}" in project ${parsed.project})`, {
        hint: 'check --gce-image; `gcloud compute images list` shows the families',
      });
    }
    throw error;
  }
}

export interface InstanceRequest {
  options: GceOptions;
  zone: string;
  machineType: string;
  image: ResolvedImage;
  targetTag: string;
  labels: Record<string, string>;
  /** Public keys allowed to log in as the user (one per machine; several for a bulk insert). */
  sshPublicKeys: string[];
  /** bulkInsert's instanceProperties take bare names for the machine and disk type. */
  bare: boolean;
}

/** The region of a zone: europe-west1-b → europe-west1. */
export function regionOf(zone: string): string {
  return zone.replace(/-[a-z]$/, '');
}

export function sshKeysMetadata(user: string, keys: string[]): string {
  return keys
    .map((key) => key.trim().split(/\s+/).slice(0, 2).join(' '))
    .map((key) => `${user}:${key} ${user}`)
    .join('\n');
}

/** The instance (insert) or instanceProperties (bulkInsert) body. */
export function instanceBody(request: InstanceRequest): Instance {
  const { options, zone } = request;
  const internalOnly = options['gce-use-internal-ip-only'];
  const scheduling = options['gce-spot']
    ? { provisioningModel: 'SPOT', instanceTerminationAction: 'STOP', automaticRestart: false, onHostMaintenance: 'TERMINATE' }
    : options['gce-preemptible']
      ? { preemptible: true, automaticRestart: false, onHostMaintenance: 'TERMINATE' }
      : { automaticRestart: true, onHostMaintenance: 'MIGRATE' };
  return {
    machineType: request.bare ? request.machineType : `zones/${zone}/machineTypes/${request.machineType}`,
    labels: request.labels,
    tags: { items: [...new Set([request.targetTag, ...(options['gce-tags'] ?? [])])] },
    disks: [
      {
        boot: true,
        autoDelete: true,
        type: 'PERSISTENT',
        initializeParams: {
          sourceImage: request.image.link,
          diskSizeGb: String(options['gce-disk-size']),
          diskType: request.bare ? options['gce-disk-type'] : `zones/${zone}/diskTypes/${options['gce-disk-type']}`,
        },
      },
    ],
    networkInterfaces: [
      {
        network: `global/networks/${options['gce-network']}`,
        ...(options['gce-subnetwork'] ? { subnetwork: `regions/${regionOf(zone)}/subnetworks/${options['gce-subnetwork']}` } : {}),
        accessConfigs: internalOnly ? [] : [{ type: 'ONE_TO_ONE_NAT', name: 'External NAT', ...(options['gce-address'] ? { natIP: options['gce-address'] } : {}) }],
      },
    ],
    metadata: {
      items: [
        { key: 'ssh-keys', value: sshKeysMetadata(options['gce-username'], request.sshPublicKeys) },
        // The guest agent publishes the host keys under hostkeys/ only with guest attributes on.
        { key: 'enable-guest-attributes', value: 'TRUE' },
        // With OS Login on (a project default in many organisations) ssh-keys would be ignored.
        { key: 'enable-oslogin', value: 'FALSE' },
      ],
    },
    serviceAccounts: [{ email: options['gce-service-account'], scopes: options['gce-scopes'] }],
    scheduling,
  };
}

/** A label value from a name: lowercase, [a-z0-9_-], at most 63 characters. */
export function labelValue(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').slice(0, 63);
}

export function addressesOf(instance: Instance): { publicIp?: string; privateIp?: string } {
  const nic = instance.networkInterfaces?.[0];
  const privateIp = nic?.networkIP ?? undefined;
  const publicIp = nic?.accessConfigs?.find((a) => a.natIP)?.natIP ?? undefined;
  return { ...(publicIp ? { publicIp } : {}), ...(privateIp ? { privateIp } : {}) };
}
