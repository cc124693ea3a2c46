/** Environment for a tmachine run whose AWS credential chain sees only the given keys: no real profile, no instance metadata. */
import path from 'node:path';

export function isolatedAwsEnv(noHome: string, credentials?: { accessKeyId: string; secretAccessKey: string }): Record<string, string | undefined> {
  return {
    AWS_ACCESS_KEY_ID: credentials?.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials?.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_REGION: undefined,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: path.join(noHome, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(noHome, 'credentials'),
  };
}
