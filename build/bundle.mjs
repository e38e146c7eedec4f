// The bundles the build makes from tsc's output (dist/): the CNI plugin (dist/cni/plugin.cjs) and
// weftd (dist/weftd.cjs, its bin), each one CommonJS file with its npm dependencies, so Node reads
// one file instead of resolving and reading a module graph (weftd's start: bench/README.md). weftd's
// etcd client gets its gRPC definition from a descriptor made here instead of parsing rpc.proto at
// every start (src/registry/etcd_grpc_definition.ts).

import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const ETCD_RPC = 'weft-etcd-rpc';

/**
 * The etcd client's `@grpc/proto-loader` import, answered by a module serving rpc.proto's services
 * from its descriptor. grpc-js's own imports of it (channelz and ORCA, server side, required lazily,
 * never by a client) stay outside the bundle.
 */
const etcdRpc = {
  name: ETCD_RPC,
  setup(b) {
    b.onResolve({ filter: /^@grpc\/proto-loader$/ }, (a) => (/[\\/]etcd3[\\/]lib[\\/]/.test(a.importer) ? { path: 'rpc.proto', namespace: ETCD_RPC } : { path: a.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: ETCD_RPC }, () => {
      const proto = join(dirname(require.resolve('etcd3/package.json')), 'proto/rpc.proto');
      const json = new protobuf.Root().loadSync(proto, { keepCase: true }).toJSON();
      return {
        resolveDir: ROOT,
        loader: 'js',
        contents: [
          `import { grpcServices } from './dist/registry/etcd_grpc_definition.js';`,
          `const RPC = ${JSON.stringify(json)};`,
          'export function loadSync(file, options) {',
          `  if (!/[\\\\/]rpc\\.proto$/.test(file)) throw new Error('the bundled etcd definition serves rpc.proto only, not ' + file);`,
          '  return grpcServices(RPC, options);',
          '}',
        ].join('\n'),
      };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  metafile: true,
  // import.meta.url, which src/tree.ts and the addon's loader use, is the bundle's own URL.
  define: { 'import.meta.url': 'import_meta_url' },
  inject: [join(ROOT, 'build/import_meta_url.js')],
};

await build({ ...common, entryPoints: [join(ROOT, 'dist/cni/main.js')], outfile: join(ROOT, 'dist/cni/plugin.cjs') });

// Whitespace and syntax minified (names kept, so stack traces still read): V8 keeps a script's
// source for as long as it runs, and this is 0.9 MB less of it. Minified names cost more than
// they save (each weftd held 1.2 MB more with them, measured on the lab).
const weftd = await build({
  ...common,
  entryPoints: [join(ROOT, 'dist/cli/weftd.js')],
  outfile: join(ROOT, 'dist/weftd.cjs'),
  plugins: [etcdRpc],
  minifyWhitespace: true,
  minifySyntax: true,
});
const inputs = Object.keys(weftd.metafile.inputs);
if (!inputs.some((i) => i.startsWith(`${ETCD_RPC}:`)) || inputs.some((i) => i.includes('@grpc/proto-loader'))) {
  throw new Error('build/bundle.mjs: the etcd client no longer imports @grpc/proto-loader as expected; its rpc.proto would be parsed at every start');
}
chmodSync(join(ROOT, 'dist/weftd.cjs'), 0o755);
