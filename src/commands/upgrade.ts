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
    force: Flags.boolean({ description: 'Upgrade swarm members all at once anyway (their engines restart together)' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Upgrade);
    if (!flags['engine-bundle'] && !flags['engine-version']) {
      throw new TmachineError('upgrade needs --engine-bundle or --engine-version');
    }
    const store = await this.store();
    const names = argv as string[];
    // Restarting every member's engine at once takes a swarm down: that is `swarm upgrade`'s job.
    for (const name of names) {
      const cluster = (await store.load(name)).swarm?.cluster;
      if (cluster && !flags.force) {
        throw new TmachineError(`${name} is a member of swarm ${cluster}: upgrading it here restarts its engine with the others`, {
          hint: `run \`tmachine swarm upgrade --cluster ${cluster} ${flags['engine-bundle'] ? `--engine-bundle ${flags['engine-bundle']}` : `--engine-version ${flags['engine-version']}`}\` (one node at a time, quorum kept), or pass --force`,
        });
      }
    }
    await provisionMachines(store, names, {
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
