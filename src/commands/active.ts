import { BaseCommand } from '../base-command.js';
import { TmachineError } from '../errors.js';
import { isActive } from '../machine/status.js';

export default class Active extends BaseCommand {
  static override summary = 'Print the machine that DOCKER_HOST points at';

  async run(): Promise<void> {
    await this.parse(Active);
    const records = await (await this.store()).loadAll();
    const active = records.find(isActive);
    if (!active) throw new TmachineError('no active machine: DOCKER_HOST points at none of them', { hint: 'run `eval "$(tmachine env NAME)"`' });
    this.print(active.name);
  }
}
