// A conflist without weft, for the runtime harnesses' own checks: Debian's
// bridge (cni0, the subnet's gateway and default route, no masquerade,
// hairpin, MTU 1464) with host-local, then portmap.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

function bridgeConflist(name: string, subnet: string, dataDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        isDefaultGateway: true,
        ipMasq: false,
        hairpinMode: true,
        mtu: 1464,
        ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
}

/** Writes it as `<confDir>/<name>.conflist`, making the dir. */
export async function installBridgeConflist(confDir: string, name: string, subnet: string, dataDir: string): Promise<void> {
  await mkdir(confDir, { recursive: true });
  await writeFile(join(confDir, `${name}.conflist`), bridgeConflist(name, subnet, dataDir));
}
