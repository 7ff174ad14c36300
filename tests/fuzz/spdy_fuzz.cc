// Fuzz target for the SPDY/3 frame decoder (control/agent/streaming). The
// input is fed in chunks whose sizes come from its first byte (incremental
// decoding at arbitrary split points), and these invariants must hold, else
// the process traps:
//
//  - decoding never reads outside the input (ASan / the exact-size copies of
//    the replay driver) and never buffers more than it was fed;
//  - an error names the frame ("SPDY <TYPE> frame at offset N ...") and
//    poisons the decoder: every later next() fails too;
//  - every frame that decodes re-encodes, and that encoding decodes back to
//    the same frame (header blocks through a second compression context).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "control/agent/streaming/spdy_frame.h"

namespace {

using namespace sluice::agent::streaming::spdy;

// Names the violated invariant before trapping (traps merge, lines blur).
#define check(cond)                                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "spdy_fuzz: invariant failed: %s (line %d)\n", #cond, __LINE__); \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

bool sameFrame(const Frame& a, const Frame& b) {
  if (a.type != b.type || a.flags != b.flags || a.streamId != b.streamId ||
      a.headers != b.headers || a.data != b.data || a.status != b.status || a.pingId != b.pingId ||
      a.lastGoodStreamId != b.lastGoodStreamId || a.deltaWindow != b.deltaWindow ||
      a.settings.size() != b.settings.size()) {
    return false;
  }
  for (size_t i = 0; i < a.settings.size(); ++i) {
    if (a.settings[i].flags != b.settings[i].flags || a.settings[i].id != b.settings[i].id ||
        a.settings[i].value != b.settings[i].value) {
      return false;
    }
  }
  if (a.type == FrameType::kSynStream) {
    return a.associatedId == b.associatedId && a.priority == b.priority && a.slot == b.slot;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;

  FrameDecoder decoder;
  FrameEncoder reencoder;
  FrameDecoder redecoder;
  size_t fed = 0;
  while (left > 0) {
    const size_t n = left < chunk ? left : chunk;
    decoder.feed(p, n);
    p += n;
    left -= n;
    fed += n;
    for (;;) {
      auto f = decoder.next();
      check(decoder.buffered() <= fed);
      if (!f.ok()) {
        check(f.error().message.rfind("SPDY ", 0) == 0);
        check(f.error().message.find(" frame at offset ") != std::string::npos);
        check(!decoder.next().ok());
        return 0;
      }
      if (!f->has_value()) break;
      const Frame& frame = **f;
      if (frame.type == FrameType::kUnknown) continue;
      auto wire = reencoder.encode(frame);
      check(wire.ok());
      redecoder.feed(wire->data(), wire->size());
      auto back = redecoder.next();
      check(back.ok() && back->has_value() && redecoder.buffered() == 0);
      check(sameFrame(frame, **back));
    }
  }
  return 0;
}
