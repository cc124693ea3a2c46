import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { formatTemplate } from '../ui/table.js';

export default class Inspect extends BaseCommand {
  static override summary = "Show a machine's record as JSON";
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = { format: Flags.string({ char: 'f', description: 'Go-template-style format over top-level fields, e.g. {{.Name}}' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Inspect);
    const record = await (await this.store()).load(args.name);
    if (flags.format) {
      const fields = Object.fromEntries(Object.entries(record).map(([k, v]) => [k[0]!.toUpperCase() + k.slice(1), typeof v === 'string' ? v : JSON.stringify(v)]));
      return this.print(formatTemplate(flags.format, fields));
    }
    this.printJson(record);
  }
}
