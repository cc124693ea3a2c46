import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { copyDelta } from '../cli/scp-delta.js';
import { copyFiles } from '../machine/scp.js';
import { info } from '../ui/log.js';

export default class Scp extends BaseCommand {
  static override summary = 'Copy files between this machine and a machine ([NAME:]SRC [NAME:]DST)';
  static override examples = [
    '<%= config.bin %> scp ./app.tar n1:/tmp/app.tar',
    '<%= config.bin %> scp -r n1:/etc/docker ./docker-etc',
    '<%= config.bin %> scp -r -d ./site n1:/srv/site      # only the files that changed',
  ];
  static override args = {
    source: Args.string({ description: '[NAME:]path', required: true }),
    destination: Args.string({ description: '[NAME:]path', required: true }),
  };
  static override flags = {
    recursive: Flags.boolean({ char: 'r', description: 'Copy directories recursively' }),
    delta: Flags.boolean({ char: 'd', description: 'Send only the files whose content differs (Docker Machine used rsync; tmachine compares SHA-256 sums)' }),
    quiet: Flags.boolean({ char: 'q', description: 'Print nothing but errors' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Scp);
    const store = await this.store();
    if (flags.delta) {
      const result = await copyDelta(store, args.source, args.destination, flags.recursive);
      if (!flags.quiet) info(`${result.copied} file(s) copied, ${result.unchanged} unchanged`);
      return;
    }
    await copyFiles(store, args.source, args.destination, { recursive: flags.recursive });
  }
}
