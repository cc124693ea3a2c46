import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { rotateTokens } from '../../swarm/operations.js';

export default class SwarmRotateTokens extends BaseCommand {
  static override summary = 'Rotate the worker and manager join tokens (the old ones stop working)';
  static override flags = { cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(SwarmRotateTokens);
    await rotateTokens(await this.store(), flags.cluster);
    this.print('join tokens rotated');
  }
}
