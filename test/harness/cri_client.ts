// A CRI client as kubelet is one: runtime.v1's RuntimeService (and
// ImageService's ImageStatus) over a runtime's unix socket (gRPC with @grpc/grpc-js; messages from cri_v1.proto through
// protobufjs). Every call is bounded by a deadline; a failure names the
// method, the socket and the runtime's own message.

import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const PROTO = fileURLToPath(new URL('./cri_v1.proto', import.meta.url));
const RUNTIME = 'runtime.v1.RuntimeService';
const IMAGES = 'runtime.v1.ImageService';
const DEFAULT_DEADLINE_MS = 60_000;

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PortMapping {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE';

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: { namespaceOptions?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode } };
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: { key: string; value: string }[];
  labels?: Record<string, string>;
  logPath?: string;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  network: { ip: string; additionalIps: { ip: string }[] } | null;
  labels: Record<string, string>;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  labels: Record<string, string>;
}

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

/** A failed call: the gRPC status code and the runtime's message. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly grpcCode: grpc.status,
    readonly details: string,
    socket: string,
  ) {
    super(`CRI ${method} on ${socket}: ${grpc.status[grpcCode] ?? grpcCode}: ${details}`);
    this.name = 'CriError';
  }
}

type Unary = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response?: unknown) => void) => grpc.ClientUnaryCall;

let schema: protobuf.Namespace | undefined;

/** A service's methods with protobufjs codecs: enums as names, 64-bit integers as numbers, defaults filled in. */
function serviceDefinition(name: string): grpc.ServiceDefinition {
  schema ??= protobuf.loadSync(PROTO).resolveAll();
  const service = schema.lookupService(name);
  const methods: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const m of service.methodsArray) {
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    const toObject = (t: protobuf.Type) => (b: Buffer) => t.toObject(t.decode(b), { enums: String, longs: Number, defaults: true, arrays: true, objects: true });
    const encode = (t: protobuf.Type) => (o: object) => Buffer.from(t.encode(t.fromObject(o as Record<string, unknown>)).finish());
    methods[m.name] = {
      path: `/${name}/${m.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: encode(req),
      requestDeserialize: toObject(req),
      responseSerialize: encode(res),
      responseDeserialize: toObject(res),
    };
  }
  return methods;
}

function clientOf(service: string, socket: string): Record<string, Unary> {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(service), service);
  return new Client(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<string, Unary>;
}

export class CriClient {
  private readonly runtime: Record<string, Unary>;
  private readonly images: Record<string, Unary>;

  /** `socket`: the runtime's gRPC unix socket, e.g. containerd's `[grpc] address`. */
  constructor(
    readonly socket: string,
    private readonly deadlineMs = DEFAULT_DEADLINE_MS,
  ) {
    this.runtime = clientOf(RUNTIME, socket);
    this.images = clientOf(IMAGES, socket);
  }

  private call<T>(method: string, request: object, deadlineMs = this.deadlineMs, client = this.runtime): Promise<T> {
    const fn = client[method]!.bind(client);
    return new Promise((resolve, reject) => {
      fn(request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, response) => {
        if (err) reject(new CriError(method, err.code, err.details, this.socket));
        else resolve(response as T);
      });
    });
  }

  version(): Promise<VersionResponse> {
    return this.call('Version', { version: 'v1' });
  }

  /** The runtime's conditions (RuntimeReady, NetworkReady), as kubelet polls them. */
  async status(): Promise<RuntimeCondition[]> {
    const r = await this.call<{ status: { conditions: RuntimeCondition[] } | null }>('Status', {});
    return r.status?.conditions ?? [];
  }

  /** Creates and starts a sandbox (its network through CNI ADD); its id. */
  async runPodSandbox(config: PodSandboxConfig, deadlineMs?: number): Promise<string> {
    return (await this.call<{ podSandboxId: string }>('RunPodSandbox', { config }, deadlineMs)).podSandboxId;
  }

  /** The sandbox's status, and with `verbose` the runtime's own info (containerd: JSON under "info"). */
  async podSandboxStatus(id: string, verbose = false): Promise<{ status: PodSandboxStatus; info: Record<string, string> }> {
    return this.call('PodSandboxStatus', { podSandboxId: id, verbose });
  }

  async listPodSandbox(): Promise<PodSandbox[]> {
    return (await this.call<{ items: PodSandbox[] }>('ListPodSandbox', {})).items;
  }

  /** Stops its containers and tears its network down (CNI DEL). */
  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId: id });
  }

  /** A container in a sandbox (`sandboxConfig`: the one the sandbox was run with, as kubelet passes it); its id. */
  async createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return (await this.call<{ containerId: string }>('CreateContainer', { podSandboxId: sandboxId, config, sandboxConfig })).containerId;
  }

  async startContainer(id: string): Promise<void> {
    await this.call('StartContainer', { containerId: id });
  }

  /** The image as the runtime's CRI knows it by `ref`, or undefined. */
  async imageStatus(ref: string): Promise<{ id: string; repoTags: string[] } | undefined> {
    return (await this.call<{ image: { id: string; repoTags: string[] } | null }>('ImageStatus', { image: { image: ref } }, this.deadlineMs, this.images)).image ?? undefined;
  }

  close(): void {
    for (const c of [this.runtime, this.images]) (c as unknown as grpc.Client).close();
  }
}
