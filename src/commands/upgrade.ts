import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { TmachineError } from '../errors.js';
import { provisionMachines } from '../machine/plans.js';

export default class Upgrade extends BaseCommand {
  static override summary = 'Move the engine of machines to another bundle or version';
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };
  static override flags = {
    'engine-bundle': Flags.string({ description: 'Bundle to install: local path or URL' }),
    'engine-bundle-sha256': Flags.string({ description: 'Expected SHA-256 of --engine-bundle' }),
    'engine-version': Flags.string({ description: 'Version to install (a cached bundle, or fetched)' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Upgrade);
    if (!flags['engine-bundle'] && !flags['engine-version']) {
      throw new TmachineError('upgrade needs --engine-bundle or --engine-version');
    }
    await provisionMachines(await this.store(), argv as string[], {
      engine: (current) => {
        const next = { ...current };
        delete next.bundleSha256;
        delete next.bundle;
        delete next.version;
        if (flags['engine-bundle']) next.bundle = flags['engine-bundle'];
        if (flags['engine-bundle-sha256']) next.bundleSha256 = flags['engine-bundle-sha256'];
        if (flags['engine-version']) next.version = flags['engine-version'];
        return next;
      },
    });
  }
}
