// weftd's side of encryption: the node's WireGuard key (loaded at start,
// created when the node first encrypts), the mode the network config asks for, and bringing this node in
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
// The mode and the key last the daemon's life; the parts it is applied to
// (engine, lease keeper, watcher) are those of the subnet held now, attached
// when it is set up and detached when it is let go. Each step is retried at
// the next poll when it fails (etcd down, the port taken), so the node
// converges; what it runs with shows in /status.

import type { Logger } from 'pino';
import { ENCAP_OVERHEAD, type EncryptionMode } from '../constants.js';
import type { Engine } from '../dataplane/engine.js';
import { errorMessage } from '../errors.js';
import { keyFilePath, loadKey, writeNewKey } from '../host/wireguard_key.js';
import type { EncryptionStatus } from '../observe/status.js';
import type { LeaseKeeper } from '../registry/lease_keeper.js';
import type { LeaseManager } from '../registry/lease_manager.js';
import type { LeaseWatcher } from '../registry/lease_watcher.js';
import type { SubnetLease } from '../registry/schema.js';
import { WG_OVERHEAD } from '../wireguard/constants.js';
import { formatKey, generateKeyPair, keyPair } from '../wireguard/keys.js';

/** The parts of the subnet held now that the mode is applied to. */
export interface EncryptionParts {
  readonly engine: Engine;
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
  /** False for an engine without WireGuard (kernel): a mode other than off is logged once and not applied. */
  readonly encrypts: boolean;
  readonly log: Logger;
}

export class EncryptionControl {
  /** The node's key: read at start if the file exists, else created when the node first encrypts. */
  private privateKey: Uint8Array | undefined;
  private publicKey = '';
  private readonly placeholder = generateKeyPair().privateKey;
  private wanted: EncryptionMode = 'off';
  /** The lease's key now ('' for none), and the TUN's MTU: they last the daemon's life. */
  private published = '';
  private mtu_ = 0;
  /** Whether the attached engine's WireGuard port is open. */
  private portOpen = false;
  private manager: LeaseManager | undefined;
  /** The lease value without WireGuard fields. */
  private base: SubnetLease | undefined;
  private parts: EncryptionParts | undefined;
  private running: Promise<void> | undefined;
  private unsupportedLogged = false;

  /** Loads the node's key if it has one: WEFT_KEY_FILE when the file is unsafe. */
  constructor(private readonly o: EncryptionOptions) {
    const key = loadKey(o.stateDir);
    if (key) this.adopt(key, false);
  }

  /** The key the engine starts with: a placeholder, never published or used (no port is open), until the node has its own. */
  get key(): Uint8Array {
    return this.privateKey ?? this.placeholder;
  }

  /** The TUN's and pods' MTU now. */
  get mtu(): number {
    return this.mtu_;
  }

  /** Bytes each packet grows by on the underlay now: 60 while this node speaks WireGuard, else 36. */
  get overhead(): number {
    return this.published ? WG_OVERHEAD : ENCAP_OVERHEAD;
  }

  /** The TUN's and pods' MTU in `mode`: underlay - 60 with WireGuard, - 36 without, unless --mtu says. */
  mtuFor(mode: EncryptionMode): number {
    return this.o.mtuFlag ?? this.o.underlayMtu - (mode === 'off' ? ENCAP_OVERHEAD : WG_OVERHEAD);
  }

  /**
   * The mode the config asked for at start, and the lease value (`base`
   * with key and port in it while encrypting) `manager` writes: every
   * subnet this daemon takes is leased so.
   */
  begin(mode: EncryptionMode, manager: LeaseManager, base: SubnetLease): SubnetLease {
    if (mode !== 'off') this.ensureKey();
    this.wanted = mode;
    this.manager = manager;
    this.base = base;
    this.published = mode === 'off' ? '' : this.publicKey;
    this.mtu_ = this.mtuFor(mode);
    return this.leaseValue();
  }

  /**
   * The parts of a subnet just set up (its lease written as leaseValue()
   * said, its TUN at `mtu`): opens the engine's port if the lease carries a
   * key (a port that cannot be bound fails the setup), and gives the tables
   * their setting before the first one is built.
   */
  async attach(parts: EncryptionParts): Promise<void> {
    this.parts = parts;
    this.portOpen = false;
    if (this.published) await this.openPort();
    this.setTables();
  }

  /** The subnet they served is let go. */
  detach(): void {
    this.parts = undefined;
    this.portOpen = false;
  }

  /** The network config asks for `mode`: converge to it (one pass at a time; a failed step is retried by the next call). */
  follow(mode: EncryptionMode): Promise<void> {
    if (mode !== this.wanted) this.o.log.info({ event: 'encryption_changed', from: this.wanted, to: mode }, `network config: encryption ${mode}`);
    this.wanted = mode;
    if (!this.o.encrypts) {
      if (mode !== 'off' && !this.unsupportedLogged) {
        this.o.log.error({ event: 'encryption_unsupported', mode }, `the network config asks for encryption ${mode}, which this node's engine (kernel) cannot do: it publishes no key and stays unencrypted (a restart refuses to start)`);
      }
      this.unsupportedLogged = mode !== 'off';
      return Promise.resolve();
    }
    this.running ??= this.converge().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * A new key: written to the key file, used for new handshakes, published.
   * Sessions in use stay; until the lease reaches a peer, its handshakes
   * are made for the old key and refused (it retries every 5 s).
   */
  async rotate(): Promise<void> {
    const old = this.publicKey;
    this.newKey();
    this.o.log.info({ event: 'wireguard_key_rotated', old_public_key: old, public_key: this.publicKey }, `WireGuard key rotated: ${old || '(none)'} -> ${this.publicKey}`);
    this.setTables();
    await this.follow(this.wanted);
  }

  status(): EncryptionStatus {
    return { mode: this.wanted, published: this.published !== '' && this.published === this.publicKey, publicKey: this.publicKey, port: this.o.port, peers: this.parts?.engine.wireguardPeers() ?? [] };
  }

  private adopt(privateKey: Uint8Array, created: boolean): void {
    this.privateKey = privateKey;
    this.publicKey = formatKey(keyPair(privateKey).publicKey);
    const path = keyFilePath(this.o.stateDir);
    this.o.log.info({ event: 'wireguard_key', path, created, public_key: this.publicKey }, `WireGuard public key ${this.publicKey}${created ? ` (created ${path})` : ''}`);
  }

  /** The node's own key, created (and given to the engine) the first time it encrypts: WEFT_STATE_WRITE when the file cannot be written. */
  private ensureKey(): void {
    if (!this.privateKey) this.newKey();
  }

  /** A fresh key, written to the state directory before the engine is given it. */
  private newKey(): void {
    this.adopt(writeNewKey(this.o.stateDir), true);
    this.parts?.engine.setWireguardKey(this.privateKey!);
  }

  private leaseValue(): SubnetLease {
    const base = this.base!;
    return this.published ? { ...base, wireguardPublicKey: this.published, wireguardPort: this.o.port } : base;
  }

  private async openPort(): Promise<void> {
    await this.parts!.engine.enableWireguard(this.mtu_);
    this.portOpen = true;
  }

  private async converge(): Promise<void> {
    const on = this.wanted !== 'off';
    try {
      if (on) {
        this.ensureKey();
        if (this.parts && !this.portOpen) await this.openPort();
        await this.setMtu(this.mtuFor(this.wanted));
        if (this.published !== this.publicKey) await this.publish(this.publicKey);
      } else {
        if (this.published) await this.publish('');
        await this.setMtu(this.mtuFor('off'));
      }
      this.setTables();
    } catch (err) {
      this.o.log.error({ event: 'encryption_apply_failed', mode: this.wanted, err: errorMessage(err) }, `cannot apply encryption ${this.wanted} yet (retried): ${errorMessage(err)}`);
    }
  }

  /** Writes the lease with `key` (or none) and the port; the tables follow once it is written. */
  private async publish(key: string): Promise<void> {
    const was = this.published;
    this.published = key;
    this.manager!.setValue(this.leaseValue());
    // Off: stop speaking WireGuard before the key leaves the lease (peers send it until they see the lease, and we still take it).
    if (!key) this.setTables();
    try {
      await this.parts?.keeper.rewrite();
    } catch (err) {
      this.published = was;
      this.manager!.setValue(this.leaseValue());
      this.setTables();
      throw err;
    }
  }

  private async setMtu(mtu: number): Promise<void> {
    if (mtu === this.mtu_) return;
    const was = this.mtu_;
    this.mtu_ = mtu;
    try {
      await this.parts?.setMtu(mtu);
    } catch (err) {
      this.mtu_ = was;
      throw err;
    }
    if (this.portOpen) await this.parts?.engine.enableWireguard(mtu);
  }

  /** The route tables' setting: WireGuard toward keyed peers once our lease carries a key; VXLAN-GPE refused in wireguard-only. */
  private setTables(): void {
    const on = this.published !== '';
    this.parts?.watcher.setEncryption({ wireguard: on, plaintextRefused: on && this.wanted === 'wireguard-only' }, this.publicKey);
  }
}
