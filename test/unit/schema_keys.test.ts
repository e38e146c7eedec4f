import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { formatCidr, parseCidr, parseIp, underlayAddressProblem } from '../../src/net/ipv4.js';
import { configKey, normalizePrefix, parseSubnetKey, subnetKey } from '../../src/registry/keys.js';
import { decodeNetworkConfig, decodeSubnetLease, encodeNetworkConfig, encodeSubnetLease } from '../../src/registry/schema.js';

function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isWeftError(err, 'WEFT_VALUE_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('etcd keys', () => {
  it('maps subnets to keys and back', () => {
    const s = parseCidr('10.244.1.0/24');
    expect(subnetKey('/weft', s)).toBe('/weft/network/subnets/10.244.1.0-24');
    expect(parseSubnetKey('/weft', subnetKey('/weft', s))).toEqual(s);
    expect(configKey('/weft')).toBe('/weft/network/config');
  });

  it('rejects keys that are not subnet keys of this prefix', () => {
    for (const k of ['/weft/network/subnets/10.244.1.0', '/weft/network/subnets/10.244.1.1-24', '/other/network/subnets/10.244.1.0-24', '/weft/network/subnets/x-24']) {
      expect(parseSubnetKey('/weft', k)).toBeUndefined();
    }
  });

  it('normalizes prefixes', () => {
    expect(normalizePrefix('weft/')).toBe('/weft');
    expect(normalizePrefix('/a/b')).toBe('/a/b');
    expect(normalizePrefix('/')).toBe('');
  });
});

describe('etcd values (proto3 JSON)', () => {
  it('round-trips a network config and applies defaults', () => {
    const cfg = decodeNetworkConfig('k', '{"network":"10.244.0.0/16","subnetLen":24}');
    expect(formatCidr(cfg.network)).toBe('10.244.0.0/16');
    expect(cfg).toMatchObject({ subnetLen: 24, vni: 1, port: 4790 });
    expect(decodeNetworkConfig('k', encodeNetworkConfig(cfg))).toEqual(cfg);
  });

  it('stores encryption off and the default WireGuard port as before the fields existed, and round-trips the others', () => {
    const off = decodeNetworkConfig('k', '{"network":"10.244.0.0/16","subnetLen":24,"vni":1,"port":4790}');
    expect(off).toMatchObject({ encryption: 'off', wireguardPort: 51820 });
    expect(encodeNetworkConfig(off)).toBe('{"network":"10.244.0.0/16","subnetLen":24,"vni":1,"port":4790}');
    for (const encryption of ['wireguard', 'wireguard-only'] as const) {
      const on = { ...off, encryption, wireguardPort: 51821 };
      expect(JSON.parse(encodeNetworkConfig(on))).toMatchObject({ encryption, wireguardPort: 51821 });
      expect(decodeNetworkConfig('k', encodeNetworkConfig(on))).toEqual(on);
    }
    const key = '/weft/network/config';
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":24,"encryption":"ipsec"}'))).toMatch(/encryption "ipsec" is not one of off, wireguard, wireguard-only/);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":24,"encryption":"wireguard","port":51820}'))).toMatch(/wireguardPort 51820 is the VXLAN-GPE port too/);
  });

  it('takes a lease\'s WireGuard key only as wg prints one, and never all zeros', () => {
    const lease = { nodeName: 'n1', publicIp: '198.18.0.1', port: 4790, vni: 1, version: '0.1.0', engine: 'js', instance: 'a1b2' };
    const wireguardPublicKey = Buffer.alloc(32, 7).toString('base64');
    expect(decodeSubnetLease('k', JSON.stringify({ ...lease, wireguardPublicKey, wireguardPort: 51820 }))).toMatchObject({ wireguardPublicKey, wireguardPort: 51820 });
    const key = '/weft/network/subnets/10.244.1.0-24';
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, wireguardPublicKey: 'abc' })))).toMatch(new RegExp(`${key}: wireguardPublicKey "abc" is not the base64 of a 32-byte key`));
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, wireguardPublicKey: Buffer.alloc(31).toString('base64') })))).toMatch(/not the base64 of a 32-byte key/);
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, wireguardPublicKey: Buffer.alloc(32).toString('base64') })))).toMatch(/all zeros/);
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, wireguardPublicKey, wireguardPort: 70000 })))).toMatch(/wireguardPort 70000 is not a UDP port/);
  });

  it('names the key in every rejection', () => {
    const key = '/weft/network/config';
    expect(invalidMessage(() => decodeNetworkConfig(key, 'not json'))).toContain(key);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":24,"bogus":1}'))).toMatch(/unknown field/);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":16}'))).toMatch(/subnetLen 16/);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.1.0/16","subnetLen":24}'))).toMatch(/host bits/);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":24,"vni":16777216}'))).toMatch(/24 bits/);
    expect(invalidMessage(() => decodeNetworkConfig(key, '{"network":"10.244.0.0/16","subnetLen":-1}'))).toMatch(/out of range/);
  });

  it('round-trips a subnet lease and rejects bad ones', () => {
    const lease = { nodeName: 'n1', publicIp: '198.18.0.1', port: 4790, vni: 1, version: '0.1.0', engine: 'js', instance: 'a1b2' };
    const text = encodeSubnetLease(lease);
    expect(JSON.parse(text)).toEqual(lease);
    // A lease without features (hand-written, or by an older weftd) offers none.
    const unkeyed = { wireguardPublicKey: '', wireguardPort: 0 };
    expect(decodeSubnetLease('k', text)).toEqual({ ...lease, features: [], ...unkeyed });
    const offering = { ...lease, features: ['tcp-csum-partial', 'from-the-future'] };
    expect(decodeSubnetLease('k', encodeSubnetLease(offering))).toEqual({ ...offering, ...unkeyed });
    expect(invalidMessage(() => decodeSubnetLease('k', JSON.stringify({ ...lease, features: 'tcp-csum-partial' })))).toContain('k');
    const key = '/weft/network/subnets/10.244.1.0-24';
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, publicIp: 'nope' })))).toContain(key);
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, nodeName: '' })))).toMatch(/nodeName/);
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, port: 0 })))).toMatch(/port/);
    expect(invalidMessage(() => decodeSubnetLease(key, '[]'))).toContain(key);
    for (const [publicIp, why] of [['0.0.0.0', '"this network"'], ['127.0.0.1', 'loopback'], ['169.254.1.1', 'link-local'], ['224.0.0.5', 'multicast'], ['255.255.255.255', 'broadcast']]) {
      expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, publicIp })))).toContain(`publicIp ${publicIp} `);
      expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, publicIp })))).toContain(why);
    }
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, nodeName: 'n'.repeat(254) })))).toMatch(/nodeName of 254 bytes is longer than 253/);
    expect(decodeSubnetLease(key, JSON.stringify({ ...lease, nodeName: 'n'.repeat(253) })).nodeName).toHaveLength(253);
    expect(invalidMessage(() => decodeSubnetLease(key, JSON.stringify({ ...lease, version: 'v'.repeat(2000) })))).toMatch(/over the 1024-byte limit/);
  });

  it('knows which addresses no node can have, to the edge of each range', () => {
    const good = ['1.0.0.0', '126.255.255.255', '128.0.0.0', '169.253.255.255', '169.255.0.0', '223.255.255.255', '10.0.0.1', '198.19.1.1'];
    const bad = ['0.0.0.0', '0.255.255.255', '127.0.0.0', '127.255.255.255', '169.254.0.0', '169.254.255.255', '224.0.0.0', '239.255.255.255', '240.0.0.0', '255.255.255.255'];
    for (const ip of good) expect(underlayAddressProblem(parseIp(ip)), ip).toBeUndefined();
    for (const ip of bad) expect(underlayAddressProblem(parseIp(ip)), ip).toBeDefined();
    expect(underlayAddressProblem(parseIp('198.18.0.1'))).toBeUndefined();
  });
});
