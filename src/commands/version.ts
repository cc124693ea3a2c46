import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';

export default class Version extends BaseCommand {
  static override summary = "Print tmachine's version, or the engine version of a machine";
  static override args = { name: Args.string({ description: 'Machine name (optional)' }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Version);
    // Docker Machine's layout: "docker-machine version 0.16.2, build bd45ab13".
    if (!args.name) return this.print(`tmachine version ${this.config.version}`);
    const [{ clientTls, engineClient }, { machineTls }] = await Promise.all([import('../engine/client.js'), import('../cli/machine-tls.js')]);
    const store = await this.store();
    const record = await store.load(args.name);
    const tls = (await machineTls(store, record)) ?? (await clientTls(store));
    this.print((await engineClient(record, tls, 15_000).version()).Version);
  }
}
