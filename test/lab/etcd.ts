// The lab's etcd: its members (one at 198.18.0.254, or a cluster of three at
// .251-.253, each in its own namespace), their processes, and the faults the
// tests put them through: stop or SIGKILL and restart, wipe, cut off from
// the underlay (nftables inside the member's namespace) and heal, remove
// and re-add with an empty data directory.
//
// The lab (lab.ts) builds the namespaces and hands them over; every process
// is spawned through the lab, so its teardown stops them by PID.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, type ExecResult } from './exec.js';
import { logTail, type LabProcessImpl } from './process.js';

export const ETCD_IP = '198.18.0.254';
/** Member k (1-based) of a lab etcd cluster is at 198.18.0.(250 + k). */
export const ETCD_CLUSTER_IP_BASE = 250;
export const MAX_ETCD_MEMBERS = 3;
const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const HEALTH_TIMEOUT_MS = 20_000;
const LEADER_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5000;
/** The nftables table that cuts a member off; it lives only in the member's namespace. */
const CUT_TABLE = 'weft_lab_cut';

export interface EtcdMember {
  /** 1-based. */
  readonly index: number;
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

/** What the lab lends its etcd: its process spawner, its exec and its log. */
export interface EtcdLabHooks {
  spawn(ns: string, argv: string[]): LabProcessImpl;
  exec(ns: string, argv: string[], opts: { timeoutMs?: number; allowFail?: boolean; env?: Record<string, string> }): Promise<ExecResult>;
  note(...msgs: string[]): void;
}

/** The members of a lab etcd of `count` members whose namespaces are `<prefix>-<role>`; data under `dir`/etcd. */
export function etcdMembers(prefix: string, dir: string, count: number): EtcdMember[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_ETCD_MEMBERS) {
    throw new Error(`lab ${prefix}: etcd members must be an integer in 1..${MAX_ETCD_MEMBERS}, got ${count}`);
  }
  if (count === 1) {
    // The single member keeps its historic place: namespace -etcd, .254, data in dir/etcd, peers on loopback.
    return [{ index: 1, name: 'lab', ns: `${prefix}-etcd`, ip: ETCD_IP, clientUrl: `http://${ETCD_IP}:${CLIENT_PORT}`, peerUrl: `http://127.0.0.1:${PEER_PORT}`, dataDir: join(dir, 'etcd') }];
  }
  return Array.from({ length: count }, (_, k) => {
    const ip = `198.18.0.${ETCD_CLUSTER_IP_BASE + k + 1}`;
    return { index: k + 1, name: `e${k + 1}`, ns: `${prefix}-e${k + 1}`, ip, clientUrl: `http://${ip}:${CLIENT_PORT}`, peerUrl: `http://${ip}:${PEER_PORT}`, dataDir: join(dir, 'etcd', `e${k + 1}`) };
  });
}

export class LabEtcd {
  private readonly procs = new Map<number, LabProcessImpl>();
  private readonly cut = new Set<number>();
  private readonly removed = new Set<number>();

  constructor(
    private readonly hooks: EtcdLabHooks,
    readonly members: readonly EtcdMember[],
    private readonly clusterToken: string,
  ) {}

  /** Every member's client URL, comma-separated, as weftd's --etcd-endpoints and etcdctl's --endpoints take them. */
  get endpoints(): string {
    return this.members.map((m) => m.clientUrl).join(',');
  }

  member(k: number): EtcdMember {
    const m = this.members[k - 1];
    if (!m) throw new Error(`lab etcd: no member ${k} (members are 1..${this.members.length})`);
    return m;
  }

  process(k: number): LabProcessImpl {
    const p = this.procs.get(this.member(k).index);
    if (!p) throw new Error(`lab etcd: member ${k} not started`);
    return p;
  }

  running(k: number): boolean {
    const p = this.procs.get(this.member(k).index);
    return !!p && !p.hasExited;
  }

  /** Members that run and are not cut off: the ones etcdctl may talk to (a member cut from its peers answers, but without a leader). */
  get reachable(): EtcdMember[] {
    return this.members.filter((m) => this.running(m.index) && !this.cut.has(m.index));
  }

  /** Starts every member (a new cluster) and waits until each answers `endpoint health`. */
  async startAll(): Promise<void> {
    for (const m of this.members) this.spawn(m, 'new');
    await Promise.all(this.members.map((m) => this.waitHealthy(m.index)));
  }

  /**
   * Starts member k again on its old data, or, for a single member, on an
   * empty directory with `wipe` (a new cluster with no keys; a cluster's
   * member comes back empty through remove() and addBack()). Resolves once
   * it answers `endpoint health`.
   */
  async start(k: number, opts: { wipe?: boolean } = {}): Promise<void> {
    const m = this.member(k);
    if (this.running(k)) throw new Error(`lab etcd: member ${m.name} is already running (${this.process(k).describe()}); stop it first`);
    if (this.removed.has(k)) throw new Error(`lab etcd: member ${m.name} was removed from the cluster; addBack() it`);
    if (opts.wipe && this.members.length > 1) throw new Error(`lab etcd: a cluster member is not wiped in place (it would not rejoin); remove() and addBack() it`);
    if (opts.wipe) {
      await rm(m.dataDir, { recursive: true, force: true });
      this.hooks.note(`etcd ${m.name} data wiped: ${m.dataDir}`);
    }
    this.spawn(m, 'new');
    await this.waitHealthy(k);
  }

  /**
   * Stops member k: `signal` (SIGTERM by default; SIGKILL for a crash) by
   * PID, then SIGKILL if it has not exited after 5 s. Its data stays.
   * Idempotent.
   */
  async stop(k: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: string | null }> {
    const p = this.process(k);
    if (p.hasExited) return p.exitStatus!;
    p.kill('SIGCONT'); // in case a test froze it: it then takes the signal at once
    const exited = await p.stop(signal, STOP_GRACE_MS);
    if (signal !== 'SIGKILL' && exited.signal === 'SIGKILL') this.hooks.note(`SIGKILL etcd ${p.describe()} (no exit ${STOP_GRACE_MS} ms after ${signal})`);
    else this.hooks.note(`etcd ${this.member(k).name} stopped by ${signal}: ${p.describe()} (code ${exited.code} signal ${exited.signal})`);
    return exited;
  }

  /**
   * Cuts member k off: its namespace drops every packet in and out except
   * on loopback (connections stay open and go silent, as behind a failed
   * switch port), or with `peersOnly` just its peer traffic (port 2380):
   * clients still reach it, but it has no leader. heal() takes the rule away.
   */
  async partition(k: number, opts: { peersOnly?: boolean } = {}): Promise<void> {
    const m = this.member(k);
    if (this.cut.has(k)) throw new Error(`lab etcd: member ${m.name} is already cut off`);
    const t = `inet ${CUT_TABLE}`;
    const chain = (name: string, hook: 'input' | 'output', rules: string[]): string =>
      `add chain ${t} ${name} { type filter hook ${hook} priority -300; policy ${opts.peersOnly ? 'accept' : 'drop'}; }; ${rules.map((r) => `add rule ${t} ${name} ${r}`).join('; ')}`;
    const peerRules = [`tcp dport ${PEER_PORT} drop`, `tcp sport ${PEER_PORT} drop`];
    await this.hooks.exec(m.ns, ['nft', `add table ${t}; ${chain('in', 'input', opts.peersOnly ? peerRules : ['iif lo accept'])}; ${chain('out', 'output', opts.peersOnly ? peerRules : ['oif lo accept'])}`], {});
    this.cut.add(k);
    this.hooks.note(`etcd ${m.name} cut off${opts.peersOnly ? ' from its peers' : ''} (nft table ${t} in ns ${m.ns})`);
  }

  /**
   * Takes the cut away and waits until member k is healthy and every member
   * agrees on a leader: a member cut off long enough has raised its term,
   * and its return forces an election (etcd 3.4 runs without pre-vote).
   */
  async heal(k: number): Promise<void> {
    const m = this.member(k);
    if (!this.cut.has(k)) throw new Error(`lab etcd: member ${m.name} is not cut off`);
    await this.hooks.exec(m.ns, ['nft', `delete table inet ${CUT_TABLE}`], {});
    this.cut.delete(k);
    this.hooks.note(`etcd ${m.name} healed`);
    await this.waitHealthy(k);
    await this.waitLeader();
  }

  /**
   * Replaces member k as an operator replaces a failed disk: remove(k), then
   * addBack(k). Needs a quorum among the other members.
   */
  async replace(k: number): Promise<void> {
    await this.remove(k);
    await this.addBack(k);
  }

  /** Stops member k (SIGKILL), removes it from the cluster (asking the others) and wipes its data directory. */
  async remove(k: number): Promise<void> {
    const m = this.member(k);
    if (this.members.length < 2) throw new Error('lab etcd: remove() needs a cluster (a single member would be wiped: start(1, { wipe: true }))');
    if (this.running(k)) await this.stop(k, 'SIGKILL');
    await this.waitLeader();
    const id = await this.memberId(m, { exclude: k });
    await this.reconfigure(['member', 'remove', id], k);
    await rm(m.dataDir, { recursive: true, force: true });
    this.removed.add(k);
    this.hooks.note(`etcd ${m.name}: removed (id ${id}) and wiped`);
  }

  /**
   * Adds removed member k back under its name and URLs (`member add`) and
   * starts it on an empty directory with --initial-cluster-state existing;
   * resolves once it is healthy.
   */
  async addBack(k: number): Promise<void> {
    const m = this.member(k);
    if (!this.removed.has(k)) throw new Error(`lab etcd: member ${m.name} was not removed`);
    await this.reconfigure(['member', 'add', m.name, `--peer-urls=${m.peerUrl}`], k);
    this.removed.delete(k);
    this.hooks.note(`etcd ${m.name}: added again`);
    this.spawn(m, 'existing');
    await this.waitHealthy(k);
  }

  /**
   * A membership change asked of the members other than k. etcd refuses one
   * while any member has been connected for less than 5 s, or is not
   * connected (strict reconfig check: "unhealthy cluster"): retried until
   * the leader's timeout.
   */
  private async reconfigure(args: string[], k: number): Promise<void> {
    const deadline = Date.now() + LEADER_TIMEOUT_MS;
    for (;;) {
      try {
        await this.etcdctl(args, { exclude: k });
        return;
      } catch (err) {
        if (!/unhealthy cluster/.test((err as Error).message) || Date.now() >= deadline) throw err;
        await sleep(500);
      }
    }
  }

  /** The index of the member that leads now (asked of every reachable member; they must agree). */
  async leader(): Promise<number> {
    const seen = new Map<string, number>();
    let leaderId: string | undefined;
    for (const m of this.reachable) {
      const r = await this.hooks.exec(m.ns, ['etcdctl', `--endpoints=${m.clientUrl}`, '--command-timeout=3s', 'endpoint', 'status', '-w', 'json'], { timeoutMs: 6000, env: { ETCDCTL_API: '3' } });
      // Member IDs are 64-bit JSON numbers: compare their digits, not lossy doubles.
      const own = /"member_id":(\d+)/.exec(r.stdout)?.[1];
      const lead = /"leader":(\d+)/.exec(r.stdout)?.[1];
      if (!own || !lead) throw new Error(`lab etcd: cannot read the status of ${m.name}: ${r.stdout.trim()}`);
      seen.set(own, m.index);
      if (leaderId !== undefined && leaderId !== lead) throw new Error(`lab etcd: members disagree on the leader (${leaderId} vs ${lead})`);
      leaderId = lead;
    }
    const k = leaderId === undefined ? undefined : seen.get(leaderId);
    if (k === undefined) throw new Error(`lab etcd: no reachable member leads (leader id ${leaderId ?? 'none'})`);
    return k;
  }

  /**
   * Waits (up to 15 s) until the reachable members agree on a leader among
   * them, and returns its index: after the leader dies, a write proposed
   * before the others notice is lost and times out, so tests wait for this
   * before writing.
   */
  async waitLeader(): Promise<number> {
    const deadline = Date.now() + LEADER_TIMEOUT_MS;
    for (;;) {
      try {
        return await this.leader();
      } catch (err) {
        if (Date.now() >= deadline) throw new Error(`lab etcd: no leader among ${this.reachable.map((m) => m.name).join(',') || 'no member'} after ${LEADER_TIMEOUT_MS} ms: ${(err as Error).message}`);
      }
      await sleep(200);
    }
  }

  /** How many watch streams member k serves now (its etcd_debugging_mvcc_watch_stream_total gauge). */
  async watchStreams(k: number): Promise<number> {
    const m = this.member(k);
    const r = await this.hooks.exec(m.ns, ['curl', '-sS', '--max-time', '3', `${m.clientUrl}/metrics`], { timeoutMs: 5000 });
    const n = /^etcd_debugging_mvcc_watch_stream_total (\d+)$/m.exec(r.stdout)?.[1];
    if (n === undefined) throw new Error(`lab etcd: ${m.name}'s /metrics has no etcd_debugging_mvcc_watch_stream_total`);
    return Number(n);
  }

  /**
   * etcdctl against the reachable members (all but `exclude`), from the
   * first one's namespace; `stdin` is piped in (for `txn`).
   */
  async etcdctl(args: string[], opts: { timeoutMs?: number; exclude?: number; stdin?: string } = {}): Promise<string> {
    const to = this.reachable.filter((m) => m.index !== opts.exclude);
    const from = to[0];
    if (!from) throw new Error(`lab etcd: no reachable member for \`etcdctl ${args.join(' ')}\``);
    const argv = ['etcdctl', `--endpoints=${to.map((m) => m.clientUrl).join(',')}`, ...args];
    const r = await this.hooks.exec(from.ns, opts.stdin === undefined ? argv : ['sh', '-c', 'printf %s "$ETCDCTL_STDIN" | "$@"', 'sh', ...argv], {
      timeoutMs: opts.timeoutMs ?? 10_000,
      env: { ETCDCTL_API: '3', ...(opts.stdin === undefined ? {} : { ETCDCTL_STDIN: opts.stdin }) },
    });
    return r.stdout;
  }

  /** Resolves once member k answers `etcdctl endpoint health` (which needs a quorum); rejects with its log tail if it exits or 20 s pass. */
  async waitHealthy(k: number): Promise<void> {
    const m = this.member(k);
    const p = this.process(k);
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let last = '';
    for (;;) {
      if (p.hasExited) {
        const s = p.exitStatus!;
        throw new Error(`etcd ${m.name} (${p.describe()}) exited with code ${s.code} signal ${s.signal}; log tail:\n${logTail(p.log())}`);
      }
      const r = await this.hooks
        .exec(m.ns, ['etcdctl', `--endpoints=${m.clientUrl}`, '--dial-timeout=1s', '--command-timeout=2s', 'endpoint', 'health'], { timeoutMs: 4000, allowFail: true, env: { ETCDCTL_API: '3' } })
        .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
      if (r.code === 0) {
        this.hooks.note(`etcd ${m.name} healthy: ${r.stdout.trim() || r.stderr.trim()}`);
        return;
      }
      last = `${r.stdout}${r.stderr}`.trim();
      if (Date.now() >= deadline) {
        throw new Error(`ns ${m.ns}: \`etcdctl endpoint health\` did not succeed within ${HEALTH_TIMEOUT_MS} ms (last: ${last}); etcd log tail:\n${logTail(p.log())}`);
      }
      await sleep(100);
    }
  }

  /** Member m's ID (hex, as etcdctl member remove takes it), from `member list` asked of the others. */
  private async memberId(m: EtcdMember, opts: { exclude: number }): Promise<string> {
    // Lines: "8e9e05c52164694d, started, e1, http://peer, http://client, false"
    const out = await this.etcdctl(['member', 'list'], opts);
    const line = out.split('\n').find((l) => l.split(', ')[3] === m.peerUrl);
    const id = line?.split(', ')[0];
    if (!id || !/^[0-9a-f]+$/.test(id)) throw new Error(`lab etcd: ${m.name} (${m.peerUrl}) is not in the member list:\n${out}`);
    return id;
  }

  private spawn(m: EtcdMember, state: 'new' | 'existing'): void {
    const cluster = this.members.map((o) => `${o.name}=${o.peerUrl}`).join(',');
    const p = this.hooks.spawn(m.ns, [
      'etcd',
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', cluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', this.clusterToken,
    ]);
    this.procs.set(m.index, p);
  }
}
