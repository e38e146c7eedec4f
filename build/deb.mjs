// `npm run package`: weft_<version>_<arch>.deb from this tree, offline, with dpkg-deb. What goes
// where (docs/install.md, "What the package installs"):
//
//   /usr/lib/weft                     the built tree: dist/ (weftd's bundle, weftctl's modules, the
//                                     CNI plugin's bundle), the addon, proto/, package.json and the
//                                     production dependencies (package-lock.json's, as npm ci
//                                     --omit=dev installs them)
//   /usr/bin/weftd, /usr/bin/weftctl  links to their bins
//   /usr/lib/systemd/system/weftd.service, /etc/weft/weftd.env (conffile, 0600)
//   /usr/lib/cni/weft                 the CNI plugin, beside Debian's (containernetworking-plugins)
//   /usr/lib/tmpfiles.d/weft.conf     /run/weft; /var/lib/weft is in the package
//   /usr/share/man/man8, /usr/share/doc/weft
//
//   node build/deb.mjs [--out DIR]    (DIR: where the .deb goes, default the tree's root)
//
// The tree must be built first (npm run build; npm run package does both). Maintainer:
// DEBFULLNAME and DEBEMAIL, as Debian's tools take it.

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = join(ROOT, 'build/deb');
const LIB = 'usr/lib/weft';
const UNIT = 'usr/lib/systemd/system/weftd.service';
const ENV_FILE = 'etc/weft/weftd.env';
/** What weft needs at run time besides its own files and the addon's libraries (dpkg-shlibdeps). */
const DEPENDS = ['nodejs (>= 20)', 'iproute2', 'nftables | iptables', 'containernetworking-plugins'];

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const run = (file, args, opts = {}) => execFileSync(file, args, { encoding: 'utf8', ...opts }).trim();

function outDir() {
  const k = process.argv.indexOf('--out');
  return k > 0 ? process.argv[k + 1] : ROOT;
}

function mustExist(rel, how) {
  if (!existsSync(join(ROOT, rel))) throw new Error(`build/deb.mjs: ${rel} is missing: ${how}`);
}

/** Copies `from` (a file or directory of the tree) to `to` in the package, the files `filter` takes (paths relative to `from`). */
function put(stage, from, to, filter = () => true) {
  mkdirSync(dirname(join(stage, to)), { recursive: true });
  cpSync(join(ROOT, from), join(stage, to), { recursive: true, dereference: true, filter: (src) => filter(relative(join(ROOT, from), src)) });
}

const gzip = (text) => gzipSync(text, { level: 9 });

function sourceDateEpoch() {
  if (process.env.SOURCE_DATE_EPOCH) return process.env.SOURCE_DATE_EPOCH;
  try {
    return run('git', ['-C', ROOT, 'log', '-1', '--format=%ct'], { stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return String(Math.floor(Date.now() / 1000));
  }
}

/** Every entry of the package's tree but DEBIAN/, each directory's by name, a directory before what it holds: [path under the stage, Dirent]. */
function* packageEntries(stage, rel = '') {
  for (const e of readdirSync(join(stage, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(rel, e.name);
    if (p === 'DEBIAN') continue;
    yield [p, e];
    if (e.isDirectory()) yield* packageEntries(stage, p);
  }
}

/** Every file and directory of the package normalised: directories 0755, files 0644, `executables` 0755. */
function normaliseModes(stage, executables) {
  for (const [p, e] of packageEntries(stage)) {
    if (!e.isSymbolicLink()) chmodSync(join(stage, p), e.isDirectory() || executables.has(p) ? 0o755 : 0o644);
  }
}

/** The production dependencies as package-lock.json records them (what `npm ci --omit=dev` installs). */
function productionModules() {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && !p.devOptional && existsSync(join(ROOT, path)))
    .map(([path, p]) => ({ path, name: path.replace(/^.*node_modules\//, ''), version: p.version, license: p.license ?? 'see its directory' }));
}

const MODULE_LEGAL = /^(licen[cs]e|copying|notice|authors)/i;
const MODULE_NOT_RUN = /^(test|tests|__tests__|benchmarks?|docs?|examples?)$/;

/**
 * A module's files the package carries: what runs and its legal texts; not its nested modules
 * (each is a module of its own), TypeScript sources and declarations, source maps, its own
 * documentation, tests and examples, or dotfiles (.npmignore, .gitattributes, ...).
 */
function moduleFile(rel) {
  if (rel === '') return true;
  const parts = rel.split('/');
  const base = parts.at(-1);
  if (parts.some((p) => p.startsWith('.') || p === 'node_modules' || MODULE_NOT_RUN.test(p))) return false;
  if (MODULE_LEGAL.test(base)) return true;
  return !/\.(ts|mts|cts|map|md|markdown|html)$/.test(base);
}

/** Removes the directories under `rel` left empty by moduleFile's choice; whether `rel` itself ended empty. */
function pruneEmpty(stage, rel) {
  let empty = true;
  for (const e of readdirSync(join(stage, rel), { withFileTypes: true })) {
    if (e.isDirectory() && pruneEmpty(stage, join(rel, e.name))) rmSync(join(stage, rel, e.name), { recursive: true });
    else empty = false;
  }
  return empty;
}

/** The #! scripts under `rel`: executable, as scripts are (modules' command-line entry points among them). */
function scriptsIn(stage, rel) {
  return readdirSync(join(stage, rel), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && readFileSync(join(e.parentPath ?? e.path, e.name)).subarray(0, 2).toString() === '#!')
    .map((e) => relative(stage, join(e.parentPath ?? e.path, e.name)));
}

/** The man page (section 8) of a command, from its --help text: usage and commands as written, each flag a tagged paragraph. */
function manPage(command, summary, help, seeAlso) {
  const esc = (s) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/, '\\&$1');
  const lines = [`.TH ${command.toUpperCase()} 8 "" "weft ${pkg.version}" "weft"`, '.SH NAME', `${command} \\- ${esc(summary)}`, '.SH SYNOPSIS', '.nf'];
  let inFlags = false;
  for (const line of help.split('\n')) {
    if (/^Flags/.test(line)) {
      lines.push('.fi', '.SH OPTIONS', esc(line.replace(/:$/, '.')));
      inFlags = true;
      continue;
    }
    const flag = inFlags ? /^ {2}(--\S+)( VALUE)?\s{2,}(.*)$/.exec(line) : null;
    if (flag) lines.push('.TP', `\\fB${esc(flag[1])}\\fR${flag[2] ? ' \\fIVALUE\\fR' : ''}`, esc(flag[3]));
    else if (!inFlags) lines.push(line === '' ? '' : esc(line.replace(/^Usage: /, '')));
  }
  if (!inFlags) lines.push('.fi');
  lines.push('.SH FILES', '.TP', esc('/etc/weft/weftd.env'), esc("weftd's settings, one WEFT_* variable per flag, read by the systemd unit weftd.service"));
  lines.push('.SH SEE ALSO', seeAlso.map((r) => `.BR ${r.replace('(', ' (')}`).join(',\n'), '.PP', esc('/usr/share/doc/weft/install.md.gz'));
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
}

function changelog(maintainer, date) {
  const commit = (() => {
    try {
      return run('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return undefined;
    }
  })();
  return [`weft (${pkg.version}) unstable; urgency=medium`, '', `  * Built from weft ${pkg.version}${commit ? ` (commit ${commit})` : ''} by npm run package.`, '', ` -- ${maintainer}  ${date}`, ''].join('\n');
}

function copyright(modules, year) {
  const list = modules.map((m) => `  ${m.name} ${m.version}: ${m.license}`).join('\n');
  return `weft: a userspace overlay network for Kubernetes-style pod networking.

Copyright ${year} the weft developers.

weft is licensed under the Apache License, version 2.0; its text is in
/usr/share/common-licenses/Apache-2.0.

/usr/lib/weft/node_modules holds the npm modules weft runs, each with its
licence text in its own directory; /usr/lib/weft/dist/weftd.cjs and
/usr/lib/weft/dist/cni/plugin.cjs bundle code from them. Module, version and
licence:

${list}
`;
}

function controlFile(fields) {
  return `${Object.entries(fields)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n')}\n`;
}

/** The addon's library dependencies, as dpkg-shlibdeps finds them (it wants a debian/control beside it). */
function shlibDepends(stage, addon) {
  const work = mkdtempSync(join(tmpdir(), 'weft-shlibdeps-'));
  try {
    mkdirSync(join(work, 'debian'));
    writeFileSync(join(work, 'debian/control'), 'Source: weft\n\nPackage: weft\nArchitecture: any\n');
    const out = run('dpkg-shlibdeps', ['-O', `-e${join(stage, addon)}`], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    const deps = /^shlibs:Depends=(.*)$/m.exec(out)?.[1];
    if (!deps) throw new Error(`dpkg-shlibdeps gave no dependencies for ${addon}: ${out}`);
    return deps.split(', ');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function md5sums(stage) {
  const lines = [];
  for (const [p, e] of packageEntries(stage)) {
    if (e.isFile()) lines.push(`${createHash('md5').update(readFileSync(join(stage, p))).digest('hex')}  ${p}`);
  }
  return `${lines.join('\n')}\n`;
}

function installedSizeKiB(stage) {
  let bytes = 0;
  for (const [p, e] of packageEntries(stage)) if (!e.isDirectory()) bytes += lstatSync(join(stage, p)).size;
  return Math.ceil(bytes / 1024);
}

async function main() {
  mustExist('dist/weftd.cjs', 'run npm run build');
  mustExist('dist/cni/plugin.cjs', 'run npm run build');
  mustExist('native/build/Release/weft.node', 'run npm run build:native');
  const { renderPluginScript } = await import(join(ROOT, 'dist/cni/install.js'));
  const arch = run('dpkg', ['--print-architecture']);
  const maintainer = `${process.env.DEBFULLNAME ?? 'weft developers'} <${process.env.DEBEMAIL ?? 'weft@example.org'}>`;
  const epoch = sourceDateEpoch();
  const date = run('date', ['-R', '-u', '-d', `@${epoch}`]);
  const stage = mkdtempSync(join(tmpdir(), 'weft-deb-'));
  try {
    chmodSync(stage, 0o755);
    // The built tree.
    const lib = join(stage, LIB);
    mkdirSync(lib, { recursive: true });
    const { name, version, description, type, license, engines, bin, dependencies } = pkg;
    writeFileSync(join(lib, 'package.json'), `${JSON.stringify({ name, version, description, type, license, engines, bin, dependencies }, null, 2)}\n`);
    // dist/cli/weftd.js is the bundle's entry, not run: weftd is dist/weftd.cjs.
    put(stage, 'dist', join(LIB, 'dist'), (rel) => !rel.endsWith('.map') && rel !== 'cli/weftd.js');
    put(stage, 'proto', join(LIB, 'proto'));
    const addon = join(LIB, 'native/build/Release/weft.node');
    mkdirSync(dirname(join(stage, addon)), { recursive: true });
    copyFileSync(join(ROOT, 'native/build/Release/weft.node'), join(stage, addon));
    run('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', join(stage, addon)]);
    const modules = productionModules();
    for (const m of modules) put(stage, m.path, join(LIB, m.path), moduleFile);
    pruneEmpty(stage, join(LIB, 'node_modules'));

    // Commands, unit, settings, CNI plugin, directories.
    mkdirSync(join(stage, 'usr/bin'), { recursive: true });
    symlinkSync('../lib/weft/dist/weftd.cjs', join(stage, 'usr/bin/weftd'));
    symlinkSync('../lib/weft/dist/cli/weftctl.js', join(stage, 'usr/bin/weftctl'));
    put(stage, 'systemd/weftd.service', UNIT);
    put(stage, 'systemd/weftd.env.example', ENV_FILE);
    mkdirSync(join(stage, 'usr/lib/cni'), { recursive: true });
    writeFileSync(join(stage, 'usr/lib/cni/weft'), renderPluginScript('/usr/bin/node', `/${LIB}/dist/cni/plugin.cjs`));
    put(stage, 'build/deb/weft.tmpfiles', 'usr/lib/tmpfiles.d/weft.conf');
    mkdirSync(join(stage, 'var/lib/weft'), { recursive: true });

    // Documentation.
    const doc = join(stage, 'usr/share/doc/weft');
    mkdirSync(doc, { recursive: true });
    writeFileSync(join(doc, 'copyright'), copyright(modules, new Date(Number(epoch) * 1000).getUTCFullYear()));
    writeFileSync(join(doc, 'changelog.gz'), gzip(changelog(maintainer, date)));
    const docs = existsSync(join(ROOT, 'docs')) ? readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`) : [];
    for (const d of ['README.md', ...docs]) writeFileSync(join(doc, `${d.replace(/^docs\//, '')}.gz`), gzip(readFileSync(join(ROOT, d))));
    const man = join(stage, 'usr/share/man/man8');
    mkdirSync(man, { recursive: true });
    const help = (cmd) => run(join(ROOT, cmd), ['--help']);
    writeFileSync(join(man, 'weftd.8.gz'), gzip(manPage('weftd', 'the weft overlay network daemon', help('dist/weftd.cjs'), ['weftctl(8)', 'systemctl(1)'])));
    writeFileSync(join(man, 'weftctl.8.gz'), gzip(manPage('weftctl', 'configure and inspect a weft network', help('dist/cli/weftctl.js'), ['weftd(8)'])));

    normaliseModes(stage, new Set(scriptsIn(stage, 'usr')));
    chmodSync(join(stage, ENV_FILE), 0o600);

    // Control area.
    const debian = join(stage, 'DEBIAN');
    mkdirSync(debian);
    for (const script of ['postinst', 'prerm', 'postrm']) {
      copyFileSync(join(HERE, script), join(debian, script));
      chmodSync(join(debian, script), 0o755);
    }
    writeFileSync(join(debian, 'conffiles'), `/${ENV_FILE}\n`);
    writeFileSync(join(debian, 'md5sums'), md5sums(stage));
    writeFileSync(
      join(debian, 'control'),
      controlFile({
        Package: 'weft',
        Version: version,
        Architecture: arch,
        Maintainer: maintainer,
        'Installed-Size': installedSizeKiB(stage),
        Depends: [...DEPENDS, ...shlibDepends(stage, addon)].join(', '),
        Section: 'net',
        Priority: 'optional',
        Description: [
          'userspace overlay network for Kubernetes-style pod networking',
          'weft gives each node a pod subnet leased in etcd and carries pod traffic',
          'between nodes in VXLAN-GPE over UDP: weftd, one per node (a systemd',
          'service), weftctl to configure and inspect the network, and a CNI plugin',
          'for container runtimes (containerd, CRI-O, podman).',
        ].join('\n '),
      }),
    );
    for (const f of ['control', 'conffiles', 'md5sums']) chmodSync(join(debian, f), 0o644);

    const out = join(outDir(), `weft_${version}_${arch}.deb`);
    run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    process.stdout.write(`${out}\n`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`build/deb.mjs: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
