// C entry points of mpx/segment.h.
#include "mpx/segment.h"

#include "capi/segment.hpp"
#include "capi/util.hpp"

using namespace mpx;
using namespace mpx::capi;

extern "C" {

MPX_API int mpx_segment_options_init(mpx_segment_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_segment_options");
}

MPX_API int mpx_segment_create(mpx_segment **out, size_t bytes, const mpx_segment_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_segment_options"); s != MPX_OK) return s;
  if (opts && (opts->flags & ~uint32_t(MPX_SEGMENT_RANDOM_NAME | MPX_SEGMENT_UNTRACKED)))
    return fail(MPX_EINVAL, "unknown segment flags {:#x}", opts->flags);
  if (opts && opts->name && (opts->flags & MPX_SEGMENT_RANDOM_NAME))
    return fail(MPX_EINVAL, "a name and MPX_SEGMENT_RANDOM_NAME are exclusive");
  const bool tracked = !(opts && (opts->flags & MPX_SEGMENT_UNTRACKED));
  return create_handle<mpx_segment, SegmentObject>(out, [&](SegmentObject *o) -> Status {
    if (opts && opts->name) {
      std::string name;
      if (Status s = Segment::check_name(opts->name, &name); s != MPX_OK) return s;
      return Segment::create_named(name, bytes, tracked, &o->seg);
    }
    if (opts && (opts->flags & MPX_SEGMENT_RANDOM_NAME)) return Segment::create_random(bytes, tracked, &o->seg);
    return Segment::create_anonymous(bytes, &o->seg);
  });
}

MPX_API int mpx_segment_attach(mpx_segment **out, const char *name) {
  return create_handle<mpx_segment, SegmentObject>(out, [&](SegmentObject *o) -> Status {
    std::string n;
    if (Status s = Segment::check_name(name, &n); s != MPX_OK) return s;
    return Segment::attach_named(n, &o->seg);
  });
}

MPX_API int mpx_segment_attach_token(mpx_segment **out, const char *token) {
  return create_handle<mpx_segment, SegmentObject>(out, [&](SegmentObject *o) -> Status {
    Token t;
    if (Status s = parse_token(token, &t); s != MPX_OK) return s;
    return attach_token(t, &o->seg);
  });
}

MPX_API int mpx_segment_destroy(mpx_segment *seg) { return destroy_handle(seg, HandleType::segment); }

MPX_API int mpx_segment_unlink(mpx_segment *seg) {
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  if (!o->seg->named()) return fail(MPX_EINVAL, "an anonymous segment has no name to unlink");
  if (o->unlinked) return fail(MPX_ENOENT, "segment '{}' was already unlinked", o->seg->name());
  Status s = Segment::unlink_name(o->seg->name());
  if (s == MPX_OK) o->unlinked = true;
  return s;
}

MPX_API int mpx_segment_unlink_name(const char *name) {
  return guarded([&]() -> int {
    std::string n;
    if (Status s = Segment::check_name(name, &n); s != MPX_OK) return s;
    return Segment::unlink_name(n);
  });
}

MPX_API int mpx_segment_address(mpx_segment *seg, void **addr) {
  MPX_REQUIRE(addr, "addr is NULL");
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  *addr = o->seg->base();
  return MPX_OK;
}

MPX_API int mpx_segment_size(mpx_segment *seg, size_t *bytes) {
  MPX_REQUIRE(bytes, "bytes is NULL");
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  *bytes = o->seg->size();
  return MPX_OK;
}

MPX_API int mpx_segment_name(mpx_segment *seg, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  return guarded([&] { return copy_out(o->seg->name(), buf, len); });
}

MPX_API int mpx_segment_fd(mpx_segment *seg, int *fd) {
  MPX_REQUIRE(fd, "fd is NULL");
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  *fd = o->seg->fd();
  return MPX_OK;
}

MPX_API int mpx_segment_token(mpx_segment *seg, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  return guarded([&] { return copy_out(o->seg->token(0), buf, len); });
}

}  // extern "C"
