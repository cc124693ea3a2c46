import { Args } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { removeRegistryLogin } from '../../swarm/ops/registry.js';

export default class RegistryLogout extends BaseCommand {
  static override summary = 'Forget the credentials kept for a private registry';
  static override args = { registry: Args.string({ description: 'Registry HOST or HOST:PORT', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(RegistryLogout);
    const removed = await removeRegistryLogin(await this.store(), args.registry);
    this.print(removed ? `credentials for ${args.registry} removed` : `no credentials were kept for ${args.registry}`);
  }
}
