import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { copyFiles } from '../machine/scp.js';

export default class Scp extends BaseCommand {
  static override summary = 'Copy files between this machine and a machine ([NAME:]SRC [NAME:]DST)';
  static override examples = ['<%= config.bin %> scp ./app.tar n1:/tmp/app.tar', '<%= config.bin %> scp -r n1:/etc/docker ./docker-etc'];
  static override args = {
    source: Args.string({ description: '[NAME:]path', required: true }),
    destination: Args.string({ description: '[NAME:]path', required: true }),
  };
  static override flags = { recursive: Flags.boolean({ char: 'r', description: 'Copy directories recursively' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Scp);
    await copyFiles(await this.store(), args.source, args.destination, { recursive: flags.recursive });
  }
}
