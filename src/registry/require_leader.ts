// The gRPC interceptor that makes etcd end weft's long-lived streams on a
// member that has lost its leader, so they move to a member in quorum.

import { type Interceptor, InterceptingCall } from '@grpc/grpc-js';

/**
 * etcd's "require leader" metadata (what etcd's Go client sets with
 * WithRequireLeader): a member that has no leader refuses such a stream, and
 * ends one already open within about three election timeouts, with
 * "etcdserver: no leader". Without it a watch on a member cut off from its
 * peers stays open and silent: the member serves no new revisions, so lease
 * changes stop reaching the node until the next re-list.
 */
const REQUIRE_LEADER_KEY = 'hasleader';

/** The streams weft keeps open: the lease watch and the lease renewals. */
const LEADER_BOUND_METHODS: ReadonlySet<string> = new Set(['/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive']);

/** Adds the require-leader metadata to the calls in LEADER_BOUND_METHODS, and to nothing else. */
export const requireLeader: Interceptor = (options, nextCall) => {
  if (!LEADER_BOUND_METHODS.has(options.method_definition.path)) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set(REQUIRE_LEADER_KEY, 'true');
      next(metadata, listener);
    },
  });
};
