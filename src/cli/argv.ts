/**
 * Docker Machine took its global flags before the command (`docker-machine --debug create
 * ...`, `docker-machine -s DIR ls`); oclif only knows flags after the command id. The
 * global flags found before the command are moved behind it (before a `--`, which ends the
 * flags), in the long spelling tmachine's commands declare.
 */
const GLOBAL_BOOLEAN: Record<string, string> = { '--debug': '--debug', '-D': '--debug' };
const GLOBAL_VALUE: Record<string, string> = { '--storage-path': '--storage-path', '-s': '--storage-path' };

export function hoistGlobalFlags(argv: string[]): string[] {
  const hoisted: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (GLOBAL_BOOLEAN[arg]) {
      hoisted.push(GLOBAL_BOOLEAN[arg]!);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (GLOBAL_VALUE[name]) {
      if (eq > 0) hoisted.push(`${GLOBAL_VALUE[name]}=${arg.slice(eq + 1)}`);
      else if (i + 1 < argv.length) hoisted.push(`${GLOBAL_VALUE[name]}=${argv[++i]!}`);
      else hoisted.push(arg); // no value: oclif says so
      continue;
    }
    break;
  }
  if (hoisted.length === 0) return argv;
  const rest = argv.slice(i);
  // Nothing after the globals: let oclif answer `--help`/`--version` style input itself.
  if (rest.length === 0) return hoisted;
  const dashdash = rest.indexOf('--');
  return dashdash < 0 ? [...rest, ...hoisted] : [...rest.slice(0, dashdash), ...hoisted, ...rest.slice(dashdash)];
}
