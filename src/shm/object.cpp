#include "shm/object.hpp"


#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"

namespace mpx {

namespace {

constexpr size_t kArenaBytes = size_t(1) << 20;
constexpr size_t kOwnSegmentAbove = size_t(64) << 10;

uint32_t header_check(uint32_t magic, uint16_t version, uint16_t type, uint32_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ magic;
  h = (h ^ version) * 0xff51afd7ed558ccdull;
  h = (h ^ type) * 0xc4ceb9fe1a85ec53ull;
  h = (h ^ size) * 0xff51afd7ed558ccdull;
  return uint32_t(h ^ (h >> 32));
}

ObjectHeader make_header(ObjType type, uint32_t size) {
  return ObjectHeader{kObjectMagic, kLayoutVersion, uint16_t(type), size,
                      header_check(kObjectMagic, kLayoutVersion, uint16_t(type), size)};
}

// Small objects are carved out of a per-process arena (one memfd, one descriptor for many
// objects). Offsets are never reused: another process may still use a destroyed object's
// bytes. A forked child starts its own arena so that parent and child never hand out the
// same offset.
struct Arena {
  platform::ForkMutex mu{platform::ForkMutex::kArena};
  std::shared_ptr<Segment> seg;
  size_t used = 0;
  uint32_t owner_pid = 0;
};
Arena g_arena;

}  // namespace

const char *obj_type_name(ObjType t) noexcept {
  switch (t) {
    case ObjType::lock: return "lock";
    case ObjType::semaphore: return "semaphore";
    case ObjType::event: return "event";
    case ObjType::condition: return "condition";
    case ObjType::barrier: return "barrier";
    case ObjType::array: return "array";
    case ObjType::queue: return "queue";
    case ObjType::pool: return "pool";
  }
  return "object";
}

Status Placement::allocate(ObjType type, size_t body_bytes, Placement *out) {
  const size_t total = sizeof(ObjectHeader) + body_bytes;
  if (total > UINT32_MAX) return fail(MPX_EINVAL, "object of {} bytes is too large", total);
  Placement p;
  if (total > kOwnSegmentAbove) {
    if (Status s = Segment::create_anonymous(total, &p.seg_); s != MPX_OK) return s;
    p.offset_ = 0;
  } else {
    const size_t rounded = (total + kObjectAlign - 1) & ~(kObjectAlign - 1);
    g_arena.mu.lock();
    const uint32_t me = platform::current_pid();
    if (!g_arena.seg || g_arena.owner_pid != me || g_arena.used + rounded > g_arena.seg->size()) {
      std::shared_ptr<Segment> fresh;
      if (Status s = Segment::create_anonymous(kArenaBytes, &fresh); s != MPX_OK) {
        g_arena.mu.unlock();
        return s;
      }
      g_arena.seg = std::move(fresh);
      g_arena.used = 0;
      g_arena.owner_pid = me;
    }
    p.seg_ = g_arena.seg;
    p.offset_ = g_arena.used;
    g_arena.used += rounded;
    g_arena.mu.unlock();
  }
  p.hdr_ = reinterpret_cast<ObjectHeader *>(p.seg_->base() + p.offset_);
  p.expected_ = make_header(type, uint32_t(total));
  *out = std::move(p);
  return MPX_OK;
}

void Placement::publish() {
  std::memcpy(reinterpret_cast<uint8_t *>(hdr_) + 4, reinterpret_cast<const uint8_t *>(&expected_) + 4,
              sizeof(ObjectHeader) - 4);
  __atomic_store_n(&hdr_->magic, expected_.magic, __ATOMIC_RELEASE);
}

Status Placement::validate(std::shared_ptr<Segment> seg, uint64_t offset, ObjType type, size_t min_body,
                           Placement *out) {
  const size_t seg_size = seg->size();
  if (offset % kObjectAlign != 0 || offset > seg_size || seg_size - offset < sizeof(ObjectHeader))
    return fail(MPX_ECORRUPT, "object offset {} does not fit a segment of {} bytes", offset, seg_size);
  auto *hdr = reinterpret_cast<ObjectHeader *>(seg->base() + offset);
  ObjectHeader h;
  std::memcpy(&h, hdr, sizeof h);
  if (h.magic != kObjectMagic || h.check != header_check(h.magic, h.version, h.type, h.size))
    return fail(MPX_ECORRUPT, "no valid mpx object header at offset {}", offset);
  if (h.version != kLayoutVersion)
    return fail(MPX_ECORRUPT, "object layout version {} is not {}", h.version, kLayoutVersion);
  if (h.type != uint16_t(type))
    return fail(MPX_EINVAL, "token names a {}, not a {}", obj_type_name(ObjType(h.type)), obj_type_name(type));
  if (h.size < sizeof(ObjectHeader) + min_body || h.size > seg_size - offset)
    return fail(MPX_ECORRUPT, "object claims {} bytes at offset {} of a {}-byte segment", h.size, offset, seg_size);
  Placement p;
  p.seg_ = std::move(seg);
  p.offset_ = offset;
  p.hdr_ = hdr;
  p.expected_ = h;
  *out = std::move(p);
  return MPX_OK;
}

Status Placement::attach(const char *token, ObjType type, size_t min_body, Placement *out) {
  Token t;
  if (Status s = parse_token(token, &t); s != MPX_OK) return s;
  std::shared_ptr<Segment> seg;
  if (Status s = attach_token(t, &seg); s != MPX_OK) return s;
  return validate(std::move(seg), t.offset, type, min_body, out);
}

Status Placement::corrupt() const noexcept {
  return fail(MPX_ECORRUPT, "shared {} at offset {} failed validation (header or state overwritten)",
              obj_type_name(ObjType(expected_.type)), offset_);
}

}  // namespace mpx
