// Test-only JS access to offload.h: see offload_binding.h. Argument unpacking
// and result building only; the work is in offload.cc.
//
//   tsoSegment(vnetHdrAndPacket: Buffer, headroom: number, maxSegs?: number, outCap?: number)
//     -> (Buffer[] & { stride: number, headroomIntact: boolean }) | null
//     Each segment as a new Buffer, without headroom; null when tso_segment
//     returns -1 (also for a buffer shorter than the vnet header).
//     headroomIntact: no byte outside the segments was written.
//   tsoHeaders(vnetHdrAndPacket: Buffer, maxSegs?: number, partial?: boolean) -> Buffer[] | null
//     What the engine sends for a super-packet: each segment as tso_headers'
//     headers (headroom 8, as the engine's) followed by its payload slice
//     of the super-packet; null when tso_headers returns -1. partial: TCP
//     checksums left partial, as toward a kPeerTcpCsumPartial peer.
//   flowHash(packet: Buffer) -> number   (wire.h flow_hash, for the differential test)
//   icmpUnreachable(packet: Buffer, from: number, code: number, mtu: number) -> Buffer   (wire.h write_icmp_unreachable)
//   completeChecksum(packet: Buffer, csumStart: number, csumOffset: number) -> boolean   (in place)
//   coalesce(packets: Buffer[], partial?: boolean) -> Buffer[]   (each: vnet header + packet, as written to the TUN)
#include "offload_binding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "napi_util.h"
#include "offload.h"
#include "wire.h"

namespace weft {
namespace {

constexpr uint8_t kFill = 0xa5;  // pre-fills tsoSegment's output, to see stray writes

// Frees malloc'd memory on scope exit (no exceptions involved: plain RAII).
struct Freer {
  void* p;
  ~Freer() { free(p); }
};

// An optional boolean argument: false when undefined (also when not passed).
bool optional_bool(napi_env env, napi_value value, const char* what, bool* out) {
  *out = false;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_undefined) return true;
  return typed_arg(env, value, napi_boolean, what, "a boolean") && napi_get_value_bool(env, value, out) == napi_ok;
}

// An optional integer argument in [min, max]: `def` when undefined (also when not passed).
bool optional_integer(napi_env env, napi_value value, const char* what, double min, double max, double def, double* out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_undefined) {
    *out = def;
    return true;
  }
  return integer_arg(env, value, what, min, max, out);
}

// A super-packet as tsoSegment and tsoHeaders take it: a Buffer holding a
// virtio_net_hdr and the packet after it.
struct SuperPacket {
  VnetHdr h;
  const uint8_t* pkt;
  size_t len;
};

// Reads a SuperPacket argument. False with an exception pending when it is
// no Buffer; *valid false when vnet_hdr_read refuses it (the call answers null).
bool super_packet_arg(napi_env env, napi_value value, SuperPacket* sp, bool* valid) {
  uint8_t* data;
  size_t len;
  if (!buffer_arg(env, value, "vnetHdrAndPacket", &data, &len)) return false;
  *valid = vnet_hdr_read(data, len, &sp->h);
  if (*valid) {
    sp->pkt = data + kVnetHdrLen;
    sp->len = len - kVnetHdrLen;
  }
  return true;
}

// tsoSegment's optional maxSegs and outCap (arguments 2 and 3). The
// defaults are just large enough for any acceptable packet: at most
// ceil(pkt_len / gso_size) segments, each at most headroom + 120 header
// bytes + min(gso_size, pkt_len).
bool segment_limits(napi_env env, napi_value* argv, const SuperPacket& sp, double headroom, double* max_segs, double* out_cap) {
  const size_t gso_size = sp.h.gso_size;
  const size_t seg_bound = gso_size > 0 ? (sp.len + gso_size - 1) / gso_size + 1 : 1;
  const size_t mss_bound = gso_size < sp.len ? gso_size : sp.len;
  const double default_cap = static_cast<double>(seg_bound) * (headroom + 120 + static_cast<double>(mss_bound));
  return optional_integer(env, argv[2], "maxSegs", 0, 1 << 20, static_cast<double>(seg_bound), max_segs) &&
         optional_integer(env, argv[3], "outCap", 0, 1 << 30, default_cap, out_cap);
}

// tso_segment's output: n segments, segment i at bytes + i * stride +
// headroom and lens[i] long, in cap bytes that were all kFill before.
struct Segments {
  const uint8_t* bytes;
  size_t cap;
  size_t headroom;
  size_t stride;
  const uint16_t* lens;
  int n;
  size_t start(int i) const { return static_cast<size_t>(i) * stride + headroom; }
};

// True when every byte outside the segments still holds the fill.
bool fill_intact(const Segments& s) {
  bool intact = true;
  size_t pos = 0;
  for (int i = 0; i < s.n; i++) {
    for (; pos < s.start(i); pos++) intact = intact && s.bytes[pos] == kFill;
    pos = s.start(i) + s.lens[i];
  }
  for (; pos < s.cap; pos++) intact = intact && s.bytes[pos] == kFill;
  return intact;
}

// The segments as a new Buffer each, in an array with .stride and
// .headroomIntact; nullptr with an exception pending.
napi_value segments_value(napi_env env, const Segments& s) {
  napi_value result, stride_value, intact_value;
  if (napi_create_array_with_length(env, static_cast<size_t>(s.n), &result) != napi_ok ||
      napi_create_double(env, static_cast<double>(s.stride), &stride_value) != napi_ok ||
      napi_get_boolean(env, fill_intact(s), &intact_value) != napi_ok ||
      napi_set_named_property(env, result, "stride", stride_value) != napi_ok ||
      napi_set_named_property(env, result, "headroomIntact", intact_value) != napi_ok) {
    return throw_last_napi_error(env);
  }
  for (int i = 0; i < s.n; i++) {
    napi_value seg;
    if (napi_create_buffer_copy(env, s.lens[i], s.bytes + s.start(i), nullptr, &seg) != napi_ok ||
        napi_set_element(env, result, static_cast<uint32_t>(i), seg) != napi_ok) {
      return throw_last_napi_error(env);
    }
  }
  return result;
}

napi_value js_tso_segment(napi_env env, napi_callback_info info) {
  napi_value argv[4], null_value;
  SuperPacket sp;
  bool valid;
  double headroom, max_segs, out_cap;
  if (!get_some_args(env, info, 2, 4, argv, "tsoSegment(vnetHdrAndPacket, headroom)") || !super_packet_arg(env, argv[0], &sp, &valid) ||
      !integer_arg(env, argv[1], "headroom", 0, 4096, &headroom) || napi_get_null(env, &null_value) != napi_ok) {
    return throw_last_napi_error(env);
  }
  if (!valid) return null_value;
  if (!segment_limits(env, argv, sp, headroom, &max_segs, &out_cap)) return nullptr;

  const size_t cap = static_cast<size_t>(out_cap);
  Freer out{malloc(cap > 0 ? cap : 1)};
  Freer lens{malloc(sizeof(uint16_t) * (static_cast<size_t>(max_segs) + 1))};
  if (out.p == nullptr || lens.p == nullptr) {
    napi_throw_error(env, "ENOMEM", "tsoSegment: out of memory");
    return nullptr;
  }
  uint8_t* out_bytes = static_cast<uint8_t*>(out.p);
  uint16_t* seg_lens = static_cast<uint16_t*>(lens.p);
  memset(out_bytes, kFill, cap);

  size_t stride = 0;
  const int n = tso_segment(sp.pkt, sp.len, sp.h, out_bytes, cap, static_cast<size_t>(headroom), &stride, seg_lens,
                            static_cast<int>(max_segs));
  if (n < 0) return null_value;
  return segments_value(env, Segments{out_bytes, cap, static_cast<size_t>(headroom), stride, seg_lens, n});
}

napi_value js_tso_headers(napi_env env, napi_callback_info info) {
  napi_value argv[3], null_value;
  SuperPacket sp;
  bool valid, partial;
  double max_segs;
  if (!get_some_args(env, info, 1, 3, argv, "tsoHeaders(vnetHdrAndPacket)") || !super_packet_arg(env, argv[0], &sp, &valid) ||
      !optional_integer(env, argv[1], "maxSegs", 0, 1 << 20, 1 << 16, &max_segs) || !optional_bool(env, argv[2], "partial", &partial) ||
      napi_get_null(env, &null_value) != napi_ok) {
    return throw_last_napi_error(env);
  }
  if (!valid) return null_value;
  constexpr size_t kHeadroom = kGpeHeaderLen;  // as the engine's
  const size_t seg_bound = sp.h.gso_size > 0 ? (sp.len + sp.h.gso_size - 1) / sp.h.gso_size + 1 : 1;
  const size_t cap = seg_bound * (kHeadroom + 120);
  Freer out{malloc(cap)};
  if (out.p == nullptr) {
    napi_throw_error(env, "ENOMEM", "tsoHeaders: out of memory");
    return nullptr;
  }
  uint8_t* hdrs = static_cast<uint8_t*>(out.p);
  TsoPlan plan;
  const int n = tso_headers(sp.pkt, sp.len, sp.h, hdrs, cap, kHeadroom, &plan, static_cast<int>(max_segs), partial);
  if (n < 0) return null_value;
  napi_value result;
  if (napi_create_array_with_length(env, static_cast<size_t>(n), &result) != napi_ok) return throw_last_napi_error(env);
  for (int i = 0; i < n; i++) {
    const size_t payload = i + 1 < n ? plan.mss : plan.last_payload;
    void* seg_data;
    napi_value seg;
    if (napi_create_buffer(env, plan.hdrs + payload, &seg_data, &seg) != napi_ok) return throw_last_napi_error(env);
    memcpy(seg_data, hdrs + size_t(i) * plan.hdr_stride + kHeadroom, plan.hdrs);
    memcpy(static_cast<uint8_t*>(seg_data) + plan.hdrs, sp.pkt + plan.hdrs + size_t(i) * plan.mss, payload);
    if (napi_set_element(env, result, static_cast<uint32_t>(i), seg) != napi_ok) return throw_last_napi_error(env);
  }
  return result;
}

// A Buffer holding at least an IPv4 header, or a thrown error naming `fn`.
bool ipv4_packet_arg(napi_env env, napi_value value, const char* fn, uint8_t** data, size_t* len) {
  if (!buffer_arg(env, value, "packet", data, len)) return false;
  if (*len >= 20) return true;
  char msg[96];
  snprintf(msg, sizeof(msg), "%s: an IPv4 header needs 20 bytes", fn);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return false;
}

napi_value js_flow_hash(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "flowHash(packet)")) return throw_last_napi_error(env);
  uint8_t* data;
  size_t len;
  if (!ipv4_packet_arg(env, argv[0], "flowHash", &data, &len)) return nullptr;
  napi_value result;
  if (napi_create_uint32(env, flow_hash(data, len), &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

napi_value js_icmp_unreachable(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "icmpUnreachable(packet, from, code, mtu)")) return throw_last_napi_error(env);
  uint8_t* data;
  size_t len;
  double from, code, mtu;
  if (!ipv4_packet_arg(env, argv[0], "icmpUnreachable", &data, &len) || !integer_arg(env, argv[1], "from", 0, 4294967295.0, &from) ||
      !integer_arg(env, argv[2], "code", 0, 255, &code) || !integer_arg(env, argv[3], "mtu", 0, 65535, &mtu)) {
    return nullptr;
  }
  uint8_t out[kIcmpErrorMax];
  const size_t n = write_icmp_unreachable(out, data, len, uint32_t(from), uint8_t(code), uint16_t(mtu));
  napi_value result;
  if (napi_create_buffer_copy(env, n, out, nullptr, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

napi_value js_complete_checksum(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "completeChecksum(packet, csumStart, csumOffset)")) return throw_last_napi_error(env);
  uint8_t* data;
  size_t len;
  double start, offset;
  if (!buffer_arg(env, argv[0], "packet", &data, &len) || !integer_arg(env, argv[1], "csumStart", 0, 65535, &start) ||
      !integer_arg(env, argv[2], "csumOffset", 0, 65535, &offset)) {
    return nullptr;
  }
  napi_value result;
  const bool ok = complete_checksum(data, len, static_cast<uint16_t>(start), static_cast<uint16_t>(offset));
  if (napi_get_boolean(env, ok, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// Appends the coalescer's flushed output (if any) to `result` at *count.
// The iovecs are gathered into one Buffer, as writev hands them to the TUN.
bool push_flushed(napi_env env, TcpCoalescer* c, napi_value result, uint32_t* count) {
  const iovec* iov;
  int iovcnt;
  const size_t n = c->flush(&iov, &iovcnt);
  if (n == 0) return true;
  napi_value buf;
  void* data;
  if (napi_create_buffer(env, n, &data, &buf) != napi_ok) return false;
  uint8_t* at = static_cast<uint8_t*>(data);
  for (int i = 0; i < iovcnt; i++) {
    memcpy(at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  if (napi_set_element(env, result, *count, buf) != napi_ok) return false;
  (*count)++;
  return true;
}

napi_value js_coalesce(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool partial;
  if (!get_some_args(env, info, 1, 2, argv, "coalesce(packets)") || !optional_bool(env, argv[1], "partial", &partial)) {
    return throw_last_napi_error(env);
  }
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok) return throw_last_napi_error(env);
  if (!is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "packets must be an array of Buffers");
    return nullptr;
  }
  napi_value result;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok || napi_create_array(env, &result) != napi_ok) return throw_last_napi_error(env);

  // The packets stay in their (JS-owned) Buffers, unchanged, for the whole call.
  TcpCoalescer c;
  uint32_t count = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    uint8_t* data;
    size_t len;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok) return throw_last_napi_error(env);
    if (!buffer_arg(env, item, "packets[i]", &data, &len)) return nullptr;
    if (c.add(data, len, partial)) continue;
    if (!push_flushed(env, &c, result, &count)) return throw_last_napi_error(env);
    c.add(data, len, partial);  // refused only when empty or too long: a drop, as in the engine
  }
  if (!push_flushed(env, &c, result, &count)) return throw_last_napi_error(env);
  return result;
}

}  // namespace

napi_status init_offload_exports(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"tsoSegment", nullptr, js_tso_segment, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"tsoHeaders", nullptr, js_tso_headers, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"flowHash", nullptr, js_flow_hash, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"icmpUnreachable", nullptr, js_icmp_unreachable, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"completeChecksum", nullptr, js_complete_checksum, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"coalesce", nullptr, js_coalesce, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace weft
