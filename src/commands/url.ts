import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { engineUrl } from '../engine/client.js';

export default class Url extends BaseCommand {
  static override summary = "Print the URL of a machine's engine API (TLS)";
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Url);
    this.print(engineUrl(await (await this.store()).load(args.name)));
  }
}
