import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Lab } from './lab.js';
import { Podman } from './podman.js';
const mode = process.argv[2];
const lab = await Lab.create({ nodes: 1, name: 'emerg' });
const network = `weft-${lab.prefix}-n1`;
const confDir = join(lab.dir, 'n1', 'cni');
await mkdir(confDir, { recursive: true });
await writeFile(join(confDir, 'x.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: network, plugins: [{ type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '198.19.7.0/24' }]], dataDir: join(lab.dir, 'n1', 'ipam') } }] }));
const pm = await Podman.create(lab, 1, { network, confDir, pluginDirs: ['/usr/lib/cni'] });
for (const n of ['x', 'y']) { await pm.run(n, ['sleep', '600']); const i = await pm.inspect(n); console.log('STARTED', n, i.pid, i.conmonPid, i.netns); }
console.log('DIR', lab.dir, network);
if (mode === 'exit') process.exit(3);
if (mode === 'throw') throw new Error('boom');
await new Promise((r) => setTimeout(r, 60_000));
