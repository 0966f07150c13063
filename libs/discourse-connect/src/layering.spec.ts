import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

/**
 * The library's layering (docs/ARCHITECTURE.md), checked on every import of every source file:
 * which part may depend on which, that only `http/` and `session/` know the HTTP adapter, that the
 * protocol imports nothing of Nest, and that background work never touches HTTP exceptions.
 */
const SRC = __dirname;

/** Part → the parts it may import (besides itself). `defs` = the root's option and token files. */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  common: [],
  defs: ['config', 'users', 'sync'],
  config: ['common', 'defs'],
  hooks: ['common', 'config', 'defs', 'users', 'protocol', 'jsconnect'],
  users: ['common', 'config', 'defs', 'protocol'],
  payload: ['common', 'config', 'defs', 'users', 'hooks', 'protocol'],
  admin: ['common', 'config', 'defs', 'users', 'hooks', 'payload', 'protocol'],
  redis: ['common', 'config', 'defs'],
  sync: ['common', 'config', 'defs', 'users', 'hooks', 'payload', 'admin', 'redis'],
  session: ['common', 'config', 'defs', 'users', 'hooks', 'redis'],
  http: ['common', 'config', 'defs', 'users', 'hooks', 'session', 'redis', 'protocol'],
  discord: ['common', 'config', 'defs', 'users', 'hooks', 'session', 'http', 'sync'],
  sso: [
    'common',
    'config',
    'defs',
    'users',
    'hooks',
    'payload',
    'session',
    'http',
    'discord',
    'protocol',
  ],
  webhooks: ['common', 'config', 'defs', 'users', 'hooks', 'http', 'lifecycle'],
  lifecycle: ['common', 'config', 'defs', 'users', 'hooks', 'admin', 'sync', 'session'],
  health: ['common', 'config', 'defs', 'sync', 'redis', 'http', 'bot'],
  bot: ['common', 'config', 'defs', 'users', 'hooks', 'sync', 'redis'],
  migrations: [],
  jsconnect: ['common'],
  vanilla: [
    'common',
    'config',
    'defs',
    'users',
    'hooks',
    'payload',
    'session',
    'http',
    'discord',
    'jsconnect',
  ],
};
const ENTRY_POINTS = ['index.ts', 'internal.ts', 'discourse-connect.module.ts'];
const ADAPTER_PACKAGES = /^(express|express-session|fastify|@fastify\/.*|@nestjs\/platform-.*)$/;
const ADAPTER_AWARE = new Set(['http', 'session']);
const BACKGROUND = new Set(['admin', 'users', 'sync', 'redis', 'config', 'bot']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [path] : [];
  });
}

function partOf(file: string): string {
  const rel = relative(SRC, file);
  if (!rel.includes('/')) return ENTRY_POINTS.includes(rel) ? 'entry' : 'defs';
  return rel.split('/')[0];
}

const imports = sourceFiles(SRC).flatMap((file) =>
  [
    ...readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;']*?(?:from )?'([^']+)';/gms),
  ].map((m) => ({
    file: relative(SRC, file),
    from: partOf(file),
    spec: m[1],
    target: m[1].startsWith('.') ? normalize(join(dirname(file), m[1])) : null,
  })),
);

describe('layering of the library', () => {
  it('every part imports only the parts it may depend on', () => {
    const broken = imports
      .filter((i) => i.target && i.from !== 'entry')
      .map((i) => ({ ...i, to: partOf(i.target! + '.ts') }))
      .filter((i) => i.to !== i.from && !(ALLOWED[i.from] ?? []).includes(i.to))
      .map((i) => `${i.file} (${i.from}) → ${i.spec} (${i.to})`);
    expect(broken).toEqual([]);
  });

  it('has no cycle between folders', () => {
    const graph = new Map<string, Set<string>>();
    for (const i of imports.filter((i) => i.target && !['entry', 'defs'].includes(i.from))) {
      const to = partOf(i.target! + '.ts');
      if (to === i.from || to === 'entry' || to === 'defs') continue;
      graph.set(i.from, (graph.get(i.from) ?? new Set()).add(to));
    }
    const reaches = (from: string, to: string, seen = new Set<string>()): boolean =>
      [...(graph.get(from) ?? [])].some(
        (next) => next === to || (!seen.has(next) && (seen.add(next), reaches(next, to, seen))),
      );
    const cycles = [...graph].flatMap(([from, tos]) =>
      [...tos].filter((to) => reaches(to, from)).map((to) => `${from} ⇄ ${to}`),
    );
    expect(cycles).toEqual([]);
  });

  it('the root definitions (options, tokens) import other parts for their types only', () => {
    const broken = imports
      .filter((i) => i.from === 'defs' && i.target && partOf(i.target + '.ts') !== 'defs')
      .filter(
        (i) =>
          !new RegExp(
            `^import type [^;]*'${i.spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`,
            'm',
          ).test(readFileSync(join(SRC, i.file), 'utf8')),
      )
      .map((i) => `${i.file} → ${i.spec}`);
    expect(broken).toEqual([]);
  });

  it('knows every part', () => {
    const parts = new Set(imports.map((i) => i.from).filter((p) => p !== 'entry'));
    expect([...parts].filter((p) => !(p in ALLOWED))).toEqual([]);
  });

  it('only http/ and session/ import the HTTP adapter', () => {
    const broken = imports
      .filter((i) => !i.target && ADAPTER_PACKAGES.test(i.spec) && !ADAPTER_AWARE.has(i.from))
      .map((i) => `${i.file} → ${i.spec}`);
    expect(broken).toEqual([]);
  });

  it('the protocol imports nothing of Nest or TypeORM', () => {
    const broken = imports
      .filter((i) => i.from === 'protocol' && !i.target && !i.spec.startsWith('node:'))
      .map((i) => `${i.file} → ${i.spec}`);
    expect(broken).toEqual([]);
  });

  it('the jsConnect codec imports nothing but node: modules and jose', () => {
    const broken = imports
      .filter((i) => i.from === 'jsconnect' && !i.target)
      .filter((i) => !i.spec.startsWith('node:') && i.spec !== 'jose')
      .map((i) => `${i.file} → ${i.spec}`);
    expect(broken).toEqual([]);
  });

  it('background work never throws HTTP exceptions', () => {
    const broken = sourceFiles(SRC)
      .filter((f) => BACKGROUND.has(partOf(f)))
      .filter((f) =>
        /\bHttpException\b|discourse-connect\.exceptions'/.test(readFileSync(f, 'utf8')),
      )
      .map((f) => relative(SRC, f));
    expect(broken).toEqual([]);
  });
});
