import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';

export default class Ip extends BaseCommand {
  static override summary = 'Print the address of one or more machines';
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(Ip);
    const store = await this.store();
    for (const name of argv as string[]) this.print((await store.load(name)).addresses.public);
  }
}
