import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { connectMachine } from '../machine/connect.js';

export default class Ssh extends BaseCommand {
  static override summary = 'Log in to a machine, or run one command there (exit code passed through)';
  static override description =
    'The command runs through the login shell on the machine, as with docker-machine ssh: `ssh NAME "CMD ARGS"` (one quoted string) and `ssh NAME -- CMD ARGS...` (words joined with spaces) are the same.';
  static override examples = [
    '<%= config.bin %> ssh n1',
    '<%= config.bin %> ssh n1 -- docker node ls',
    '<%= config.bin %> ssh manager1 "docker swarm init --advertise-addr $(<%= config.bin %> ip manager1)"',
  ];
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = {
    'repin-host-key': Flags.boolean({ description: 'Trust the key the host offers now (after you rebuilt the host yourself)' }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Ssh);
    const words = (argv as string[]).slice(1);
    // `ssh NAME -- CMD`: the separator is not part of the command.
    const command = words[0] === '--' ? words.slice(1) : words;
    const store = await this.store();
    const record = await store.load(args.name);
    const connection = await connectMachine(store, record, { repinHostKey: flags['repin-host-key'] });
    try {
      process.exitCode = command.length === 0 ? await connection.interactive() : await connection.execInteractive(command.join(' '));
    } finally {
      connection.close();
    }
  }
}
