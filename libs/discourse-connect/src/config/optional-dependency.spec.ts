import { DiscourseConnectConfigurationError } from './configuration.error';
import { loadOptionalDependency } from './optional-dependency';

describe('loadOptionalDependency', () => {
  it('loads an installed optional peer', () => {
    expect(
      loadOptionalDependency<typeof import('ioredis')>('ioredis', 'Redis').Redis,
    ).toBeInstanceOf(Function);
  });

  it('names the missing package and the command that installs it', () => {
    const load = () =>
      loadOptionalDependency('dc-optional-peer-that-is-not-installed', 'The Redis sync queue');
    expect(load).toThrow(DiscourseConnectConfigurationError);
    expect(load).toThrow(
      'The Redis sync queue needs the package "dc-optional-peer-that-is-not-installed", which is not installed. Install it in your app: npm install dc-optional-peer-that-is-not-installed',
    );
  });
});
