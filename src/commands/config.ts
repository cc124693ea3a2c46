import path from 'node:path';
import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { engineUrl } from '../engine/client.js';

export default class Config extends BaseCommand {
  static override summary = 'Print the docker client flags that reach a machine';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Config);
    const store = await this.store();
    const record = await store.load(args.name);
    const dir = store.machineDir(record.name);
    this.print(
      [
        '--tlsverify',
        `--tlscacert="${path.join(dir, 'ca.pem')}"`,
        `--tlscert="${path.join(dir, 'cert.pem')}"`,
        `--tlskey="${path.join(dir, 'key.pem')}"`,
        `-H=${engineUrl(record)}`,
      ].join('\n'),
    );
  }
}
