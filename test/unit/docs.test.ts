// The docs against the code: every flag, weftctl command, log event and
// metric the README and docs/ name exists, and every one the code has is
// documented (flags and their variables in docs/configuration.md, events in
// docs/metrics.md, metrics in a table row of any page); every relative link
// points at a file that exists, and each page opens with a line saying what
// it is for.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type FlagSpec, envName } from '../../src/cli/flags.js';
import { WEFTCTL_COMMANDS, WEFTCTL_FLAGS } from '../../src/cli/weftctl_flags.js';
import { WEFTD_FLAGS } from '../../src/cli/weftd_flags.js';
import { renderMetrics } from '../../src/observe/metrics.js';
import { sampleStatus } from '../harness/status_fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (page: string): string => readFileSync(join(ROOT, page), 'utf8');

/** Flags of other programs that the docs name, with the program: anything else that looks like a flag must be weft's. */
const FOREIGN_FLAGS: Readonly<Record<string, string>> = {
  '--prefix': 'etcdctl get --prefix',
  '--print-value-only': 'etcdctl',
  '--client-cert-auth': 'etcd',
  '--initial-cluster-state': 'etcd',
  '--peer-urls': 'etcdctl member add',
  '--network': 'podman run --network (also weftctl init --network)',
  '--rm': 'podman run --rm',
  '--max-semi-space-size': 'node',
  '--v8-pool-size': 'node',
  '--jitless': 'node',
  '--expose_wasm': 'node (a warning it prints under --jitless)',
  '--random-fully': 'iptables -j MASQUERADE',
  '--nodedir': 'node-gyp',
  '--no-block': 'systemctl',
  '--now': 'systemctl enable --now',
  '--volatile': 'systemd-nspawn',
  '--network-namespace-path': 'systemd-nspawn',
  '--no-expose-wasm': 'node (on weftd\'s #! line)',
  '--omit': 'npm ci --omit=dev',
  '--out': 'node build/deb.mjs --out DIR (npm run package)',
  '--info': 'lintian --info',
};

/** Every `--flag` token of a page, with its line number. */
function flagsIn(page: string): { flag: string; line: number }[] {
  return text(page)
    .split('\n')
    .flatMap((l, i) => [...l.matchAll(/(?<![\w-])--([a-z][a-z0-9_-]*[a-z0-9])/g)].map((m) => ({ flag: `--${m[1]}`, line: i + 1 })));
}

/** The code of a page: each line of its fenced blocks and each inline code span, with its line number. */
function codeIn(page: string): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  let fenced = false;
  text(page)
    .split('\n')
    .forEach((l, i) => {
      if (l.trimStart().startsWith('```')) fenced = !fenced;
      else if (fenced) out.push({ code: l, line: i + 1 });
      else for (const m of l.matchAll(/`([^`]+)`/g)) out.push({ code: m[1]!, line: i + 1 });
    });
  return out;
}

const weftFlags = new Map<string, FlagSpec>([...WEFTD_FLAGS, ...WEFTCTL_FLAGS].map((f) => [`--${f.name}`, f]));

describe('docs against the code', () => {
  it('every page opens with its title and one line saying what it is for', () => {
    for (const page of PAGES.filter((p) => p.startsWith('docs/'))) {
      const [title, blank, purpose] = text(page).split('\n');
      expect(title, page).toMatch(/^# \S/);
      expect(blank, page).toBe('');
      expect(purpose, page).toMatch(/^[A-Z`[].{20,}/);
    }
  });

  it('names no flag the CLI does not know, but for the listed flags of other programs', () => {
    const unknown = PAGES.flatMap((page) => flagsIn(page).filter((f) => !weftFlags.has(f.flag) && !(f.flag in FOREIGN_FLAGS)).map((f) => `${page}:${f.line}: ${f.flag}`));
    expect(unknown).toEqual([]);
  });

  it('documents every weftd and weftctl flag, and every variable that sets one, in the configuration reference', () => {
    const reference = text('docs/configuration.md');
    const missing = [...weftFlags.values()].flatMap((f) => [
      ...(reference.includes(`\`--${f.name}\``) ? [] : [`--${f.name}`]),
      ...(f.env === false || reference.includes(envName(f.name)) ? [] : [envName(f.name)]),
    ]);
    expect(missing).toEqual([]);
  });

  it('runs weftctl only with commands it has', () => {
    const commands = new Set(WEFTCTL_COMMANDS.map((c) => c.split(' ')[0]));
    const bad: string[] = [];
    for (const page of PAGES) {
      for (const { code, line } of codeIn(page)) {
        for (const m of code.matchAll(/(?:^|[\s$(])weftctl((?:\s+[^\s#|]+)*)/g)) {
          const words = m[1]!.trim().split(/\s+/).filter((w) => w !== '');
          // Skip flags (and a string flag's value) up to the command word.
          let k = 0;
          while (k < words.length && /^(--|\[|\.\.\.)/.test(words[k]!)) {
            if (words[k]!.startsWith('[')) {
              while (k < words.length && !words[k]!.endsWith(']')) k++;
              k++;
              continue;
            }
            const spec = weftFlags.get(words[k]!.split('=')[0]!);
            k += spec?.type === 'string' && !words[k]!.includes('=') ? 2 : 1;
          }
          const word = words[k];
          if (word && /^[a-z]/.test(word) && !commands.has(word)) bad.push(`${page}:${line}: weftctl ${word}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('lists every log event weftd emits, and no other', () => {
    const src = readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'))
      .join('\n');
    const emitted = new Set([...src.matchAll(/event: '([a-z_]+)'/g)].map((m) => m[1]!));
    const logs = text('docs/metrics.md').split('## Counters')[0]!;
    const documented = new Set([...logs.matchAll(/`([a-z]+(?:_[a-z]+)*)`/g)].map((m) => m[1]!).filter((e) => emitted.has(e) || /^[a-z]+_[a-z_]+$/.test(e)));
    expect([...emitted].filter((e) => !documented.has(e)).sort()).toEqual([]);
    const fields = new Set(['waiting_s', 'waited_s', 'public_ip', 'retry_ms']);
    expect([...documented].filter((e) => !emitted.has(e) && !fields.has(e)).sort()).toEqual([]);
  });

  it('lists every metric /metrics serves (weft_*) under either engine, and no other', () => {
    const kernel = sampleStatus({
      engine: { kind: 'kernel', details: { device: 'weft0', vnifilter: true, firewall: 'nftables', routes: 2, unroutablePeers: 0, deviceRepairs: 0, deviceRxErrors: 0, deviceRxDropped: 0, deviceTxErrors: 0, deviceTxDropped: 0 } },
    });
    const served = new Set([sampleStatus(), kernel].flatMap((s) => [...renderMetrics(s).matchAll(/^# TYPE (weft_\w+)/gm)].map((m) => m[1]!)));
    const rows = PAGES.flatMap((page) =>
      text(page)
        .split('\n')
        .filter((l) => l.startsWith('| `weft_')),
    );
    const documented = new Set(rows.flatMap((r) => [...r.split('|')[1]!.matchAll(/`(weft_\w+)/g)].map((m) => m[1]!)));
    expect([...served].filter((m) => !documented.has(m)).sort()).toEqual([]);
    expect([...documented].filter((m) => !served.has(m)).sort()).toEqual([]);
  });

  it('links only to files that exist', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      for (const m of text(page).matchAll(/\]\(([^)#\s]+)(#[^)\s]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(resolve(join(ROOT, dirname(page)), target))) broken.push(`${page}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
