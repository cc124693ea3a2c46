/**
 * One engine-bundle upload per command: the first host that needs the bundle gets it from
 * the workstation (the seed); every other host fetches it from the seed over the cluster's
 * own network, so N cloud machines cost one upload from a slow uplink, not N.
 *
 * How a host fetches: tmachine adds a one-time key to the seed's authorized_keys, restricted
 * to one command (`restrict,command="cat BUNDLE"`: no shell, no forwarding, no PTY), gives
 * the private half to the fetching host for that one ssh call with the seed's pinned host
 * key as its only known host, and removes both right after. The fetched file is checked
 * against the bundle's SHA-256 as an upload is. Any failure falls back to a direct upload.
 */
import { randomUUID } from 'node:crypto';
import { serialized, shellQuote } from '../../drivers/kit/index.js';
import { bundlePath, stagingDirOf, type BundleRelay, type ProvisionContext } from '../../provision/engine-install.js';
import { generateKeyPair } from '../ssh/keys.js';
import type { Store } from '../store/store.js';
import { debug } from '../ui/log.js';

interface Seed {
  context: ProvisionContext;
}

export class PeerBundleRelay implements BundleRelay {
  private claimed = false;
  private seed: Promise<Seed | undefined>;
  private resolveSeed!: (seed: Seed | undefined) => void;
  /** Hosts that fetched from the seed (for --timings and tests). */
  readonly fetched: string[] = [];

  constructor(private readonly store: Store) {
    this.seed = new Promise((resolve) => (this.resolveSeed = resolve));
  }

  async obtain(context: ProvisionContext, staged: string, report: (m: string) => void): Promise<'upload' | 'fetched'> {
    if (!this.claimed) {
      this.claimed = true;
      return 'upload';
    }
    report('waiting for a peer that has the engine bundle');
    const seed = await this.seed;
    if (!seed) return 'upload';
    try {
      report(`fetching the engine bundle from ${seed.context.machineName} over the cluster network`);
      await this.fetchFrom(seed, context, staged);
      this.fetched.push(context.machineName);
      return 'fetched';
    } catch (error) {
      debug('relay', `${context.machineName}: fetching from ${seed.context.machineName} failed, uploading instead: ${error instanceof Error ? error.message : String(error)}`);
      return 'upload';
    }
  }

  seeded(context: ProvisionContext): void {
    this.resolveSeed({ context });
  }

  seedFailed(): void {
    // The next host to ask becomes the seed; those already waiting upload themselves.
    this.claimed = false;
    this.resolveSeed(undefined);
    this.seed = new Promise((resolve) => (this.resolveSeed = resolve));
  }

  private async fetchFrom(seed: Seed, context: ProvisionContext, staged: string): Promise<void> {
    const bundle = context.bundle!;
    const source = await this.store.load(seed.context.machineName);
    const address = source.addresses.private || source.addresses.public;
    const pin = source.ssh.hostKey;
    if (!pin) throw new Error(`${source.name} has no pinned host key`);
    const marker = `tmachine-relay-${randomUUID()}`;
    const keys = generateKeyPair(marker);
    const line = `restrict,command="cat ${bundlePath(bundle)}" ${keys.publicKey.split(' ').slice(0, 2).join(' ')} ${marker}`;
    const edit = (script: string) => serialized(`relay:${source.name}`, () => seed.context.host.run(script, { what: 'authorizing the bundle relay' }));
    await edit(`umask 077 && mkdir -p ~/.ssh && printf '%s\\n' ${shellQuote(line)} >> ~/.ssh/authorized_keys`);
    const dir = stagingDirOf(context);
    const keyFile = `${dir}/${marker}.key`;
    const knownHosts = `${dir}/${marker}.known`;
    try {
      await context.host.writeFile(keyFile, keys.privateKey, { mode: 0o600 });
      const target = source.ssh.port === 22 ? address : `[${address}]:${source.ssh.port}`;
      await context.host.writeFile(knownHosts, `${target} ${pin.algorithm} ${pin.key}\n`, { mode: 0o600 });
      const ssh = [
        'ssh',
        '-i', shellQuote(keyFile),
        '-o', `UserKnownHostsFile=${shellQuote(knownHosts)}`,
        '-o', 'StrictHostKeyChecking=yes',
        '-o', 'BatchMode=yes',
        '-o', 'IdentitiesOnly=yes',
        '-o', 'ConnectTimeout=10',
        '-p', String(source.ssh.port),
        shellQuote(`${source.ssh.user}@${address}`),
      ].join(' ');
      await context.host.run(`command -v ssh >/dev/null && ${ssh} > ${shellQuote(`${staged}.part`)} && mv -f ${shellQuote(`${staged}.part`)} ${shellQuote(staged)}`, {
        what: `fetching the bundle from ${source.name}`,
        timeoutMs: 10 * 60_000,
      });
    } finally {
      await context.host.exec(`rm -f ${shellQuote(keyFile)} ${shellQuote(knownHosts)} ${shellQuote(`${staged}.part`)}`).catch(() => undefined);
      await edit(`f=~/.ssh/authorized_keys; grep -v -F ${shellQuote(marker)} "$f" > "$f.tmachine" || true; cat "$f.tmachine" > "$f"; rm -f "$f.tmachine"`).catch((error: unknown) =>
        debug('relay', `could not remove the relay key from ${source.name}: ${String(error)}`),
      );
    }
  }
}
