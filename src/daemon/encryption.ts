// weftd's side of encryption: the node's WireGuard key (loaded or created at
// start), the mode the network config asks for, and bringing this node in
// line with it, at start and whenever the config changes (weftd's etcd
// probe reads it every ETCD_PROBE_MS), with no restart:
//
//   off -> wireguard[-only]: open the WireGuard port, lower the TUN and pod
//     MTU to underlay - 60, publish key and port in the lease, then speak
//     WireGuard to every peer that publishes a key too
//   wireguard[-only] -> off: take key and port out of the lease, speak
//     VXLAN-GPE to everyone, raise the MTU again (the port stays open: peers
//     that have not seen the lease yet still reach us until sessions end)
//   wireguard <-> wireguard-only: only whether VXLAN-GPE is refused
//
// Each step is retried at the next poll when it fails (etcd down, the port
// taken), so the node converges; what it runs with shows in /status.

import type { Logger } from 'pino';
import { ENCAP_OVERHEAD, type EncryptionMode } from '../constants.js';
import type { Engine } from '../dataplane/engine.js';
import { errorMessage } from '../errors.js';
import { loadOrCreateKey, writeKeyFile } from '../host/wireguard_key.js';
import type { LeaseKeeper } from '../registry/lease_keeper.js';
import type { LeaseManager } from '../registry/lease_manager.js';
import type { LeaseWatcher } from '../registry/lease_watcher.js';
import type { EncryptionStatus } from '../observe/status.js';
import type { SubnetLease } from '../registry/schema.js';
import { WG_OVERHEAD } from '../wireguard/constants.js';
import { formatKey, generateKeyPair, keyPair } from '../wireguard/keys.js';

/** The parts of a running weftd the mode is applied to. */
export interface EncryptionParts {
  readonly engine: Engine;
  readonly manager: LeaseManager;
  readonly keeper: LeaseKeeper;
  readonly watcher: LeaseWatcher;
  /** Sets the TUN's MTU and rewrites the subnet file with it. */
  setMtu(mtu: number): Promise<void>;
}

export interface EncryptionOptions {
  readonly stateDir: string;
  readonly port: number;
  readonly underlayMtu: number;
  /** --mtu: when given, the TUN's MTU in every mode. */
  readonly mtuFlag: number | undefined;
  readonly log: Logger;
}

export class EncryptionControl {
  private privateKey: Uint8Array;
  private publicKey: string;
  private wanted: EncryptionMode = 'off';
  /** What the node runs with; `published`: the key the lease carries ('' for none). */
  private applied = { portOpen: false, published: '', mtu: 0 };
  private parts: EncryptionParts | undefined;
  /** The lease value without WireGuard fields. */
  private base: SubnetLease | undefined;
  private running: Promise<void> | undefined;

  /** Loads the node's key, creating it on first start: WEFT_KEY_FILE when the file is unsafe. */
  constructor(private readonly o: EncryptionOptions) {
    const { privateKey, path, created } = loadOrCreateKey(o.stateDir);
    this.privateKey = privateKey;
    this.publicKey = formatKey(keyPair(privateKey).publicKey);
    o.log.info({ event: created ? 'wireguard_key_created' : 'wireguard_key_loaded', path, public_key: this.publicKey }, `WireGuard public key ${this.publicKey}`);
  }

  get key(): Uint8Array {
    return this.privateKey;
  }

  /** The TUN's and pods' MTU in `mode`: underlay - 60 with WireGuard, - 36 without, unless --mtu says. */
  mtuFor(mode: EncryptionMode): number {
    return this.o.mtuFlag ?? this.o.underlayMtu - (mode === 'off' ? ENCAP_OVERHEAD : WG_OVERHEAD);
  }

  /** The lease value in `mode`: `base` with key and port while encrypting. */
  leaseValue(base: SubnetLease, mode: EncryptionMode): SubnetLease {
    this.base = base;
    return mode === 'off' ? base : { ...base, wireguardPublicKey: this.publicKey, wireguardPort: this.o.port };
  }

  /**
   * Records what start-up applied (`mode`, with the lease and MTU written
   * for it), opens the port if the mode wants it (a port that cannot be
   * bound stops the start), and hands the route tables their setting.
   */
  async start(mode: EncryptionMode, parts: EncryptionParts): Promise<void> {
    this.parts = parts;
    this.wanted = mode;
    this.applied = { portOpen: false, published: mode === 'off' ? '' : this.publicKey, mtu: this.mtuFor(mode) };
    if (mode !== 'off') {
      await parts.engine.enableWireguard(this.applied.mtu);
      this.applied.portOpen = true;
    }
    this.setTables();
  }

  /** The network config asks for `mode`: converge to it (one pass at a time; a failed step is retried by the next call). */
  follow(mode: EncryptionMode): Promise<void> {
    if (mode !== this.wanted) this.o.log.info({ event: 'encryption_changed', from: this.wanted, to: mode }, `network config: encryption ${mode}`);
    this.wanted = mode;
    this.running ??= this.converge().finally(() => (this.running = undefined));
    return this.running;
  }

  /** A new key: written to the key file, used for new handshakes, published. Sessions in use stay. */
  async rotate(): Promise<void> {
    const old = this.publicKey;
    const { privateKey, publicKey } = generateKeyPair();
    writeKeyFile(this.o.stateDir, privateKey);
    this.privateKey = privateKey;
    this.publicKey = formatKey(publicKey);
    this.parts?.engine.setWireguardKey(privateKey);
    this.o.log.info({ event: 'wireguard_key_rotated', old_public_key: old, public_key: this.publicKey }, `WireGuard key rotated: ${old} -> ${this.publicKey}`);
    // The lease still carries the old key, which peers keep using for new handshakes until the new one reaches them; sessions in use go on.
    this.setTables();
    await this.follow(this.wanted);
  }

  status(): EncryptionStatus {
    return { mode: this.wanted, published: this.applied.published === this.publicKey, publicKey: this.publicKey, port: this.o.port, peers: this.parts?.engine.wireguardPeers() ?? [] };
  }

  private async converge(): Promise<void> {
    const p = this.parts;
    if (!p || !this.base) return;
    const on = this.wanted !== 'off';
    try {
      if (on) {
        if (!this.applied.portOpen) {
          await p.engine.enableWireguard(this.mtuFor(this.wanted));
          this.applied.portOpen = true;
        }
        await this.setMtu(this.mtuFor(this.wanted));
        if (this.applied.published !== this.publicKey) await this.publish(true);
      } else {
        if (this.applied.published !== '') await this.publish(false);
        await this.setMtu(this.mtuFor('off'));
      }
      this.setTables();
    } catch (err) {
      this.o.log.error({ event: 'encryption_apply_failed', mode: this.wanted, err: errorMessage(err) }, `cannot apply encryption ${this.wanted} yet (retried): ${errorMessage(err)}`);
    }
  }

  /** Writes the lease with (or without) our key and port; the tables follow once it is written. */
  private async publish(on: boolean): Promise<void> {
    const p = this.parts!;
    p.manager.setValue(this.leaseValue(this.base!, on ? this.wanted : 'off'));
    if (!on) {
      // Stop speaking WireGuard before the key leaves the lease: peers still send it until they see the lease, which we still take.
      this.applied.published = '';
      this.setTables();
    }
    const key = this.publicKey;
    await p.keeper.rewrite();
    this.applied.published = on ? key : '';
  }

  private async setMtu(mtu: number): Promise<void> {
    if (mtu === this.applied.mtu) return;
    await this.parts!.setMtu(mtu);
    this.applied.mtu = mtu;
    if (this.applied.portOpen) await this.parts!.engine.enableWireguard(mtu);
  }

  /** The route tables' setting: WireGuard toward keyed peers once our lease carries a key; VXLAN-GPE refused in wireguard-only. */
  private setTables(): void {
    const published = this.applied.published !== '';
    this.parts?.watcher.setEncryption({ wireguard: published, plaintextRefused: published && this.wanted === 'wireguard-only' }, this.publicKey);
  }
}
