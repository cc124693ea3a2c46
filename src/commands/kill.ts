import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { powerAction } from '../machine/power.js';

export default class Kill extends BaseCommand {
  static override summary = 'Kill machines';
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(Kill);
    await powerAction(await this.store(), argv as string[], 'kill');
  }
}
