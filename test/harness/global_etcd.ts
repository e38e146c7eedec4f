// vitest global setup: one etcd on loopback for the whole run; each test
// isolates itself under its own key prefix.
import type { TestProject } from 'vitest/node';
import { startEtcd } from './etcd_server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    etcdEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const etcd = await startEtcd();
  project.provide('etcdEndpoint', etcd.endpoint);
  return () => etcd.stop();
}
