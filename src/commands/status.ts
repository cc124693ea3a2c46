import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { dockerMachineState } from '../cli/formats.js';
import { driverOf } from '../machine/driver-instance.js';

export default class Status extends BaseCommand {
  static override summary = 'Print the state of a machine (Running, Stopped, ...), as Docker Machine did';
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Status);
    const store = await this.store();
    const record = await store.load(args.name);
    if (record.creating) return this.print(dockerMachineState('creating'));
    const state = await (await driverOf(store, record)).state();
    this.print(dockerMachineState(state));
  }
}
