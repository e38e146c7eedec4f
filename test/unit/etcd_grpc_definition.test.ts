// The etcd services weftd's bundle hands the etcd client (src/registry/etcd_grpc_definition.ts)
// against what @grpc/proto-loader makes of the same rpc.proto, as the client loads it: the same
// services and methods (paths, streaming, client method names) and codecs that give the same
// messages and the same objects for etcd's, 64-bit integers, enums, oneofs and defaults included.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { camelCase, grpcServices } from '../../src/registry/etcd_grpc_definition.js';

const require = createRequire(import.meta.url);
const etcd3 = require.resolve('etcd3');
const RPC_PROTO = join(dirname(etcd3), '../proto/rpc.proto');
/** The options the etcd client loads rpc.proto with (etcd3/lib/connection-pool.js). */
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

interface Method {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  originalName?: string;
  requestSerialize(v: object): Buffer;
  requestDeserialize(b: Buffer): object;
  responseSerialize(v: object): Buffer;
  responseDeserialize(b: Buffer): object;
}
type Services = Record<string, Record<string, Method>>;

const protoLoader = createRequire(etcd3)('@grpc/proto-loader') as { loadSync(file: string, o: object): Record<string, unknown> };
const theirs = Object.fromEntries(Object.entries(protoLoader.loadSync(RPC_PROTO, OPTIONS)).filter(([, v]) => !(v as { format?: string }).format)) as Services;
// As build/bundle.mjs makes it: the descriptor, then the services from it.
const ours = grpcServices(new protobuf.Root().loadSync(RPC_PROTO, { keepCase: true }).toJSON(), OPTIONS) as unknown as Services;

const HEADER = { cluster_id: '18446744073709551615', member_id: '10276657743932975437', revision: '9007199254740993', raft_term: '7' };
const KV = { key: Buffer.from('/weft/network/subnets/198.19.3.0-24'), create_revision: '5', mod_revision: '6', version: '1', value: Buffer.from('{"nodeName":"node3"}'), lease: '7587883361462049796' };

/** One request and one response per method the etcd client runs for weft (and the stream ones), as etcd would carry them. */
const SAMPLES: [service: string, method: string, request: object, response: object][] = [
  ['etcdserverpb.KV', 'Range', { key: KV.key, range_end: Buffer.from('/weft/network/subnets0'), limit: '1000', revision: '12345678901234567', sort_order: 'Descend', sort_target: 'Mod', keys_only: true }, { header: HEADER, kvs: [KV, { ...KV, lease: '0' }], more: true, count: '16000' }],
  ['etcdserverpb.KV', 'Txn', {
    compare: [{ result: 'Equal', target: 'Mod', key: KV.key, mod_revision: '0' }, { result: 'Greater', target: 'Version', key: KV.key, version: '3' }],
    success: [{ request_put: { key: KV.key, value: KV.value, lease: KV.lease, prev_kv: true } }],
    failure: [{ request_range: { key: KV.key } }, { request_delete_range: { key: KV.key, prev_kv: true } }],
  }, { header: HEADER, succeeded: false, responses: [{ response_range: { header: HEADER, kvs: [KV], count: '1' } }] }],
  ['etcdserverpb.KV', 'Put', { key: KV.key, value: KV.value, ignore_lease: true }, { header: HEADER, prev_kv: KV }],
  ['etcdserverpb.Watch', 'Watch', { create_request: { key: KV.key, range_end: Buffer.from([0]), start_revision: '10', progress_notify: true, filters: ['Nodelete', 0], prev_kv: true } }, {
    header: HEADER, watch_id: '3', created: true, compact_revision: '2', cancel_reason: 'compacted', events: [{ type: 'Delete', kv: KV, prev_kv: { ...KV, version: '9' } }, { type: 'Put', kv: KV }],
  }],
  ['etcdserverpb.Lease', 'LeaseGrant', { TTL: '86400', ID: '0' }, { header: HEADER, ID: KV.lease, TTL: '86400', error: '' }],
  ['etcdserverpb.Lease', 'LeaseKeepAlive', { ID: KV.lease }, { header: HEADER, ID: KV.lease, TTL: '-1' }],
  ['etcdserverpb.Lease', 'LeaseRevoke', { ID: KV.lease }, { header: HEADER }],
  ['etcdserverpb.Auth', 'Authenticate', { name: 'weft', password: 'pässword' }, { header: HEADER, token: 'abc.def' }],
  ['etcdserverpb.Maintenance', 'Status', {}, { header: HEADER, version: '3.4.23', dbSize: '20480', leader: '1', raftIndex: '77', raftTerm: '7', errors: ['etcdserver: mvcc: database space exceeded'] }],
];

describe('etcd gRPC services from a descriptor', () => {
  it('has the services and methods proto-loader makes, with the same paths, streaming and client names', () => {
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    for (const [service, methods] of Object.entries(theirs)) {
      expect(Object.keys(ours[service]!).sort(), service).toEqual(Object.keys(methods).sort());
      for (const [name, m] of Object.entries(methods)) {
        const o = ours[service]![name]!;
        expect({ path: o.path, requestStream: o.requestStream, responseStream: o.responseStream, originalName: o.originalName }, `${service}.${name}`).toEqual({
          path: m.path,
          requestStream: m.requestStream,
          responseStream: m.responseStream,
          originalName: m.originalName,
        });
      }
    }
  });

  it.each(SAMPLES)('%s.%s: the same messages both ways', (service, method, request, response) => {
    const a = theirs[service]![method]!;
    const b = ours[service]![method]!;
    for (const [value, ser, de] of [[request, 'requestSerialize', 'requestDeserialize'], [response, 'responseSerialize', 'responseDeserialize']] as const) {
      const bytes = a[ser](value);
      // proto-loader's protobufjs 7 also writes fields set to their default, which proto3 leaves out
      // (weft's protobufjs 8 does): other bytes, the same message to any proto3 reader.
      expect(a[de](b[ser](value))).toEqual(a[de](bytes));
      expect(b[de](bytes)).toEqual(a[de](bytes));
      // Every field at its default, as etcd sends an empty message.
      expect(b[de](Buffer.alloc(0))).toEqual(a[de](Buffer.alloc(0)));
    }
  });

  it('keeps 64-bit integers whole, as strings, and enums by name', () => {
    const lease = ours['etcdserverpb.Lease']!.LeaseGrant!;
    expect(lease.responseDeserialize(lease.responseSerialize({ ID: '7587883361462049796', TTL: '60' }))).toMatchObject({ ID: '7587883361462049796', TTL: '60' });
    const range = ours['etcdserverpb.KV']!.Range!;
    expect(range.requestDeserialize(range.requestSerialize(SAMPLES[0]![2]))).toMatchObject({ sort_order: 'Descend', sort_target: 'Mod', revision: '12345678901234567' });
    const watch = ours['etcdserverpb.Watch']!.Watch!;
    expect(watch.responseDeserialize(watch.responseSerialize(SAMPLES[3]![3]))).toMatchObject({ events: [{ type: 'Delete' }, { type: 'Put' }] });
    expect(watch.requestDeserialize(watch.requestSerialize(SAMPLES[3]![2]))).toMatchObject({ create_request: { filters: ['Nodelete', 'Noput'] } });
  });

  it('refuses an array for a message, as proto-loader does', () => {
    expect(() => ours['etcdserverpb.KV']!.Range!.requestSerialize([] as unknown as object)).toThrow('expected object with RangeRequest structure, got array instead');
  });

  it('names client methods as lodash.camelCase does', () => {
    expect(['Range', 'DeleteRange', 'HashKV', 'LeaseTimeToLive', 'MemberAdd', 'UserGrantRole', 'Authenticate'].map(camelCase)).toEqual(['range', 'deleteRange', 'hashKv', 'leaseTimeToLive', 'memberAdd', 'userGrantRole', 'authenticate']);
  });
});
