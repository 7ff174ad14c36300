#include "control/agent/streaming/spdy_session.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace sluice::agent::streaming {

using spdy::Frame;
using spdy::FrameEncoder;
using spdy::FrameType;

namespace {
// One read from the connection; frames larger than this are assembled by
// the decoder across reads.
constexpr size_t kReadChunk = 64 * 1024;
}  // namespace

// ---- SpdyStream ----

Result<size_t> SpdyStream::read(char* buf, size_t len) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || remoteClosed_; });
  if (queue_.empty()) return size_t{0};
  std::string& front = queue_.front();
  const size_t n = std::min(len, front.size() - frontOffset_);
  std::memcpy(buf, front.data() + frontOffset_, n);
  frontOffset_ += n;
  queuedBytes_ -= n;
  if (frontOffset_ == front.size()) {
    queue_.pop_front();
    frontOffset_ = 0;
  }
  cv_.notify_all();  // the reader loop may wait for space
  return n;
}

Result<void> SpdyStream::write(std::string_view data) {
  while (!data.empty()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (reset_) {
        return Error::unavailable("SPDY stream " + std::to_string(id_) + ": reset");
      }
      if (localClosed_) {
        return Error::invalid("SPDY stream " + std::to_string(id_) + ": write after FIN");
      }
    }
    const std::string_view chunk = data.substr(0, kMaxDataFrame);
    auto r = session_->writeFrame(
        [&](FrameEncoder& enc) { return enc.data(id_, chunk, /*fin=*/false); });
    if (!r.ok()) return r.error().wrap("SPDY stream " + std::to_string(id_));
    data.remove_prefix(chunk.size());
  }
  return okResult();
}

Result<void> SpdyStream::closeWrite() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (localClosed_ || reset_) return okResult();
    localClosed_ = true;
  }
  auto r = session_->writeFrame([&](FrameEncoder& enc) { return enc.data(id_, {}, /*fin=*/true); });
  session_->maybeForget(*this);
  return r;
}

void SpdyStream::reset(spdy::RstStatus status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reset_ || (localClosed_ && remoteClosed_)) return;
    reset_ = localClosed_ = remoteClosed_ = true;
    queue_.clear();
    queuedBytes_ = 0;
    frontOffset_ = 0;
    cv_.notify_all();
  }
  (void)session_->writeFrame([&](FrameEncoder& enc) { return enc.rstStream(id_, status); });
  session_->maybeForget(*this);
}

bool SpdyStream::resetByPeer() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peerReset_;
}

void SpdyStream::setOnTeardown(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  if (tornDown_) {
    lock.unlock();
    fn();
    return;
  }
  onTeardown_ = std::move(fn);
}

void SpdyStream::stopReading() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    remoteClosed_ = true;
    queue_.clear();
    queuedBytes_ = 0;
    frontOffset_ = 0;
    cv_.notify_all();
  }
  session_->maybeForget(*this);
}

// ---- SpdySession ----

SpdySession::~SpdySession() = default;

Result<void> SpdySession::writeFrame(
    const std::function<Result<std::string>(FrameEncoder&)>& build) {
  std::lock_guard<std::mutex> lock(writeMu_);
  if (writeFailed_) return Error::unavailable("SPDY connection: an earlier write failed");
  auto bytes = build(encoder_);
  if (!bytes.ok()) return bytes.error();
  auto r = conn_.write(*bytes);
  if (!r.ok()) writeFailed_ = true;
  return r;
}

std::shared_ptr<SpdyStream> SpdySession::findStream(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

void SpdySession::maybeForget(const SpdyStream& stream) {
  {
    std::lock_guard<std::mutex> lock(stream.mu_);
    if (!stream.localClosed_ || !stream.remoteClosed_) return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  streams_.erase(stream.id_);
}

void SpdySession::tearDown(SpdyStream& stream) {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lock(stream.mu_);
    if (stream.tornDown_) return;
    stream.tornDown_ = true;
    fn = std::move(stream.onTeardown_);
  }
  if (fn) fn();
}

void SpdySession::endAllStreams() {
  std::map<uint32_t, std::shared_ptr<SpdyStream>> streams;
  {
    std::lock_guard<std::mutex> lock(mu_);
    streams.swap(streams_);
    ended_ = true;
  }
  for (auto& [id, s] : streams) {
    {
      std::lock_guard<std::mutex> lock(s->mu_);
      s->remoteClosed_ = true;
      s->cv_.notify_all();
    }
    tearDown(*s);
  }
}

uint64_t SpdySession::pingsEchoed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pingsEchoed_;
}

void SpdySession::close() {
  uint32_t last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    goneAway_ = true;
    last = lastClientStreamId_;
  }
  closing_ = true;
  (void)writeFrame([&](FrameEncoder& enc) { return enc.goAway(last, spdy::GoAwayStatus::kOk); });
  conn_.close();
  // Wake a reader loop waiting for space in a full stream.
  std::vector<std::shared_ptr<SpdyStream>> streams;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, s] : streams_) streams.push_back(s);
  }
  for (auto& s : streams) {
    std::lock_guard<std::mutex> lock(s->mu_);
    s->cv_.notify_all();
  }
}

Result<void> SpdySession::serve(const Handlers& handlers) {
  spdy::FrameDecoder decoder;
  std::vector<char> buf(kReadChunk);
  Result<void> result;
  bool done = false;
  while (!done) {
    auto n = conn_.read(buf.data(), buf.size());
    if (!n.ok()) {
      result = n.error().wrap("SPDY connection");
      break;
    }
    if (*n == 0) break;  // the client closed the connection
    decoder.feed(buf.data(), *n);
    for (;;) {
      auto frame = decoder.next();
      if (!frame.ok()) {
        uint32_t last;
        {
          std::lock_guard<std::mutex> lock(mu_);
          goneAway_ = true;
          last = lastClientStreamId_;
        }
        (void)writeFrame([&](FrameEncoder& enc) {
          return enc.goAway(last, spdy::GoAwayStatus::kProtocolError);
        });
        result = frame.error();
        done = true;
        break;
      }
      if (!frame->has_value()) break;
      if (auto r = dispatch(**frame, handlers); !r.ok()) {
        result = r.error();
        done = true;
        break;
      }
    }
  }
  endAllStreams();
  return result;
}

Result<void> SpdySession::dispatch(Frame& f, const Handlers& handlers) {
  switch (f.type) {
    case FrameType::kSynStream:
      onSynStream(f, handlers);
      return okResult();
    case FrameType::kData: {
      auto s = findStream(f.streamId);
      if (!s) return okResult();  // closed or never opened: dropped, as spdystream does
      const bool fin = (f.flags & spdy::kFlagFin) != 0;
      {
        std::unique_lock<std::mutex> lock(s->mu_);
        if (s->remoteClosed_) return okResult();
        // Backpressure: wait until the stream's reader drained below the cap.
        s->cv_.wait(lock, [&] {
          return s->queuedBytes_ < SpdyStream::kMaxBufferedBytes || s->remoteClosed_ ||
                 closing_.load();
        });
        if (s->remoteClosed_) return okResult();
        if (!f.data.empty()) {
          s->queuedBytes_ += f.data.size();
          s->queue_.push_back(std::move(f.data));
        }
        if (fin) s->remoteClosed_ = true;
        s->cv_.notify_all();
      }
      if (fin) maybeForget(*s);
      return okResult();
    }
    case FrameType::kRstStream: {
      auto s = findStream(f.streamId);
      if (!s) return okResult();
      {
        std::lock_guard<std::mutex> lock(s->mu_);
        s->reset_ = s->peerReset_ = s->localClosed_ = s->remoteClosed_ = true;
        // spdystream drops unread data on reset too: the client gave up.
        s->queue_.clear();
        s->queuedBytes_ = 0;
        s->frontOffset_ = 0;
        s->cv_.notify_all();
      }
      maybeForget(*s);
      tearDown(*s);
      return okResult();
    }
    case FrameType::kPing:
      // Odd ids are the client's (spdystream: the client counts 1, 3, ...):
      // echo them unchanged. Even ids would answer pings of ours; we send none.
      if (f.pingId & 1) {
        auto r = writeFrame([&](FrameEncoder& enc) { return enc.ping(f.pingId); });
        if (!r.ok()) return r.error().wrap("SPDY PING echo");
        std::lock_guard<std::mutex> lock(mu_);
        ++pingsEchoed_;
      }
      return okResult();
    case FrameType::kGoAway: {
      std::lock_guard<std::mutex> lock(mu_);
      goneAway_ = true;
      return okResult();
    }
    case FrameType::kSettings:  // spdystream ignores both: no flow control
    case FrameType::kWindowUpdate:
    case FrameType::kHeaders:   // kubectl sends none after SYN_STREAM
    case FrameType::kSynReply:  // we open no streams
    case FrameType::kUnknown:
      return okResult();
  }
  return okResult();
}

void SpdySession::onSynStream(Frame& f, const Handlers& handlers) {
  const uint32_t id = f.streamId;
  bool refuse = false;
  bool invalid = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if ((id & 1) == 0 || id <= lastClientStreamId_) {
      // spdystream's validateStreamId: client ids are odd and increase.
      invalid = true;
    } else {
      lastClientStreamId_ = id;
      refuse = goneAway_;
    }
  }
  if (invalid || refuse) {
    (void)writeFrame([&](FrameEncoder& enc) {
      return enc.rstStream(
          id, invalid ? spdy::RstStatus::kProtocolError : spdy::RstStatus::kRefusedStream);
    });
    return;
  }
  auto stream = std::make_shared<SpdyStream>(this, id, std::move(f.headers));
  if (f.flags & spdy::kFlagFin) stream->remoteClosed_ = true;
  if (f.flags & spdy::kFlagUnidirectional) stream->localClosed_ = true;
  if (handlers.accept) {
    if (auto ok = handlers.accept(*stream); !ok.ok()) {
      // kubelet: a stream without valid headers gets Reset(), not a reply.
      (void)writeFrame(
          [&](FrameEncoder& enc) { return enc.rstStream(id, spdy::RstStatus::kCancel); });
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    streams_[id] = stream;
  }
  // The reply goes out before anyone can write data on the stream:
  // spdystream drops data that arrives on a stream before its SYN_REPLY.
  auto r = writeFrame([&](FrameEncoder& enc) { return enc.synReply(id, {}, /*fin=*/false); });
  if (!r.ok()) return;  // the connection is failing; serve() will see it
  if (handlers.onStream) handlers.onStream(stream);
}

}  // namespace sluice::agent::streaming
