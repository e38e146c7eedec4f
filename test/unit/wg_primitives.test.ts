// WireGuard's primitives against outside oracles: BLAKE2s and its keyed,
// short-output MAC against Python's hashlib and RFC 7693's keyed test
// vector; HChaCha20 against draft-irtf-cfrg-xchacha's vector and
// XChaCha20-Poly1305 against libsodium (through Python's ctypes); the
// Noise constants C0 and H0; the KDF against node's HKDF; keys against `wg
// pubkey`.

import { execFileSync } from 'node:child_process';
import { hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blake2s } from '../../src/wireguard/blake2s.js';
import { hchacha20 } from '../../src/wireguard/hchacha20.js';
import { dh, formatKey, generateKeyPair, keyPair, parseKey } from '../../src/wireguard/keys.js';
import { INITIAL_CHAIN_KEY, INITIAL_HASH } from '../../src/wireguard/noise.js';
import { aeadOpen, aeadOpenNonce, aeadSeal, aeadSealNonce, kdf, mac, setCounterNonce, xaeadOpen, xaeadSeal } from '../../src/wireguard/primitives.js';
import { tai64n, tai64nAfter } from '../../src/wireguard/tai64n.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Runs a Python program once over JSON input (a batch of cases: one interpreter start, not one per case). */
function python(program: string, input: unknown): unknown {
  return JSON.parse(execFileSync('python3', ['-c', program], { input: JSON.stringify(input), encoding: 'utf8' }));
}

describe('BLAKE2s and MAC', () => {
  it('matches RFC 7693 keyed BLAKE2s-256 of the empty input with key 00..1f', () => {
    expect(hex(blake2s(32, [], Uint8Array.from({ length: 32 }, (_, i) => i)))).toBe('48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49');
  });

  it('matches Python hashlib for random inputs, keys and output lengths (parts split anywhere)', () => {
    const cases = fc.sample(fc.record({ data: fc.uint8Array({ maxLength: 300 }), key: fc.uint8Array({ maxLength: 32 }), out: fc.integer({ min: 1, max: 32 }), cut: fc.nat() }), 300);
    const want = python(
      'import sys,json,hashlib\nprint(json.dumps([hashlib.blake2s(bytes.fromhex(c["d"]),key=bytes.fromhex(c["k"]),digest_size=c["o"]).hexdigest() for c in json.load(sys.stdin)]))',
      cases.map((c) => ({ d: hex(c.data), k: hex(c.key), o: c.out })),
    ) as string[];
    cases.forEach((c, i) => {
      const at = c.data.length === 0 ? 0 : c.cut % c.data.length;
      expect(hex(blake2s(c.out, [c.data.subarray(0, at), c.data.subarray(at)], c.key))).toBe(want[i]);
    });
  });

  it('MAC is BLAKE2s keyed with 16 bytes of output, not a truncated 32-byte one', () => {
    const key = randomBytes(32);
    const data = randomBytes(100);
    const m = mac(key, data);
    expect(m.length).toBe(16);
    expect(hex(m)).not.toBe(hex(blake2s(32, [data], key).subarray(0, 16)));
    const want = python('import sys,json,hashlib\nc=json.load(sys.stdin)\nprint(json.dumps(hashlib.blake2s(bytes.fromhex(c[0]),key=bytes.fromhex(c[1]),digest_size=16).hexdigest()))', [hex(data), hex(key)]);
    expect(hex(m)).toBe(want);
  });
});

describe('HChaCha20 and XChaCha20-Poly1305', () => {
  it('matches the draft-irtf-cfrg-xchacha HChaCha20 test vector', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const nonce = Buffer.from('000000090000004a0000000031415927', 'hex');
    expect(hex(hchacha20(key, nonce))).toBe('82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  });

  it('seals as libsodium\'s crypto_aead_xchacha20poly1305_ietf_encrypt does, and opens what it seals', () => {
    const cases = fc.sample(fc.record({ key: fc.uint8Array({ minLength: 32, maxLength: 32 }), nonce: fc.uint8Array({ minLength: 24, maxLength: 24 }), msg: fc.uint8Array({ maxLength: 64 }), ad: fc.uint8Array({ maxLength: 32 }) }), 50);
    const program = `
import sys, json, ctypes
s = ctypes.CDLL('libsodium.so.23'); s.sodium_init()
out = []
for c in json.load(sys.stdin):
    m, ad, n, k = (bytes.fromhex(c[x]) for x in ('m', 'ad', 'n', 'k'))
    buf = ctypes.create_string_buffer(len(m) + 16); clen = ctypes.c_ulonglong()
    s.crypto_aead_xchacha20poly1305_ietf_encrypt(buf, ctypes.byref(clen), m, ctypes.c_ulonglong(len(m)), ad, ctypes.c_ulonglong(len(ad)), None, n, k)
    out.append(buf.raw[:clen.value].hex())
print(json.dumps(out))`;
    const want = python(program, cases.map((c) => ({ m: hex(c.msg), ad: hex(c.ad), n: hex(c.nonce), k: hex(c.key) }))) as string[];
    cases.forEach((c, i) => {
      const sealed = xaeadSeal(c.key, c.nonce, c.msg, c.ad);
      expect(hex(sealed)).toBe(want[i]);
      expect(hex(xaeadOpen(c.key, c.nonce, sealed, c.ad)!)).toBe(hex(c.msg));
      sealed[0] = sealed[0]! ^ 1;
      expect(xaeadOpen(c.key, c.nonce, sealed, c.ad)).toBeUndefined();
    });
  });
});

describe('Noise constants, KDF, AEAD', () => {
  it('C0 = HASH(Construction) and H0 = HASH(C0 || Identifier)', () => {
    expect(hex(INITIAL_CHAIN_KEY)).toBe('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    expect(hex(INITIAL_HASH)).toBe('2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
  });

  it('KDF1-3 are HKDF-BLAKE2s with the key as salt', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 64 }), (key, input) => {
        const three = Buffer.concat(kdf(3, key, input));
        expect(hex(Buffer.concat(kdf(2, key, input)))).toBe(hex(new Uint8Array(hkdfSync('blake2s256', input, key, new Uint8Array(0), 64))));
        expect(hex(three.subarray(0, 64))).toBe(hex(Buffer.concat(kdf(2, key, input))));
        expect(hex(kdf(1, key, input)[0]!)).toBe(hex(three.subarray(0, 32)));
      }),
      { numRuns: 50 },
    );
  });

  it('AEAD authenticates counter, ciphertext and associated data; the handshake AEAD is counter 0 ChaCha20-Poly1305', () => {
    const key = randomBytes(32);
    const nonce = (counter: number): Buffer => {
      const n = Buffer.alloc(12);
      setCounterNonce(n, counter);
      return n;
    };
    const sealed = aeadSealNonce(key, nonce(7), Buffer.from('hello'), Buffer.from('ad'));
    expect(aeadOpenNonce(key, nonce(7), sealed, Buffer.from('ad'))?.toString()).toBe('hello');
    expect(aeadOpenNonce(key, nonce(8), sealed, Buffer.from('ad'))).toBeUndefined();
    expect(aeadOpenNonce(key, nonce(7), sealed, Buffer.from('AD'))).toBeUndefined();
    expect(aeadOpenNonce(key, nonce(7), sealed.subarray(0, 10), Buffer.from('ad'))).toBeUndefined();
    const handshake = aeadSeal(key, Buffer.from('hello'), Buffer.from('ad'));
    expect(hex(handshake)).toBe(hex(aeadSealNonce(key, nonce(0), Buffer.from('hello'), Buffer.from('ad'))));
    expect(aeadOpen(key, handshake, Buffer.from('ad'))?.toString()).toBe('hello');
    expect(aeadOpen(key, aeadSealNonce(key, nonce(1), Buffer.from('hello'), Buffer.from('ad')), Buffer.from('ad'))).toBeUndefined();
    expect(aeadOpen(key, handshake, Buffer.from('AD'))).toBeUndefined();
    expect(aeadOpen(key, handshake.subarray(0, 10), Buffer.from('ad'))).toBeUndefined();
  });
});

describe('keys and timestamps', () => {
  it('derives the public key `wg pubkey` prints, and parses only canonical base64 of 32 bytes', () => {
    const k = generateKeyPair();
    expect(execFileSync('wg', ['pubkey'], { input: `${formatKey(k.privateKey)}\n`, encoding: 'utf8' }).trim()).toBe(formatKey(k.publicKey));
    const wgKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
    expect(formatKey(keyPair(parseKey(wgKey)!).privateKey)).toBe(wgKey);
    expect(parseKey(formatKey(k.publicKey))).toEqual(k.publicKey);
    for (const bad of ['', 'abc', `${formatKey(k.publicKey)}=`, formatKey(k.publicKey).slice(0, 43), `${formatKey(k.publicKey).slice(0, 42)}B=`, Buffer.alloc(33).toString('base64')]) expect(parseKey(bad), bad).toBeUndefined();
  });

  it('agrees on DH both ways and refuses an all-zero result', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    expect(hex(dh(a, b.publicKey)!)).toBe(hex(dh(b, a.publicKey)!));
    expect(dh(a, new Uint8Array(32))).toBeUndefined();
  });

  it('TAI64N counts from 2^62 + 10, hides the clock below 2^24 ns, and orders by time', () => {
    const t = tai64n(Date.UTC(2026, 0, 1, 0, 0, 0, 999));
    expect(Buffer.from(t).readBigUInt64BE(0)).toBe(0x400000000000000an + BigInt(Date.UTC(2026, 0, 1) / 1000));
    expect(Buffer.from(t).readUInt32BE(8) & 0xffffff).toBe(0);
    expect(tai64nAfter(tai64n(1_000_100), tai64n(1_000_000))).toBe(true);
    expect(tai64nAfter(tai64n(1_000_000), tai64n(1_000_000))).toBe(false);
    expect(tai64nAfter(tai64n(1_000_000), tai64n(1_000_001))).toBe(false);
  });
});
