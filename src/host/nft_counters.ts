// nftables named counters read over nfnetlink (NFT_MSG_GETOBJ), in one
// conversation of a few microseconds: no `nft` process per read, so a
// scrape of /metrics reads them exact at that moment.

import { NETLINK_NETFILTER, NLM_F_DUMP, NLM_F_REQUEST, type NlMessage, type NlRequest, attrString, be32Attr, expectDone, netlinkTransact, parseAttrs, strAttr } from './netlink.js';

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETOBJ = 19;
const NFPROTO_IPV4 = 2;
const NFTA_OBJ_TABLE = 1;
const NFTA_OBJ_NAME = 2;
const NFTA_OBJ_TYPE = 3;
const NFTA_OBJ_DATA = 4;
const NFT_OBJECT_COUNTER = 1;
const NFTA_COUNTER_BYTES = 1;
const NFTA_COUNTER_PACKETS = 2;

/** nfgenmsg: the family, version 0, resource id 0. */
const nfgenmsg = (): Buffer => Buffer.from([NFPROTO_IPV4, 0, 0, 0]);

/** A dump of the named counters of `table ip <table>`. */
export function counterDumpRequest(table: string): NlRequest {
  return { type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ, flags: NLM_F_REQUEST | NLM_F_DUMP, body: Buffer.concat([nfgenmsg(), strAttr(NFTA_OBJ_TABLE, table), be32Attr(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER)]) };
}

/** A counter object's name and packet count; undefined for another object. */
export function parseCounter(m: NlMessage): { name: string; packets: number; bytes: number } | undefined {
  const attrs = parseAttrs(m.body, 4);
  const name = attrString(attrs.get(NFTA_OBJ_NAME));
  const data = attrs.get(NFTA_OBJ_DATA);
  if (name === undefined || data === undefined || attrs.get(NFTA_OBJ_TYPE)?.readUInt32BE(0) !== NFT_OBJECT_COUNTER) return undefined;
  const d = parseAttrs(data);
  const v = (t: number): number => {
    const b = d.get(t);
    return b && b.length >= 8 ? Number(b.readBigUInt64BE(0)) : 0;
  };
  return { name, packets: v(NFTA_COUNTER_PACKETS), bytes: v(NFTA_COUNTER_BYTES) };
}

/** The packet counts of `table ip <table>`'s named counters, by name: empty when the table is gone. */
export function readNftCounters(table: string): Map<string, number> {
  const a = expectDone(netlinkTransact(NETLINK_NETFILTER, [counterDumpRequest(table)])[0]!, `read the counters of nftables table ip ${table}`);
  const out = new Map<string, number>();
  for (const m of a.messages) {
    const c = parseCounter(m);
    if (c) out.set(c.name, c.packets);
  }
  return out;
}
