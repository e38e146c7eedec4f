// etcd's gRPC services as @grpc/grpc-js takes them, from a protobufjs JSON descriptor of the etcd
// client's rpc.proto made at build time: each method's path, streaming and message codecs, which is
// all grpc-js and the etcd client use of @grpc/proto-loader's definition. proto-loader also parses
// the .proto text and encodes a descriptor of every message at load, a tenth of weftd's start; the
// weftd bundle (build/bundle.mjs) hands the etcd client this one instead.

import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** proto-loader's name for a method on the client, besides its proto name: lodash's camelCase ('HashKV' -> 'hashKv'). */
export function camelCase(name: string): string {
  const words = name.match(/[A-Z]{2,}(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+/g) ?? [];
  return words.map((w, k) => (k === 0 ? w.toLowerCase() : w[0]!.toUpperCase() + w.slice(1).toLowerCase())).join('');
}

function method(m: protobuf.Method, service: string, options: protobuf.IConversionOptions): MethodDefinition<object, object> {
  const request = m.resolvedRequestType!;
  const response = m.resolvedResponseType!;
  const serialize = (type: protobuf.Type) => (value: object): Buffer => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
  const deserialize = (type: protobuf.Type) => (bytes: Buffer): object => type.toObject(type.decode(bytes), options);
  return {
    path: `/${service}/${m.name}`,
    requestStream: m.requestStream === true,
    responseStream: m.responseStream === true,
    requestSerialize: serialize(request),
    requestDeserialize: deserialize(request),
    responseSerialize: serialize(response),
    responseDeserialize: deserialize(response),
    originalName: camelCase(m.name),
  };
}

/** Every service under `json`, keyed by its full name ('etcdserverpb.KV'), as grpc.loadPackageDefinition takes them; message types are left out. */
export function grpcServices(json: protobuf.INamespace, options: protobuf.IConversionOptions): Record<string, ServiceDefinition> {
  const root = protobuf.Root.fromJSON(json);
  root.resolveAll();
  const def: Record<string, ServiceDefinition> = {};
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Service) {
        const name = child.fullName.slice(1);
        def[name] = Object.fromEntries(child.methodsArray.map((m) => [m.name, method(m, name, options)]));
      } else if (child instanceof protobuf.Namespace && !(child instanceof protobuf.Type)) {
        visit(child);
      }
    }
  };
  visit(root);
  return def;
}
