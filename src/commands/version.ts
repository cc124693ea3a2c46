import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';

export default class Version extends BaseCommand {
  static override summary = "Print tmachine's version, or the engine version of a machine";
  static override args = { name: Args.string({ description: 'Machine name (optional)' }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Version);
    if (!args.name) return this.print(`tmachine version ${this.config.version}`);
    const { machineEngine } = await import('../engine/client.js');
    const store = await this.store();
    const docker = await machineEngine(store, await store.load(args.name), 15_000);
    this.print((await docker.version()).Version);
  }
}
