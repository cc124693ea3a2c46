/** Shell syntax for setting/unsetting variables, as `docker-machine env` prints it. */
export type Shell = 'bash' | 'zsh' | 'sh' | 'fish' | 'powershell' | 'cmd' | 'emacs' | 'tcsh';

function quote(shell: Shell, value: string): string {
  if (shell === 'powershell') return `"${value.replace(/`/g, '``').replace(/"/g, '`"')}"`;
  return `"${value.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** `null` unsets the variable. */
export function shellEnv(shell: Shell, vars: Record<string, string | null>, command: string): string {
  const lines = Object.entries(vars).map(([key, value]) => {
    if (value === null) {
      if (shell === 'fish') return `set -e ${key};`;
      if (shell === 'cmd') return `SET ${key}=`;
      if (shell === 'tcsh') return `unsetenv ${key};`;
      if (shell === 'emacs') return `(setenv "${key}" nil)`;
      if (shell === 'powershell') return `Remove-Item Env:\\${key} -ErrorAction SilentlyContinue`;
      return `unset ${key}`;
    }
    if (shell === 'fish') return `set -gx ${key} ${quote(shell, value)};`;
    if (shell === 'cmd') return `SET ${key}=${value}`;
    if (shell === 'tcsh') return `setenv ${key} ${quote(shell, value)};`;
    if (shell === 'emacs') return `(setenv "${key}" ${quote(shell, value)})`;
    if (shell === 'powershell') return `$Env:${key} = ${quote(shell, value)}`;
    return `export ${key}=${quote(shell, value)}`;
  });
  if (shell === 'cmd') return [...lines, 'REM Run this command to configure your shell:', `REM \t@FOR /f "tokens=*" %i IN ('${command}') DO @%i`].join('\n');
  if (shell === 'emacs') return [...lines, ';; Run this command to configure your shell:', `;; (with-temp-buffer (shell-command "${command}" (current-buffer)) (eval-buffer))`].join('\n');
  const how =
    shell === 'fish' ? `# ${command} | source` : shell === 'tcsh' ? `# eval \`${command}\`` : shell === 'powershell' ? `# & tmachine ${command.replace(/^tmachine /, '')} | Invoke-Expression` : `# eval "$(${command})"`;
  return [...lines, '# Run this command to configure your shell:', how].join('\n');
}
