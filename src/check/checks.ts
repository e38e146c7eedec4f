// The checks of `weftctl check`, pure: each turns the gathered facts
// (facts.ts) into one verdict with a one-line summary and, unless all is
// well, what to do. A check whose subject is not there to look at (weftd
// does not answer, the node holds no subnet) is skipped and says why; the
// check that names the cause fails instead.
//
// An engine-specific check lists its engines (`engines`): it runs only when
// weftd runs one of them, so an engine adds its checks to CHECKS without
// touching the others.

import { gatewayCidr } from '../host/subnet_env.js';
import type { LinkInfo } from '../host/netconf.js';
import { type Cidr, formatCidr, parseCidr } from '../net/ipv4.js';
import type { DaemonStatus, FirewallStatus } from '../observe/status.js';
import { formatDuration } from '../observe/status_client.js';
import { ENCAP_IPT_CHAIN, ENCAP_NFT_TABLE } from '../host/encap_filter.js';
import type { RulesetState } from '../host/firewall.js';
import { IPT_CHAIN as MASQ_IPT_CHAIN, NFT_TABLE as MASQ_NFT_TABLE } from '../host/masquerade.js';
import type { CheckFacts, EtcdData, EtcdLease, Outcome } from './facts.js';

export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  readonly name: string;
  readonly verdict: Verdict;
  readonly summary: string;
  /** What to do: on every warn and fail. */
  readonly fix?: string;
}

type Finding = Omit<CheckResult, 'name'>;

export interface Check {
  /** Stable: the JSON output and the docs name checks by it. */
  readonly name: string;
  /** The engines it applies to; every engine when absent. */
  readonly engines?: readonly string[];
  run(f: CheckFacts): Finding;
}

const ok = (summary: string): Finding => ({ verdict: 'ok', summary });
const warn = (summary: string, fix: string): Finding => ({ verdict: 'warn', summary, fix });
const fail = (summary: string, fix: string): Finding => ({ verdict: 'fail', summary, fix });
const skip = (summary: string): Finding => ({ verdict: 'skip', summary });

const RESTART = 'restart weftd (systemctl restart weftd), which sets it up again and keeps its subnet';
const LOGS = 'journalctl -u weftd -n 50';

// ---- what several checks read the same way

/** Why weftd holds no subnet, as /status says it. */
function noSubnetReason(s: DaemonStatus): string {
  return s.noSubnet ?? (s.readiness.reasons.join('; ') || s.state);
}

/** What to do about a weftd without a subnet: a full network needs a subnet freed; a lost one is replaced by weftd itself. */
function noSubnetFix(reason: string): string {
  if (/waiting for a free/.test(reason)) {
    return 'the network has no free subnet: remove the leases of nodes that are gone (etcdctl del <key>; weftctl leases lists them) or widen the network; weftd takes a subnet within seconds of one freeing';
  }
  return `weftd takes a free subnet as soon as it can (${LOGS}); pods created on the subnet the node lost must be recreated`;
}

/** The etcd lease of `subnet`, when etcd's keys were read. */
function etcdLeaseOf(f: CheckFacts, subnet: string): EtcdLease | undefined | 'unknown' {
  const data = etcdData(f);
  return data ? data.leases.find((l) => l.subnet === subnet) : 'unknown';
}

function etcdData(f: CheckFacts): EtcdData | undefined {
  return f.etcd?.ok && f.etcd.value.data.ok ? f.etcd.value.data.value : undefined;
}

function linkNamed(links: readonly LinkInfo[], name: string): LinkInfo | undefined {
  return links.find((l) => l.name === name);
}

function list(items: readonly string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

// ---- the checks, in the order they print

const weftd: Check = {
  name: 'weftd',
  run(f) {
    if (!f.weftd.ok) return fail(f.weftd.error, `start weftd (systemctl start weftd) and read why it stopped: ${LOGS}; if it runs with another --metrics-addr, give weftctl the same`);
    const s = f.weftd.value;
    const who = `node ${s.node}, weftd ${s.version}, engine ${s.engine.kind}`;
    const reasons = s.readiness.reasons.join('; ');
    if (s.readiness.status === 'ready') return ok(`running and ready (${who})`);
    if (s.readiness.status === 'degraded') return warn(`degraded: ${reasons} (${who})`, 'it forwards with the route table it has; see the etcd check');
    if (s.state === 'waiting') return fail(`up, not ready: ${reasons} (${who})`, noSubnetFix(noSubnetReason(s)));
    if (/dataplane stopped/.test(reasons)) return fail(`not ready: ${reasons} (${who})`, `the systemd watchdog restarts it within 30 s; else ${RESTART}; why: ${LOGS}`);
    return fail(`${s.state}, not ready: ${reasons} (${who})`, `${s.state === 'stopping' ? 'it is stopping' : 'it is still starting, or waits for etcd (see the etcd check)'}: ${LOGS}`);
  },
};

const lease: Check = {
  name: 'lease',
  run(f) {
    if (!f.weftd.ok) return skip('weftd does not answer');
    const s = f.weftd.value;
    if (s.subnet === null) {
      if (s.state !== 'waiting') return skip(`weftd is ${s.state}: no lease`);
      return fail(`no lease held: ${noSubnetReason(s)}`, noSubnetFix(noSubnetReason(s)));
    }
    const ttl = s.leaseTtlS;
    const inEtcd = etcdLeaseOf(f, s.subnet);
    if (inEtcd === undefined) {
      return fail(
        `${s.subnet} has no lease in etcd (deleted, or expired): other nodes have dropped its route`,
        `weftd re-creates it within seconds when its lease watch works (${LOGS}: lease_lost, lease_reacquired); if it stays gone, ${RESTART}`,
      );
    }
    if (inEtcd !== 'unknown' && inEtcd.node !== s.node) {
      return fail(
        `${s.subnet} is leased to node ${inEtcd.node} (${inEtcd.publicIp}) in etcd, not to ${s.node}`,
        `two nodes claim one subnet: weftd stops forwarding for it and takes another; pods on ${s.subnet} must be recreated; if it does not, ${LOGS}`,
      );
    }
    const left = s.leaseExpiresInS ?? 0;
    if (left <= 0) return fail(`the lease on ${s.subnet} has expired as far as weftd knows: renewals fail`, 'see the etcd check: weftd renews as soon as etcd answers, and re-acquires the same subnet if it is still free');
    const etcdLeft = inEtcd === 'unknown' ? undefined : inEtcd.ttlS;
    if (etcdLeft === -1) return warn(`${s.subnet}'s key in etcd has no TTL: it never expires, even when the node is gone`, `a key written by hand? delete it (etcdctl del) and ${RESTART}`);
    const soonest = Math.min(left, etcdLeft ?? left);
    if (soonest < ttl / 2) {
      return warn(
        `the lease on ${s.subnet} expires in ${formatDuration(soonest)}, under half its TTL of ${formatDuration(ttl)}: renewals are failing`,
        `weftd renews every third of the TTL and retries every 5 s; see the etcd check and ${LOGS} (lease_renew_failed)`,
      );
    }
    return ok(`${s.subnet} held by ${s.node}, expires in ${formatDuration(soonest)} (TTL ${formatDuration(ttl)}, renewed every ${formatDuration(Math.round(ttl / 3))})`);
  },
};

const subnetFile: Check = {
  name: 'subnet-file',
  run(f) {
    const path = f.subnetFilePath;
    if (!f.subnetFile.ok) return fail(`cannot read ${path}: ${f.subnetFile.error}`, 'run weftctl check as root, or with read access to the file');
    const view = f.subnetFile.value;
    if ('invalid' in view) return fail(view.invalid, `the CNI plugin refuses every pod while it does not parse: ${RESTART.replace('sets it up', 'writes it')}`);
    const s = f.weftd.ok ? f.weftd.value : undefined;
    const rewrite = `${RESTART.replace('sets it up', 'writes it')}; give weftd, the conflist (subnetFile) and weftctl check the same file`;
    if (!view.held && !view.none) {
      if (!s) return warn(`${path} does not exist, and weftd does not answer`, 'start weftd: it writes the file once it holds a subnet; until then the CNI plugin answers ADD with "try again later"');
      if (s.subnet === null || s.state !== 'running') return ok(`${path} does not exist: weftd holds no subnet yet, so the CNI plugin answers "try again later"`);
      return fail(`${path} does not exist, though weftd holds ${s.subnet}: no pod gets an address`, rewrite);
    }
    if (view.none) {
      if (s?.subnet && s.state === 'running') return fail(`${path} says this node holds no subnet (${view.none.reason}), though weftd holds ${s.subnet}`, rewrite);
      return ok(`${path} says this node holds no subnet (${view.none.reason}): the CNI plugin answers "try again later"`);
    }
    const file = view.held;
    const named = `${path} names ${formatCidr(file.subnet)}`;
    const expires = file.leaseExpiresMs;
    const expired = expires !== undefined && expires <= f.nowMs;
    const until = expires === undefined ? '' : expired ? ` (its lease expired at ${new Date(expires).toISOString()} as far as the file says, so the CNI plugin hands out no address)` : ` until ${new Date(expires).toISOString()}`;
    const stale = `the CNI plugin hands out addresses of a subnet this node does not hold: stop creating pods here; weftd rewrites the file when it holds a subnet (${LOGS})`;
    if (!s) return warn(`${named}, but weftd does not answer${expired ? until : `: pods get addresses from it${until}`}`, 'start weftd; if the node is being retired, remove the file so no pod gets an address');
    if (s.subnet === null) return fail(`${named}, but weftd holds no subnet (${noSubnetReason(s)})`, stale);
    if (expired && s.state === 'running') {
      return fail(`${named}${until}`, `weftd rewrites it with each renewal: see the lease and etcd checks, and ${LOGS} (subnet_file_failed)`);
    }
    const wrong: string[] = [];
    const subnet = formatCidr(file.subnet);
    if (subnet !== s.subnet) wrong.push(`subnet ${subnet}, the lease ${s.subnet}`);
    if (s.network !== null && formatCidr(file.network) !== s.network) wrong.push(`network ${formatCidr(file.network)}, weftd's ${s.network}`);
    const device = s.host.device;
    if (device && file.mtu !== device.mtu) wrong.push(`MTU ${file.mtu}, ${device.name}'s ${device.mtu}`);
    if (file.ipMasq !== s.host.ipMasq.wanted) wrong.push(`FLANNEL_IPMASQ ${file.ipMasq}, weftd's --ip-masq ${s.host.ipMasq.wanted}`);
    const inEtcd = etcdLeaseOf(f, subnet);
    if (inEtcd !== 'unknown' && inEtcd !== undefined && inEtcd.node !== s.node) wrong.push(`etcd leases ${subnet} to node ${inEtcd.node}`);
    if (wrong.length > 0) return fail(`${path} does not match the lease: ${wrong.join('; ')}`, `${rewrite}; pods created from the wrong file must be recreated`);
    return ok(`${path}: ${subnet} of ${formatCidr(file.network)}, MTU ${file.mtu}, ipmasq ${file.ipMasq}`);
  },
};

/** The engine's device (`what`): there, up, with the MTU and address weftd gave it. */
function deviceCheck(name: string, engines: readonly string[], what: string): Check {
  return {
    name,
    engines,
    run(f) {
      if (!f.weftd.ok) return skip('weftd does not answer');
      const dev = f.weftd.value.host.device;
      if (!dev) return skip(`weftd has not set up its ${what} (it holds no subnet yet)`);
      if (!f.links.ok) return fail(`cannot list the links: ${f.links.error}`, 'run weftctl check as root, with iproute2 installed');
      const link = linkNamed(f.links.value, dev.name);
      if (!link) return fail(`${dev.name} does not exist: nothing is forwarded`, RESTART);
      const wrong: string[] = [];
      if (!link.up) wrong.push('is down');
      if (link.mtu !== dev.mtu) wrong.push(`has MTU ${link.mtu}, not the ${dev.mtu} weftd set`);
      if (!link.addresses.includes(dev.address)) wrong.push(`lacks its address ${dev.address}${link.addresses.length > 0 ? ` (has ${link.addresses.join(', ')})` : ''}`);
      if (wrong.length > 0) return fail(`${dev.name} ${wrong.join(', ')}`, `it was changed behind weftd's back: ${RESTART}`);
      return ok(`${dev.name} up, MTU ${dev.mtu}, ${dev.address}`);
    },
  };
}

/** The TUN of the userspace engines. */
const tun = deviceCheck('tun', ['native', 'js'], 'TUN');
/** The kernel engine's VXLAN-GPE device (weftd repairs it within a second when it is deleted or set down: a failure that stays is one it cannot repair). */
const vxlan = deviceCheck('vxlan', ['kernel'], 'VXLAN-GPE device');

/** The overlay's MTU fits the underlay's: otherwise large packets are lost while small ones (ping) pass. */
const mtu: Check = {
  name: 'mtu',
  run(f) {
    if (!f.weftd.ok) return skip('weftd does not answer');
    const s = f.weftd.value;
    const dev = s.host.device;
    if (!dev || !s.host.underlay) return skip('weftd has not set up its device yet');
    if (!f.links.ok) return fail(`cannot list the links: ${f.links.error}`, 'run weftctl check as root, with iproute2 installed');
    const iface = s.host.underlay.iface;
    const link = iface !== null ? linkNamed(f.links.value, iface) : f.links.value.find((l) => s.publicIp !== null && l.addresses.some((a) => a.startsWith(`${s.publicIp}/`)));
    if (!link) return skip(`no interface here holds the underlay address ${s.publicIp ?? '?'} (a NAT'd --public-ip): the underlay's MTU is not known`);
    const overhead = s.host.encapOverhead;
    const fits = link.mtu - overhead;
    if (dev.mtu > fits) {
      return fail(
        `${dev.name}'s MTU ${dev.mtu} plus ${overhead} bytes of encapsulation exceeds ${link.name}'s MTU ${link.mtu}: packets over ${fits} bytes are lost (ping works, large transfers stall)`,
        `leave --mtu unset (weftd then uses ${fits}) or set it to at most ${fits}, restart weftd, then recreate the pods (a pod's MTU is set when it starts)`,
      );
    }
    if (link.mtu !== s.host.underlay.mtu) {
      return warn(`${link.name}'s MTU is ${link.mtu} now, ${s.host.underlay.mtu} when weftd started`, `restart weftd so ${dev.name} and the subnet file follow it, then recreate the pods`);
    }
    return ok(`${dev.name} ${dev.mtu} + ${overhead} fits ${link.name}'s ${link.mtu}`);
  },
};

/** cni0: the pods' gateway address and MTU, as the subnet file says: flannel's most reported error is a bridge left on an old subnet. */
const bridge: Check = {
  name: 'bridge',
  run(f) {
    const expected = bridgeExpectation(f);
    if (!expected) return skip('no subnet known: neither the subnet file nor weftd names one');
    if (!f.links.ok) return fail(`cannot list the links: ${f.links.error}`, 'run weftctl check as root, with iproute2 installed');
    const br = linkNamed(f.links.value, f.bridge);
    if (!br) return ok(`${f.bridge} does not exist yet: the CNI plugin creates it with the first pod`);
    const gw = gatewayCidr(expected.subnet);
    const ports = f.links.value.filter((l) => l.master === f.bridge);
    const others = br.addresses.filter((a) => a !== gw);
    if (others.length > 0 || (!br.addresses.includes(gw) && ports.length > 0)) {
      const has = br.addresses.length > 0 ? `has ${list(br.addresses)}` : 'has no address';
      return fail(
        `${f.bridge} ${has}${br.addresses.includes(gw) ? ' besides' : ', not'} the gateway ${gw} of ${formatCidr(expected.subnet)}${ports.length > 0 ? ` (${podInterfaces(ports.length)} on it)` : ''}`,
        `the node's subnet changed under its pods (the lease was lost and another taken, or etcd lost its data): delete the pods on ${f.bridge} (or drain the node; ip -o link show master ${f.bridge} lists them); the next pod's ADD then moves ${f.bridge} to ${gw}`,
      );
    }
    const bigger = ports.filter((p) => p.mtu > expected.mtu);
    if (br.mtu > expected.mtu || bigger.length > 0) {
      const what = [...(br.mtu > expected.mtu ? [`${f.bridge} ${br.mtu}`] : []), ...bigger.map((p) => `${p.name} ${p.mtu}`)];
      return fail(
        `MTU above the subnet file's ${expected.mtu}: ${list(what)} (large packets to and from these pods are lost; ping works)`,
        `recreate those pods: the CNI plugin gives new ones MTU ${expected.mtu}; ip link set ${f.bridge} mtu ${expected.mtu} fixes the bridge itself`,
      );
    }
    if (br.mtu < expected.mtu) return warn(`${f.bridge}'s MTU ${br.mtu} is below the subnet file's ${expected.mtu}`, `ip link set ${f.bridge} mtu ${expected.mtu}, or recreate the pods on it`);
    return ok(`${f.bridge} ${gw}, MTU ${br.mtu}, ${podInterfaces(ports.length)}`);
  },
};

function podInterfaces(n: number): string {
  return `${n} pod interface${n === 1 ? '' : 's'}`;
}

/** The kernel forwards IPv4: without it packets from pods stop at their node (the peers' probe, node to node, does not need it). */
const ipForward: Check = {
  name: 'ip-forward',
  run(f) {
    if (f.ipForward === undefined) return skip('net.ipv4.ip_forward cannot be read');
    if (!f.ipForward) {
      return fail(
        'net.ipv4.ip_forward is 0: packets from pods stop at this node',
        'sysctl -w net.ipv4.ip_forward=1, and set it in /etc/sysctl.d/ so it stays (the CNI bridge plugin turns it on with the first pod; something turned it off)',
      );
    }
    return ok('net.ipv4.ip_forward is 1');
  },
};

/** The subnet and MTU the bridge should have: the subnet file's, else the lease weftd holds. */
function bridgeExpectation(f: CheckFacts): { subnet: Cidr; mtu: number } | undefined {
  const held = f.subnetFile.ok ? f.subnetFile.value.held : undefined;
  if (held) return { subnet: held.subnet, mtu: held.mtu };
  const s = f.weftd.ok ? f.weftd.value : undefined;
  if (s?.subnet && s.host.device) return { subnet: parseCidr(s.subnet), mtu: s.host.device.mtu };
  return undefined;
}

interface FirewallCheck {
  readonly name: string;
  /** The weftd flag that asks for the rules. */
  readonly flag: string;
  /** What the rules do, for the summaries. */
  readonly what: string;
  /** What their absence means. */
  readonly without: string;
  /** Where they live, per backend. */
  readonly where: { readonly nftables: string; readonly iptables: string };
  readonly status: (s: DaemonStatus) => FirewallStatus;
  readonly state: (f: CheckFacts) => Outcome<RulesetState> | undefined;
  /** What turning them off leaves to the operator, if anything. */
  readonly offNote: string;
}

/** One of weft's firewall rulesets against what weftd was asked for and installed. */
function firewallCheck({ name, flag, what, without, where, status, state, offNote }: FirewallCheck): Check {
  return {
    name,
    run(f) {
      if (!f.weftd.ok) return skip('weftd does not answer');
      const s = f.weftd.value;
      const cfg = status(s);
      const held = state(f);
      if (!cfg.wanted) {
        if (held?.ok && held.value.present) {
          return warn(`${flag}=false, yet ${where.nftables} (or ${where.iptables}) is in place: left by an earlier weftd that was killed`, `remove it: nft delete table ${where.nftables.replace('table ', '')} (iptables: flush and delete ${where.iptables} and the rule jumping to it)`);
        }
        return ok(`off (${flag}=false)${offNote}`);
      }
      if (cfg.error !== null) return warn(`weftd could not install ${what}: ${cfg.error}`, `install nftables (nft) or iptables and restart weftd${offNote ? ', or drop that traffic in your own firewall' : ''}`);
      if (cfg.backend === null) return skip(`weftd has not installed ${what} yet`);
      const place = cfg.backend === 'nftables' ? where.nftables : where.iptables;
      if (!held) return skip(`${place} not inspected`);
      if (!held.ok) return fail(`cannot inspect ${place}: ${held.error}`, 'run weftctl check as root, with nft or iptables installed');
      const reinstall = `${RESTART.replace('sets it up', 'installs them')}; a firewall manager that replaces the whole ruleset (a flush ruleset, firewalld reloading) removes them: make it leave weft's rules alone`;
      if (!held.value.present) return fail(`${place} is missing: ${without}`, reinstall);
      if (held.value.missing.length > 0) return fail(`${place} lacks ${list(held.value.missing, 2)}`, reinstall);
      return ok(`in place: ${what} (${cfg.backend}, ${place})`);
    },
  };
}

const encapFilter = firewallCheck({
  name: 'encap-filter',
  flag: '--pod-encap-filter',
  what: "the filter dropping pods' UDP to the cluster port",
  without: 'pods can send encapsulated packets, forging any address of the node\'s subnet',
  where: { nftables: `table ip ${ENCAP_NFT_TABLE}`, iptables: `chain ${ENCAP_IPT_CHAIN}` },
  status: (s) => s.host.encapFilter,
  state: (f) => f.encapFilter,
  offNote: ': pods may send encapsulated traffic unless your firewall drops it',
});

const masquerade = firewallCheck({
  name: 'masquerade',
  flag: '--ip-masq',
  what: 'masquerading of pod traffic leaving the cluster network',
  without: 'pods reach nothing outside the cluster network',
  where: { nftables: `table ip ${MASQ_NFT_TABLE}`, iptables: `chain ${MASQ_IPT_CHAIN}` },
  status: (s) => s.host.ipMasq,
  state: (f) => f.ipMasq,
  offNote: '',
});

/** Every peer in the route table answers an echo to its overlay address (its TUN's), through both nodes' dataplanes. */
const peers: Check = {
  name: 'peers',
  run(f) {
    if (!f.weftd.ok) return skip('weftd does not answer');
    const s = f.weftd.value;
    if (s.subnet === null) return skip('this node holds no subnet');
    if (s.peers.length === 0) return ok('no peers: no other node holds a lease');
    if (!f.probes) return skip(`${s.peers.length} peers, not probed (--probe=false)`);
    if (!f.probes.ok) return warn(`cannot probe the peers: ${f.probes.error}`, 'install ping (iputils-ping) and run weftctl check as root');
    const results = f.probes.value;
    const name = (i: number): string => {
      const p = s.peers[i]!;
      return `${p.node} (${p.subnet.replace(/\/\d+$/, '')} via ${p.publicIp}:${p.port})`;
    };
    const silent: string[] = [];
    const lossy: string[] = [];
    const unprobed: string[] = [];
    s.peers.forEach((_, i) => {
      const r = results[i];
      if (r === undefined) unprobed.push(name(i));
      else if (r.received === 0) silent.push(r.error ? `${name(i)}: ${r.error}` : name(i));
      else if (r.received < r.sent) lossy.push(`${name(i)} ${r.received}/${r.sent}`);
    });
    const n = s.peers.length;
    if (silent.length > 0) {
      return fail(
        `${silent.length} of ${n} peers do not answer on the overlay: ${list(silent)}`,
        `run weftctl check on those nodes; between the nodes UDP port ${s.port ?? 4790} must pass both ways (firewalls, security groups); a node that is gone keeps its lease until it expires (weftctl leases shows it)`,
      );
    }
    if (lossy.length > 0 || unprobed.length > 0) {
      const parts = [...(lossy.length > 0 ? [`lost echoes from ${list(lossy)}`] : []), ...(unprobed.length > 0 ? [`${unprobed.length} not probed in time`] : [])];
      return warn(`${n - lossy.length - unprobed.length} of ${n} peers answer every echo; ${parts.join('; ')}`, 'run weftctl check again; loss that stays points at the underlay between the nodes');
    }
    return ok(`${n} of ${n} peers answer on the overlay`);
  },
};

const etcd: Check = {
  name: 'etcd',
  run(f) {
    if (!f.etcd) return skip('not asked');
    if (!f.etcd.ok) return warn(`cannot check etcd: ${f.etcd.error}`, 'give weftctl the etcd flags weftd runs with');
    const e = f.etcd.value;
    const answered = e.members.flatMap((m) => ('status' in m ? [{ endpoint: m.endpoint, ...m.status }] : []));
    const failed = e.members.flatMap((m) => ('error' in m ? [m] : []));
    const n = e.members.length;
    if (answered.length === 0) {
      const refused = failed.find((m) => m.refused);
      if (refused) return warn(`etcd turns weftctl away: ${refused.error}`, 'give weftctl the etcd flags weftd runs with (the WEFT_ETCD_* settings of /etc/weft/weftd.env)');
      return fail(
        `no etcd endpoint answers: ${failed[0]?.error ?? e.endpoints.join(',')}`,
        'nodes keep forwarding with their last route tables, but no lease is renewed or taken: bring etcd back (etcdctl endpoint health), and let this node reach it (TCP 2379)',
      );
    }
    const led = answered.filter((m) => m.leader !== '0');
    if (led.length === 0) {
      return fail(
        `no leader: ${answered.length} of ${n} members answer, none has a leader (the cluster lost its quorum)`,
        'bring back enough members for a majority (etcdctl endpoint status -w table, given every member); until then nodes keep forwarding with their last route tables, but no lease is renewed, taken or released',
      );
    }
    const alarmed = answered.filter((m) => m.alarms.length > 0);
    if (alarmed.length > 0) {
      return fail(
        `alarm on ${list(alarmed.map((m) => `${m.endpoint}: ${m.alarms.join(', ')}`))}`,
        'etcd refuses writes until the alarm is cleared: compact and defragment (etcdctl compact, etcdctl defrag), then etcdctl alarm disarm',
      );
    }
    const s = f.weftd.ok ? f.weftd.value : undefined;
    if (!e.data.ok) return warn(`cannot read weft's keys under ${e.prefix}: ${e.data.error}`, 'give weftctl the etcd flags weftd runs with');
    const config = e.data.value.config;
    if (config === null) {
      return fail(
        `no network config at ${e.prefix}/network/config (etcd lost its data?)`,
        'run weftctl init again with the settings the cluster had (--network, --subnet-len, --vni, --port); running nodes re-create their leases by themselves, new nodes wait for it',
      );
    }
    if (s && s.network !== null && (config.network !== s.network || (s.port !== null && config.port !== s.port))) {
      return fail(
        `the network config in etcd (${config.network}, port ${config.port}) is not the one weftd runs with (${s.network}, port ${s.port ?? '?'})`,
        'the config was replaced (weftctl init --force): restart weftd on every node to apply it',
      );
    }
    const problems = [
      ...failed.map((m) => `${m.endpoint} does not answer (${m.error})`),
      ...answered.filter((m) => m.leader === '0').map((m) => `${m.endpoint} has no leader`),
      ...(s && !s.etcd.connected ? ["weftd's own last call to etcd failed"] : []),
    ];
    // A leader by its endpoint when it is one of those asked, else by its id as etcdctl prints it (hex).
    const leaderName = (id: string): string => answered.find((m) => m.memberId === id)?.endpoint ?? BigInt(id).toString(16);
    const leaders = [...new Set(led.map((m) => m.leader))].map(leaderName);
    const summary = `${answered.length} of ${n} members answer, leader ${leaders.join(' and ')}; config ${config.network}, /${config.subnetLen} subnets, port ${config.port}`;
    if (problems.length > 0) return warn(`${summary}; ${list(problems, 3)}`, 'the cluster works while a majority answers: bring the others back (etcdctl endpoint status -w table, given every member)');
    return ok(summary);
  },
};

/** Every check, in the order they print. */
export const CHECKS: readonly Check[] = [weftd, lease, subnetFile, tun, vxlan, mtu, bridge, ipForward, encapFilter, masquerade, peers, etcd];

/** Runs every check that applies to the engine weftd runs (all when weftd does not answer: engine-specific ones then skip). */
export function runChecks(f: CheckFacts, checks: readonly Check[] = CHECKS): CheckResult[] {
  const engine = f.weftd.ok ? f.weftd.value.engine.kind : undefined;
  return checks.filter((c) => !c.engines || engine === undefined || c.engines.includes(engine)).map((c) => ({ name: c.name, ...c.run(f) }));
}

/** The worst verdict: fail over warn over ok (skips count as ok: the check that names the cause fails). */
export function overall(results: readonly CheckResult[]): 'ok' | 'warn' | 'fail' {
  if (results.some((r) => r.verdict === 'fail')) return 'fail';
  if (results.some((r) => r.verdict === 'warn')) return 'warn';
  return 'ok';
}

/** `weftctl check`'s exit status: 0 ok, 1 warn, 2 fail. */
export const EXIT_STATUS: Readonly<Record<'ok' | 'warn' | 'fail', number>> = { ok: 0, warn: 1, fail: 2 };
