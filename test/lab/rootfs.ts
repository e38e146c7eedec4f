// What the lab's containers run on, built offline once per lab run from
// Debian's busybox-static: a root filesystem (podman runs containers on it
// directly) and an OCI image archive of it (containerd imports it as the
// sandbox image; no registry is reachable).

import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';
import type { Lab } from './lab.js';

/** `build(lab)` run once per lab; a failure is not kept, so the next call tries again. */
function oncePerLab<T>(build: (lab: Lab) => Promise<T>): (lab: Lab) => Promise<T> {
  const byLab = new WeakMap<Lab, Promise<T>>();
  return (lab) => {
    let p = byLab.get(lab);
    if (!p) {
      p = build(lab);
      byLab.set(lab, p);
      p.catch(() => byLab.delete(lab));
    }
    return p;
  };
}

/** `<lab.dir>/rootfs`: /bin/busybox with every applet linked in /bin, minimal /etc. Never written by podman's containers (they run --read-only). */
export const busyboxRootfs = oncePerLab((lab) => buildRootfs(join(lab.dir, 'rootfs')));

async function buildRootfs(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await copyFile('/bin/busybox', join(bin, 'busybox'));
  await chmod(join(bin, 'busybox'), 0o755);
  const applets = (await run('/bin/busybox', ['--list'], { context: 'rootfs', timeoutMs: 5000 })).stdout
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => a && a !== 'busybox' && !a.includes('/'));
  await Promise.all(applets.map((a) => symlink('busybox', join(bin, a))));
  await symlink('bin', join(dir, 'sbin'));
  for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'root', 'var/tmp']) await mkdir(join(dir, d), { recursive: true });
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nnobody:x:65534:\n');
  // Targets of podman's bind mounts: a read-only rootfs cannot get them created.
  for (const f of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf']) await writeFile(join(dir, f), '');
  return dir;
}

/** The name containerd's CRI knows the lab's sandbox image by (config `sandbox_image`); never pulled. */
export const SANDBOX_IMAGE = 'localhost/weft-pause:1';

export interface ImageArchive {
  /** An OCI image-layout tar for `ctr images import`. */
  readonly file: string;
  /** The name it is imported under. */
  readonly name: string;
}

/** One blob of the layout: its bytes and their digest. */
interface Blob {
  readonly bytes: Buffer;
  readonly digest: string;
}

function blobOf(bytes: Buffer): Blob {
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

const GO_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/**
 * `<lab.dir>/image/sandbox.tar`: the busybox rootfs as one uncompressed
 * layer, running `sleep inf` as the pause process does. The index carries
 * containerd's own name annotation, which its importer takes as is (with
 * only the OCI ref name, `ctr` would prefix it).
 */
export const sandboxImage = oncePerLab(async (lab): Promise<ImageArchive> => {
  const rootfs = await busyboxRootfs(lab);
  const dir = join(lab.dir, 'image');
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  await run('tar', ['-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', layerTar, '.'], { context: 'sandbox image', timeoutMs: 30_000 });
  const layer = blobOf(await readFile(layerTar));
  const architecture = GO_ARCH[process.arch] ?? process.arch;
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture,
        os: 'linux',
        config: { Entrypoint: ['/bin/sleep', 'inf'], Env: ['PATH=/bin'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.bytes.length }],
      }),
    ),
  );
  await rename(layerTar, join(blobs, layer.digest.slice('sha256:'.length)));
  for (const b of [config, manifest]) await writeFile(join(blobs, b.digest.slice('sha256:'.length)), b.bytes);
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifest.digest,
          size: manifest.bytes.length,
          platform: { architecture, os: 'linux' },
          annotations: { 'io.containerd.image.name': SANDBOX_IMAGE },
        },
      ],
    }),
  );
  const file = join(dir, 'sandbox.tar');
  await run('tar', ['-C', layout, '-cf', file, 'oci-layout', 'index.json', 'blobs'], { context: 'sandbox image', timeoutMs: 30_000 });
  return { file, name: SANDBOX_IMAGE };
});
