import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GpeCheck, checkGpeHeader, readGpeVni, writeGpeHeader } from '../../src/wire/vxlan_gpe.js';

describe('VXLAN-GPE header', () => {
  it('encodes exactly what the kernel sends for VNI 1', () => {
    const b = Buffer.alloc(8, 0xff);
    writeGpeHeader(b, 0, 1, 1);
    expect(b.toString('hex')).toBe('0c00000100000100');
  });

  it('round-trips any 24-bit VNI at any offset', () => {
    fc.assert(
      fc.property(fc.nat(0xffffff), fc.nat(32), (vni, off) => {
        const b = Buffer.alloc(off + 8);
        writeGpeHeader(b, off, vni, 1);
        return readGpeVni(b, off) === vni && checkGpeHeader(b, off, 8, vni, 1) === GpeCheck.Ok;
      }),
    );
  });

  it('classifies bad headers by reason', () => {
    const good = Buffer.from('0c00000100000700', 'hex');
    expect(checkGpeHeader(good, 0, 8, 7, 1)).toBe(GpeCheck.Ok);
    expect(checkGpeHeader(good, 0, 7, 7, 1)).toBe(GpeCheck.Short);
    expect(checkGpeHeader(good, 0, 8, 8, 1)).toBe(GpeCheck.WrongVni);
    expect(checkGpeHeader(good, 0, 8, 7, 2)).toBe(GpeCheck.NextProto);
    for (const flags of [0x08, 0x04, 0x00, 0x0d, 0x1c, 0x2c]) {
      const b = Buffer.from(good);
      b[0] = flags;
      expect(checkGpeHeader(b, 0, 8, 7, 1), `flags 0x${flags.toString(16)}`).toBe(GpeCheck.BadFlags);
    }
    // Reserved bits and B are ignored, as the draft asks of receivers.
    const tolerated = Buffer.from(good);
    tolerated[0] = 0xce;
    tolerated[1] = 0xff;
    expect(checkGpeHeader(tolerated, 0, 8, 7, 1)).toBe(GpeCheck.Ok);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 16 }), (bytes) => {
      const r = checkGpeHeader(bytes, 0, bytes.length, 1, 1);
      return r >= GpeCheck.Ok && r <= GpeCheck.NextProto;
    }));
  });
});
