// The object behind mpx_segment, shared by the C entry points that hand out segments
// (mpx/segment.h, and mpx_conn_recv_segment).
#pragma once

#include <memory>

#include "core/handle.hpp"
#include "shm/segment.hpp"

namespace mpx {

class SegmentObject final : public Object {
 public:
  SegmentObject() : Object(HandleType::segment) {}
  std::shared_ptr<Segment> seg;
  bool unlinked = false;
};

}  // namespace mpx
