// The import graph of src/ points one way: cli -> daemon/cni/check -> observe ->
// registry/dataplane -> host -> routes/wireguard -> wire/net -> the root files
// (constants, errors, log, version, clock). A module may import its own
// folder or a lower layer, never a higher one or a sibling of its layer.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(new URL('../../src', import.meta.url).pathname);

/** Each folder's layer; higher may import lower. */
const LAYER: Readonly<Record<string, number>> = {
  '.': 0,
  net: 1,
  wire: 1,
  routes: 2,
  wireguard: 2,
  host: 3,
  dataplane: 4,
  registry: 4,
  observe: 5,
  daemon: 6,
  cni: 6,
  check: 6,
  cli: 7,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Every relative module a file imports, statically or with import(). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1]!);
}

function folder(file: string): string {
  return relative(SRC, dirname(file)) || '.';
}

describe('layering of src/', () => {
  it('every folder has a layer', () => {
    const folders = new Set(sources(SRC).map(folder));
    expect([...folders].filter((f) => LAYER[f] === undefined)).toEqual([]);
  });

  it('no import points up a layer or across to a sibling', () => {
    const wrong: string[] = [];
    for (const file of sources(SRC)) {
      const from = folder(file);
      for (const spec of imports(file)) {
        const to = folder(resolve(dirname(file), spec));
        if (to !== from && !(LAYER[to]! < LAYER[from]!)) wrong.push(`${relative(SRC, file)} imports ${spec} (${from} ${LAYER[from]} -> ${to} ${LAYER[to]})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('sees the imports it checks', () => {
    // A regex that matched nothing would pass the test above vacuously.
    expect(imports(join(SRC, 'cli/weftctl.ts'))).toContain('../registry/etcd_registry.js');
    expect(imports(join(SRC, 'daemon/daemon.ts'))).toContain('./seams.js');
  });
});
