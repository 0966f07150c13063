/** Types of system-packages.js (plain JavaScript so that `npm test`'s provisioning step needs no compiler). */
export interface SystemPackage {
  pkg: string;
  name: string;
  suites: string;
  find(): string | null;
}
export declare const SYSTEM_PACKAGES: SystemPackage[];
export declare function findChromium(): string | null;
export declare function findPostgresBin(): string | null;
export declare function findRedisServer(): string | null;
export declare function missingPackages(): SystemPackage[];
export declare function packagesRequired(): boolean;
export declare function installCommand(pkgs: string[]): string;
