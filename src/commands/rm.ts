import { Args, Flags } from '@oclif/core';
import { createInterface } from 'node:readline/promises';
import { BaseCommand } from '../base-command.js';
import { TmachineError } from '../errors.js';
import { removeMachine } from '../machine/remove.js';
import { runTasks } from '../ui/progress.js';

export default class Rm extends BaseCommand {
  static override summary = 'Remove machines: the host (per driver) and the store entry';
  static override strict = false;
  static override args = { name: Args.string({ description: 'Machine name(s)', required: true }) };
  static override flags = {
    force: Flags.boolean({ char: 'f', description: 'Remove the store entry even when the host cannot be removed' }),
    yes: Flags.boolean({ char: 'y', description: 'Do not ask for confirmation' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Rm);
    const names = argv as string[];
    const store = await this.store();
    const records = await Promise.all(names.map((n) => store.load(n)));
    if (!flags.yes) {
      if (!process.stdin.isTTY) throw new TmachineError('rm needs confirmation', { hint: 'pass -y to remove without asking' });
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(`About to remove ${names.join(', ')}. Are you sure? (y/n): `);
      rl.close();
      if (!/^y(es)?$/i.test(answer.trim())) return;
    }
    await runTasks(
      records.map((r) => ({ title: `${r.name}: remove`, run: () => removeMachine(store, r, { force: flags.force, together: names }) })),
      { concurrent: true, continueOnError: true },
    );
  }
}
