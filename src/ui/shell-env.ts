/** Shell syntax for setting/unsetting variables, as `docker-machine env` prints it. */
export type Shell = 'bash' | 'zsh' | 'sh' | 'fish' | 'powershell';

function quote(shell: Shell, value: string): string {
  if (shell === 'powershell') return `"${value.replace(/`/g, '``').replace(/"/g, '`"')}"`;
  return `"${value.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** `null` unsets the variable. */
export function shellEnv(shell: Shell, vars: Record<string, string | null>, command: string): string {
  const lines = Object.entries(vars).map(([key, value]) => {
    if (value === null) {
      if (shell === 'fish') return `set -e ${key};`;
      if (shell === 'powershell') return `Remove-Item Env:\\${key} -ErrorAction SilentlyContinue`;
      return `unset ${key}`;
    }
    if (shell === 'fish') return `set -gx ${key} ${quote(shell, value)};`;
    if (shell === 'powershell') return `$Env:${key} = ${quote(shell, value)}`;
    return `export ${key}=${quote(shell, value)}`;
  });
  const how =
    shell === 'fish' ? `# ${command} | source` : shell === 'powershell' ? `# & tmachine ${command.replace(/^tmachine /, '')} | Invoke-Expression` : `# eval "$(${command})"`;
  return [...lines, '# Run this command to configure your shell:', how].join('\n');
}
