// weftctl check's checks as pure functions of hand-written facts: a healthy
// node, then each fact broken the ways nodes break, each naming its check;
// the report's format and exit status; the nft listing comparison.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHECKS, type Check, type CheckResult, EXIT_STATUS, overall, runChecks } from '../../src/check/checks.js';
import { type CheckFacts, type EtcdFacts, type MemberFacts, subnetFileFact } from '../../src/check/facts.js';
import { formatReport, reportJson } from '../../src/check/report.js';
import { encapFilterRuleset } from '../../src/host/encap_filter.js';
import { nftMissingRules } from '../../src/host/firewall.js';
import type { LinkInfo } from '../../src/host/netconf.js';
import { formatNoSubnet, formatSubnetEnv } from '../../src/host/subnet_env.js';
import { parseCidr } from '../../src/net/ipv4.js';
import type { DaemonStatus } from '../../src/observe/status.js';
import { sampleStatus } from '../harness/status_fixture.js';

/** When the facts were gathered. */
const NOW = Date.parse('2026-12-02T12:00:00Z');
/** The subnet file's text (null: absent) as gather.ts puts it in the facts. */
const read = (text: string | null): CheckFacts['subnetFile'] => ({ ok: true, value: subnetFileFact(text, '/run/weft/subnet.env') });
const SUBNET_FILE = formatSubnetEnv({ network: parseCidr('198.19.0.0/16'), subnet: parseCidr('198.19.1.0/24'), mtu: 1464, ipMasq: false, leaseExpiresMs: NOW + 86_000_000 });

const LINKS: LinkInfo[] = [
  { name: 'lo', mtu: 65536, up: true, master: null, addresses: ['127.0.0.1/8'] },
  { name: 'eth0', mtu: 1500, up: true, master: null, addresses: ['198.18.0.1/24'] },
  { name: 'weft0', mtu: 1464, up: true, master: null, addresses: ['198.19.1.0/16'] },
  { name: 'cni0', mtu: 1464, up: true, master: null, addresses: ['198.19.1.1/24'] },
  { name: 'veth1', mtu: 1464, up: true, master: 'cni0', addresses: [] },
];

/** A member whose id is its endpoint's last digit before the port; it follows member 161 (a1 in hex) unless told. */
const member = (endpoint: string, leader = '161'): MemberFacts => ({ endpoint, status: { memberId: endpoint.slice(-6, -5), leader, raftTerm: '4', version: '3.4.23', alarms: [], learner: false } });

const ETCD: EtcdFacts = {
  endpoints: ['http://198.18.0.251:2379', 'http://198.18.0.252:2379'],
  prefix: '/weft',
  members: [member('http://198.18.0.251:2379'), member('http://198.18.0.252:2379')],
  data: {
    ok: true,
    value: {
      config: { network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790 },
      leases: [{ subnet: '198.19.1.0/24', node: 'node1', publicIp: '198.18.0.1', ttlS: 86_000 }],
    },
  },
};

function facts(over: Partial<CheckFacts> = {}, status: Partial<DaemonStatus> = {}): CheckFacts {
  return {
    nowMs: NOW,
    bridge: 'cni0',
    subnetFilePath: '/run/weft/subnet.env',
    weftd: { ok: true, value: sampleStatus(status) },
    subnetFile: read(SUBNET_FILE),
    links: { ok: true, value: LINKS },
    ipForward: true,
    encapFilter: { ok: true, value: { present: true, missing: [] } },
    probes: { ok: true, value: [{ address: '198.19.2.0', sent: 3, received: 3 }, { address: '198.19.3.0', sent: 3, received: 3 }] },
    etcd: { ok: true, value: ETCD },
    ...over,
  };
}

function links(change: (l: LinkInfo) => LinkInfo | undefined, extra: LinkInfo[] = []): CheckFacts['links'] {
  return { ok: true, value: [...LINKS.flatMap((l) => change(l) ?? []), ...extra] };
}

function byName(results: readonly CheckResult[]): Record<string, CheckResult> {
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

/** The checks that are not ok, as name: verdict. */
function notOk(f: CheckFacts): Record<string, string> {
  return Object.fromEntries(runChecks(f).filter((r) => r.verdict !== 'ok').map((r) => [r.name, r.verdict]));
}

function result(f: CheckFacts, name: string): CheckResult {
  const r = byName(runChecks(f))[name];
  if (!r) throw new Error(`no check ${name}`);
  return r;
}

const etcdData = (change: Partial<NonNullable<Extract<EtcdFacts['data'], { ok: true }>['value']>>): CheckFacts['etcd'] => ({
  ok: true,
  value: { ...ETCD, data: { ok: true, value: { ...(ETCD.data as Extract<EtcdFacts['data'], { ok: true }>).value, ...change } } },
});

describe('weftctl check on a healthy node', () => {
  it('passes every check, in the documented order, with exit status 0', () => {
    const results = runChecks(facts());
    expect(results.map((r) => `${r.name} ${r.verdict}`)).toEqual(['weftd', 'lease', 'subnet-file', 'tun', 'mtu', 'bridge', 'ip-forward', 'encap-filter', 'masquerade', 'peers', 'etcd'].map((n) => `${n} ok`));
    expect(results.every((r) => r.fix === undefined)).toBe(true);
    expect(EXIT_STATUS[overall(results)]).toBe(0);
    expect(byName(results).lease!.summary).toBe('198.19.1.0/24 held by node1, expires in 23h53m (TTL 24h00m, renewed every 8h00m)');
    expect(byName(results).etcd!.summary).toBe('2 of 2 members answer, leader a1; config 198.19.0.0/16, /24 subnets, port 4790');
    const led = facts({ etcd: { ok: true, value: { ...ETCD, members: [member('http://198.18.0.251:2379', '2'), member('http://198.18.0.252:2379', '2')] } } });
    expect(result(led, 'etcd').summary).toBe('2 of 2 members answer, leader http://198.18.0.252:2379; config 198.19.0.0/16, /24 subnets, port 4790');
  });
});

describe('weftd', () => {
  it('fails when weftd does not answer, saying so, and skips what needs it', () => {
    const f = facts({ weftd: { ok: false, error: 'weftd is not running or not listening on 127.0.0.1:9474 (ECONNREFUSED)' } });
    expect(notOk(f)).toEqual({ weftd: 'fail', lease: 'skip', 'subnet-file': 'warn', tun: 'skip', vxlan: 'skip', mtu: 'skip', 'encap-filter': 'skip', masquerade: 'skip', peers: 'skip' });
    expect(result(f, 'weftd').fix).toMatch(/systemctl start weftd/);
    expect(EXIT_STATUS[overall(runChecks(f))]).toBe(2);
  });

  it('warns when degraded, fails when not ready, with weftd\'s reasons', () => {
    const degraded = facts({}, { readiness: { status: 'degraded', reasons: ['etcd unreachable for 12 s (grace 300 s); forwarding with the last table'] } });
    expect(result(degraded, 'weftd')).toMatchObject({ verdict: 'warn', summary: expect.stringContaining('etcd unreachable for 12 s') });
    const dead = facts({}, { readiness: { status: 'not_ready', reasons: ['the dataplane stopped forwarding'] } });
    expect(result(dead, 'weftd')).toMatchObject({ verdict: 'fail', fix: expect.stringContaining('watchdog') });
    const starting = facts({}, { state: 'starting', subnet: null, leaseExpiresInS: null, host: { ...sampleStatus().host, device: null }, readiness: { status: 'not_ready', reasons: ['starting: no lease or dataplane yet', 'waiting for etcd http://198.18.0.254:2379: it has not answered yet'] } });
    expect(result(starting, 'weftd')).toMatchObject({ verdict: 'fail', summary: expect.stringContaining('waiting for etcd') });
    expect(result(starting, 'lease').verdict).toBe('skip');
  });
});

describe('a node without a subnet', () => {
  const full = 'waiting for a free /24 in 198.19.0.0/22 (all 3 leased; the first subnet is never handed out)';
  const waiting = (noSubnet: string): Partial<DaemonStatus> => ({
    state: 'waiting',
    subnet: null,
    noSubnet,
    leaseExpiresInS: null,
    peers: [],
    host: { ...sampleStatus().host, device: null },
    readiness: { status: 'not_ready', reasons: [`no subnet: ${noSubnet}`] },
  });
  const marker = formatNoSubnet({ network: parseCidr('198.19.0.0/22'), reason: full });

  it('fails weftd and the lease with the reason, and passes a subnet file that says there is none', () => {
    const f = facts({ subnetFile: read(marker), probes: undefined }, waiting(full));
    expect(notOk(f)).toEqual({ weftd: 'fail', lease: 'fail', tun: 'skip', mtu: 'skip', bridge: 'skip', peers: 'skip' });
    expect(result(f, 'lease').summary).toBe(`no lease held: ${full}`);
    expect(result(f, 'weftd')).toMatchObject({ summary: `up, not ready: no subnet: ${full} (node node1, weftd 0.1.0, engine native)`, fix: expect.stringMatching(/remove the leases of nodes that are gone .* or widen the network/) });
    expect(result(f, 'subnet-file').summary).toBe(`/run/weft/subnet.env says this node holds no subnet (${full}): the CNI plugin answers "try again later"`);
  });

  it('says weftd takes another subnet by itself after losing its own', () => {
    const lost = 'lost 198.19.1.0/24: its key names node node5 (198.18.0.5) now; taking another subnet';
    const f = facts({ subnetFile: read(formatNoSubnet({ network: parseCidr('198.19.0.0/16'), reason: lost, lost: parseCidr('198.19.1.0/24') })) }, waiting(lost));
    expect(result(f, 'lease')).toMatchObject({ verdict: 'fail', summary: `no lease held: ${lost}`, fix: expect.stringContaining('weftd takes a free subnet as soon as it can') });
  });

  it('fails a subnet file that still names a subnet the node does not hold', () => {
    const f = facts({ probes: undefined }, waiting(full));
    expect(result(f, 'subnet-file')).toMatchObject({ verdict: 'fail', summary: expect.stringContaining('names 198.19.1.0/24, but weftd holds no subnet') });
  });
});

describe('lease', () => {
  it('fails when etcd has no lease for the subnet, or gives it to another node', () => {
    expect(result(facts({ etcd: etcdData({ leases: [] }) }), 'lease')).toMatchObject({ verdict: 'fail', summary: '198.19.1.0/24 has no lease in etcd (deleted, or expired): other nodes have dropped its route' });
    const taken = facts({ etcd: etcdData({ leases: [{ subnet: '198.19.1.0/24', node: 'node9', publicIp: '198.18.0.9', ttlS: 80_000 }] }) });
    expect(result(taken, 'lease')).toMatchObject({ verdict: 'fail', summary: '198.19.1.0/24 is leased to node node9 (198.18.0.9) in etcd, not to node1' });
    expect(result(taken, 'subnet-file')).toMatchObject({ verdict: 'fail', summary: expect.stringContaining('etcd leases 198.19.1.0/24 to node node9') });
  });

  it('warns under half the TTL (weftd\'s or etcd\'s count), fails at expiry, warns on a key without TTL', () => {
    expect(result(facts({}, { leaseExpiresInS: 40_000 }), 'lease')).toMatchObject({ verdict: 'warn', summary: expect.stringMatching(/expires in 11h06m, under half its TTL of 24h00m: renewals are failing$/) });
    expect(result(facts({ etcd: etcdData({ leases: [{ subnet: '198.19.1.0/24', node: 'node1', publicIp: '198.18.0.1', ttlS: 100 }] }) }), 'lease').verdict).toBe('warn');
    expect(result(facts({}, { leaseExpiresInS: 0 }), 'lease').verdict).toBe('fail');
    expect(result(facts({ etcd: etcdData({ leases: [{ subnet: '198.19.1.0/24', node: 'node1', publicIp: '198.18.0.1', ttlS: -1 }] }) }), 'lease').summary).toMatch(/has no TTL/);
  });

  it('goes by weftd alone when etcd cannot be read', () => {
    expect(result(facts({ etcd: { ok: true, value: { ...ETCD, data: { ok: false, error: 'permission denied' } } } }), 'lease').verdict).toBe('ok');
  });
});

describe('subnet file', () => {
  it('fails when missing while weftd holds a subnet, and when it does not parse', () => {
    expect(result(facts({ subnetFile: read(null) }), 'subnet-file')).toMatchObject({ verdict: 'fail', summary: '/run/weft/subnet.env does not exist, though weftd holds 198.19.1.0/24: no pod gets an address' });
    expect(result(facts({ subnetFile: read('FLANNEL_NETWORK=198.19.0.0/16\n') }), 'subnet-file')).toMatchObject({ verdict: 'fail', summary: '/run/weft/subnet.env: FLANNEL_SUBNET is missing' });
  });

  it('fails a file whose lease time has passed: weftd no longer rewrites it, and the CNI plugin refuses pods', () => {
    const old = formatSubnetEnv({ network: parseCidr('198.19.0.0/16'), subnet: parseCidr('198.19.1.0/24'), mtu: 1464, ipMasq: false, leaseExpiresMs: NOW - 1000 });
    expect(result(facts({ subnetFile: read(old) }), 'subnet-file')).toMatchObject({
      verdict: 'fail',
      summary: '/run/weft/subnet.env names 198.19.1.0/24 (its lease expired at 2026-12-02T11:59:59.000Z as far as the file says, so the CNI plugin hands out no address)',
    });
    expect(result(facts({ subnetFile: read(old), weftd: { ok: false, error: 'down' } }), 'subnet-file').summary).toMatch(/but weftd does not answer \(its lease expired at/);
  });

  it('lists every value that differs from what weftd runs with', () => {
    const other = formatSubnetEnv({ network: parseCidr('198.19.0.0/16'), subnet: parseCidr('198.19.7.0/24'), mtu: 1400, ipMasq: true });
    expect(result(facts({ subnetFile: read(other) }), 'subnet-file').summary).toBe(
      '/run/weft/subnet.env does not match the lease: subnet 198.19.7.0/24, the lease 198.19.1.0/24; MTU 1400, weft0\'s 1464; FLANNEL_IPMASQ true, weftd\'s --ip-masq false',
    );
  });
});

describe('tun and mtu', () => {
  it('fails a TUN that is gone, down, or has another MTU or address', () => {
    expect(result(facts({ links: links((l) => (l.name === 'weft0' ? undefined : l)) }), 'tun')).toMatchObject({ verdict: 'fail', summary: 'weft0 does not exist: nothing is forwarded' });
    const changed = links((l) => (l.name === 'weft0' ? { ...l, up: false, mtu: 1400, addresses: ['198.19.9.0/16'] } : l));
    expect(result(facts({ links: changed }), 'tun').summary).toBe('weft0 is down, has MTU 1400, not the 1464 weftd set, lacks its address 198.19.1.0/16 (has 198.19.9.0/16)');
  });

  it('applies only to the engines that have a TUN', () => {
    const kernel = facts({ links: links((l) => (l.name === 'weft0' ? undefined : l)) }, { engine: { kind: 'kernel', details: {} } });
    expect(runChecks(kernel).map((r) => r.name)).not.toContain('tun');
    const extra: Check = { name: 'vxlan', engines: ['kernel'], run: () => ({ verdict: 'ok', summary: 'the kernel engine\'s own' }) };
    expect(runChecks(kernel, [...CHECKS, extra]).at(-1)).toEqual({ name: 'vxlan', verdict: 'ok', summary: 'the kernel engine\'s own' });
    expect(runChecks(facts(), [...CHECKS, extra]).map((r) => r.name)).not.toContain('vxlan');
  });

  it('checks the kernel engine\'s VXLAN-GPE device as the TUN: there, up, its MTU and /32 address', () => {
    const vxlanFacts = (l: (link: LinkInfo) => LinkInfo | undefined): CheckFacts =>
      facts({ links: links(l) }, { engine: { kind: 'kernel', details: {} }, host: { ...sampleStatus().host, device: { kind: 'vxlan', name: 'weft0', mtu: 1464, address: '198.19.1.0/32' } } });
    expect(result(vxlanFacts((l) => (l.name === 'weft0' ? { ...l, addresses: ['198.19.1.0/32'] } : l)), 'vxlan')).toMatchObject({ verdict: 'ok', summary: 'weft0 up, MTU 1464, 198.19.1.0/32' });
    expect(result(vxlanFacts((l) => (l.name === 'weft0' ? undefined : l)), 'vxlan')).toMatchObject({ verdict: 'fail', summary: 'weft0 does not exist: nothing is forwarded' });
    expect(runChecks(facts()).map((r) => r.name)).not.toContain('vxlan');
  });

  it('fails a TUN MTU the underlay cannot carry, warns when the underlay changed since start, skips a NAT\'d underlay', () => {
    const small = links((l) => (l.name === 'eth0' ? { ...l, mtu: 1450 } : l));
    expect(result(facts({ links: small }), 'mtu')).toMatchObject({
      verdict: 'fail',
      summary: "weft0's MTU 1464 plus 36 bytes of encapsulation exceeds eth0's MTU 1450: packets over 1414 bytes are lost (ping works, large transfers stall)",
      fix: expect.stringContaining('at most 1414'),
    });
    const jumbo = links((l) => (l.name === 'eth0' ? { ...l, mtu: 9000 } : l));
    expect(result(facts({ links: jumbo }), 'mtu')).toMatchObject({ verdict: 'warn', summary: "eth0's MTU is 9000 now, 1500 when weftd started" });
    const natd = facts({}, { publicIp: '203.0.113.7', host: { ...sampleStatus().host, underlay: { iface: null, mtu: 1500 } } });
    expect(result(natd, 'mtu').verdict).toBe('skip');
    const byAddress = facts({}, { host: { ...sampleStatus().host, underlay: { iface: null, mtu: 1500 } } });
    expect(result(byAddress, 'mtu')).toMatchObject({ verdict: 'ok', summary: "weft0 1464 + 36 fits eth0's 1500" });
  });
});

describe('bridge', () => {
  it('passes before the first pod, when there is no bridge yet', () => {
    expect(result(facts({ links: links((l) => (l.name === 'cni0' || l.master === 'cni0' ? undefined : l)) }), 'bridge')).toMatchObject({ verdict: 'ok', summary: expect.stringContaining('does not exist yet') });
  });

  it('fails a bridge left on another subnet (flannel\'s "cni0 already has an IP address different from")', () => {
    const old = links((l) => (l.name === 'cni0' ? { ...l, addresses: ['198.19.4.1/24'] } : l));
    const r = result(facts({ links: old }), 'bridge');
    expect(r).toMatchObject({ verdict: 'fail', summary: 'cni0 has 198.19.4.1/24, not the gateway 198.19.1.1/24 of 198.19.1.0/24 (1 pod interface on it)' });
    expect(r.fix).toMatch(/delete the pods on cni0 .* the next pod's ADD then moves cni0 to 198\.19\.1\.1\/24/);
    const both = links((l) => (l.name === 'cni0' ? { ...l, addresses: ['198.19.1.1/24', '198.19.4.1/24'] } : l));
    expect(result(facts({ links: both }), 'bridge').summary).toMatch(/^cni0 has 198\.19\.1\.1\/24, 198\.19\.4\.1\/24 besides the gateway/);
    const bare = links((l) => (l.name === 'cni0' ? { ...l, addresses: [] } : l));
    expect(result(facts({ links: bare }), 'bridge').summary).toMatch(/^cni0 has no address, not the gateway/);
  });

  it('fails a bridge or pod interface with an MTU above the subnet file\'s, warns below it', () => {
    const big = links((l) => (l.name === 'veth1' ? { ...l, mtu: 1500 } : l));
    expect(result(facts({ links: big }), 'bridge')).toMatchObject({ verdict: 'fail', summary: "MTU above the subnet file's 1464: veth1 1500 (large packets to and from these pods are lost; ping works)" });
    const low = links((l) => (l.name === 'cni0' ? { ...l, mtu: 1400 } : l));
    expect(result(facts({ links: low }), 'bridge').verdict).toBe('warn');
  });

  it('follows weftd\'s lease when the subnet file is unusable, and a bridge given by --bridge', () => {
    const other = links((l) => (l.name === 'cni0' ? { ...l, name: 'br-pods' } : l.master === 'cni0' ? { ...l, master: 'br-pods' } : l));
    expect(result(facts({ bridge: 'br-pods', links: other, subnetFile: read(null) }), 'bridge')).toMatchObject({ verdict: 'ok', summary: 'br-pods 198.19.1.1/24, MTU 1464, 1 pod interface' });
  });
});

describe('ip-forward', () => {
  it('fails when the kernel does not forward, skips when it cannot tell', () => {
    expect(result(facts({ ipForward: false }), 'ip-forward')).toMatchObject({ verdict: 'fail', summary: 'net.ipv4.ip_forward is 0: packets from pods stop at this node', fix: expect.stringContaining('sysctl -w net.ipv4.ip_forward=1') });
    expect(result(facts({ ipForward: undefined }), 'ip-forward').verdict).toBe('skip');
  });
});

describe('firewall rules', () => {
  it('fails when the table is gone or rules are missing, as weftd installed them', () => {
    expect(result(facts({ encapFilter: { ok: true, value: { present: false, missing: [] } } }), 'encap-filter')).toMatchObject({ verdict: 'fail', summary: 'table ip weft_encap is missing: pods can send encapsulated packets, forging any address of the node\'s subnet' });
    expect(result(facts({ encapFilter: { ok: true, value: { present: true, missing: ['chain forward: x'] } } }), 'encap-filter').summary).toBe('table ip weft_encap lacks chain forward: x');
    const masq = facts({ ipMasq: { ok: true, value: { present: false, missing: [] } } }, { host: { ...sampleStatus().host, ipMasq: { wanted: true, backend: 'iptables', error: null } } });
    expect(result(masq, 'masquerade')).toMatchObject({ verdict: 'fail', summary: 'chain WEFT-POSTROUTING is missing: pods reach nothing outside the cluster network' });
  });

  it('warns when weftd could not install the filter, or an earlier weftd left masquerade rules behind', () => {
    const failed = facts({ encapFilter: undefined }, { host: { ...sampleStatus().host, encapFilter: { wanted: true, backend: null, error: 'needs nft (nftables) or iptables on PATH' } } });
    expect(result(failed, 'encap-filter')).toMatchObject({ verdict: 'warn', summary: expect.stringContaining('needs nft') });
    expect(result(facts({ ipMasq: { ok: true, value: { present: true, missing: [] } } }), 'masquerade')).toMatchObject({ verdict: 'warn', summary: expect.stringContaining('left by an earlier weftd') });
    const off = facts({ encapFilter: undefined }, { host: { ...sampleStatus().host, encapFilter: { wanted: false, backend: null, error: null } } });
    expect(result(off, 'encap-filter')).toMatchObject({ verdict: 'ok', summary: expect.stringMatching(/^off \(--pod-encap-filter=false\)/) });
  });
});

describe('peers', () => {
  it('fails naming each peer that does not answer; warns on loss and on peers not probed in time', () => {
    const silent = facts({ probes: { ok: true, value: [{ address: '198.19.2.0', sent: 3, received: 0 }, { address: '198.19.3.0', sent: 0, received: 0, error: 'connect: Network is unreachable' }] } });
    expect(result(silent, 'peers').summary).toBe('2 of 2 peers do not answer on the overlay: node2 (198.19.2.0 via 198.18.0.2:4790), node3 (198.19.3.0 via 198.18.0.3:4790): connect: Network is unreachable');
    expect(result(silent, 'peers').fix).toMatch(/UDP port 4790 must pass both ways/);
    const lossy = facts({ probes: { ok: true, value: [{ address: '198.19.2.0', sent: 3, received: 2 }, undefined] } });
    expect(result(lossy, 'peers')).toMatchObject({ verdict: 'warn', summary: '0 of 2 peers answer every echo; lost echoes from node2 (198.19.2.0 via 198.18.0.2:4790) 2/3; 1 not probed in time' });
  });

  it('passes a node alone, skips without probes, warns when ping is missing', () => {
    expect(result(facts({}, { peers: [] }), 'peers').summary).toBe('no peers: no other node holds a lease');
    expect(result(facts({ probes: undefined }), 'peers')).toMatchObject({ verdict: 'skip', summary: '2 peers, not probed (--probe=false)' });
    expect(result(facts({ probes: { ok: false, error: 'ping: command not found' } }), 'peers').verdict).toBe('warn');
  });
});

describe('etcd', () => {
  const members = (...m: MemberFacts[]): CheckFacts['etcd'] => ({ ok: true, value: { ...ETCD, members: m, endpoints: m.map((x) => x.endpoint) } });
  const down = (endpoint: string): MemberFacts => ({ endpoint, error: 'connect ECONNREFUSED', refused: false });

  it('fails when no member answers, or none has a leader; warns when etcd turns weftctl away', () => {
    expect(result(facts({ etcd: members(down('http://a:2379'), down('http://b:2379')) }), 'etcd')).toMatchObject({ verdict: 'fail', summary: 'no etcd endpoint answers: connect ECONNREFUSED' });
    expect(result(facts({ etcd: members(member('http://a:2379', '0'), down('http://b:2379'), down('http://c:2379')) }), 'etcd')).toMatchObject({
      verdict: 'fail',
      summary: 'no leader: 1 of 3 members answer, none has a leader (the cluster lost its quorum)',
    });
    expect(result(facts({ etcd: members({ endpoint: 'http://a:2379', error: 'permission denied', refused: true }) }), 'etcd').verdict).toBe('warn');
  });

  it('warns while a majority answers with a member down or leaderless', () => {
    const r = result(facts({ etcd: members(member('http://a:2379'), member('http://b:2379', '0'), down('http://c:2379')) }), 'etcd');
    expect(r).toMatchObject({ verdict: 'warn', summary: '2 of 3 members answer, leader a1; config 198.19.0.0/16, /24 subnets, port 4790; http://c:2379 does not answer (connect ECONNREFUSED), http://b:2379 has no leader' });
  });

  it('fails on an alarm, a missing config, and a config weftd does not run with', () => {
    const alarmed: MemberFacts = { endpoint: 'http://a:2379', status: { memberId: '1', leader: '1', raftTerm: '2', version: '3.4.23', alarms: ['NOSPACE'], learner: false } };
    expect(result(facts({ etcd: members(alarmed) }), 'etcd')).toMatchObject({ verdict: 'fail', fix: expect.stringContaining('alarm disarm') });
    expect(result(facts({ etcd: etcdData({ config: null }) }), 'etcd')).toMatchObject({ verdict: 'fail', summary: 'no network config at /weft/network/config (etcd lost its data?)' });
    expect(result(facts({ etcd: etcdData({ config: { network: '198.19.0.0/17', subnetLen: 24, vni: 1, port: 4790 } }) }), 'etcd').summary).toMatch(/^the network config in etcd \(198\.19\.0\.0\/17, port 4790\) is not the one weftd runs with/);
  });
});

describe('report', () => {
  const results = runChecks(facts({ links: links((l) => (l.name === 'eth0' ? { ...l, mtu: 1450 } : l)), probes: undefined }));

  it('prints one line per check and the fix under each failure, then the tally', () => {
    const text = formatReport(results);
    const lines = text.split('\n');
    expect(lines[0]).toBe('ok    weftd         running and ready (node node1, weftd 0.1.0, engine native)');
    expect(lines).toContain("fail  mtu           weft0's MTU 1464 plus 36 bytes of encapsulation exceeds eth0's MTU 1450: packets over 1414 bytes are lost (ping works, large transfers stall)");
    expect(lines[lines.indexOf(lines.find((l) => l.startsWith('fail  mtu'))!) + 1]).toMatch(/^ {20}fix: leave --mtu unset/);
    expect(lines.at(-2)).toBe('fail: 1 fail, 9 ok, 1 skip');
  });

  it('gives the same as JSON, with the overall status', () => {
    const json = JSON.parse(reportJson(results)) as { status: string; checks: CheckResult[] };
    expect(json.status).toBe('fail');
    expect(json.checks).toEqual(results);
  });

  it('exits with the worst verdict: 0 ok, 1 warn, 2 fail; skips count as ok', () => {
    const verdict = fc.constantFrom('ok', 'warn', 'fail', 'skip') as fc.Arbitrary<CheckResult['verdict']>;
    fc.assert(
      fc.property(fc.array(verdict, { minLength: 1, maxLength: 12 }), (verdicts) => {
        const code = EXIT_STATUS[overall(verdicts.map((v, i) => ({ name: String(i), verdict: v, summary: '' })))];
        expect(code).toBe(verdicts.includes('fail') ? 2 : verdicts.includes('warn') ? 1 : 0);
      }),
    );
  });
});

describe('nft listing against the rules weftd installs', () => {
  const rules = encapFilterRuleset(parseCidr('198.19.0.0/16'), 4790);
  const listing = (forward: string): string =>
    [
      'table ip weft_encap {',
      '\tchain input {',
      '\t\ttype filter hook input priority filter; policy accept;',
      '\t\tip saddr 198.19.0.0/16 udp dport 4790 counter packets 12 bytes 960 drop comment "weft: pods may not send encapsulated traffic"',
      '\t}',
      '',
      '\tchain forward {',
      '\t\ttype filter hook forward priority filter; policy accept;',
      forward,
      '\t}',
      '}',
      '',
    ].join('\n');

  it('finds every rule in nft\'s own listing, counters\' figures aside', () => {
    expect(nftMissingRules(rules.nftBody, listing('\t\tip saddr 198.19.0.0/16 udp dport 4790 counter packets 0 bytes 0 drop comment "weft: pods may not send encapsulated traffic"'))).toEqual([]);
  });

  it('names a rule missing from its chain, even when another chain has it', () => {
    expect(nftMissingRules(rules.nftBody, listing(''))).toEqual(['chain forward: ip saddr 198.19.0.0/16 udp dport 4790 counter drop comment "weft: pods may not send encapsulated traffic"']);
    expect(nftMissingRules(rules.nftBody, 'table ip weft_encap {\n}\n')).toHaveLength(4);
  });
});
