import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { dockerMachineHost, dockerMachineJson } from '../cli/formats.js';
import { renderGoTemplate } from '../cli/go-template.js';

export default class Inspect extends BaseCommand {
  static override summary = "Show a machine: Docker Machine's inspect JSON next to tmachine's record";
  static override description =
    "Without --format: Docker Machine's host JSON (ConfigVersion, Driver, DriverName, HostOptions, Name) next to tmachine's record (schemaVersion, name, driver, ssh, addresses, engine, ...) in one object. --format json (or --json): tmachine's record alone. Any other --format is a Go template over the whole object, e.g. {{.Driver.IPAddress}}, {{.HostOptions.AuthOptions.CaCertPath}}, {{json .Driver}}, {{.engine.version}}.";
  static override examples = [
    "<%= config.bin %> inspect n1 --format '{{.Driver.IPAddress}}'",
    "<%= config.bin %> inspect n1 --format '{{json .HostOptions.EngineOptions}}'",
    '<%= config.bin %> inspect n1 --format json',
  ];
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = {
    format: Flags.string({ char: 'f', description: "Go template over Docker Machine's JSON, or `json` for tmachine's record" }),
    json: Flags.boolean({ description: "tmachine's own record as JSON" }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Inspect);
    const store = await this.store();
    const record = await store.load(args.name);
    if (flags.json || flags.format === 'json') return this.printJson(record);
    // Docker Machine's keys (capitalised) and tmachine's record (lower camel case) side by
    // side in one object: scripts written for either read the same output.
    const host = { ...dockerMachineHost(store, record), ...record };
    if (flags.format) return this.print(renderGoTemplate(flags.format, host));
    this.print(dockerMachineJson(host));
  }
}
